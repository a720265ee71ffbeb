"""The catalogue of bad inputs: each is refused with its error type and a message naming the
variable and the check, leaves any earlier output byte-identical and runs no embedded code;
each valid control is accepted. The cases live in ``tests/bad_inputs`` (shared with
``benchmarks/reliability.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs.cases import CASES
from tests.bad_inputs.runner import Case, run_case
from tests.conftest import shared_data_dir


def test_case_identifiers_are_unique() -> None:
    identifiers = [case.id for case in CASES]
    assert len(identifiers) == len(set(identifiers))


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, id=case.id, marks=[pytest.mark.shared_data] if case.needs_shared_data else [])
        for case in CASES
    ],
)
def test_case(case: Case, tmp_path: Path) -> None:
    shared = shared_data_dir()
    if case.needs_shared_data and shared is None:
        pytest.skip("../shared/data is absent")
    outcome = run_case(case, tmp_path / "work", shared)
    assert outcome.passed, outcome.describe()


def test_planted_code_would_leave_its_marker(tmp_path: Path) -> None:
    """The YAML tags and pickles of the catalogue do run their command when loaded unsafely, so
    an absent marker file means that the project's loaders did not run them."""
    import pickle

    import yaml

    from tests.bad_inputs.catalog_stations import SYSTEM_TAG
    from tests.bad_inputs.models import Touch

    yaml.unsafe_load(f"name: {SYSTEM_TAG}".format(marker=tmp_path / "from_yaml"))
    pickle.loads(pickle.dumps(Touch(tmp_path / "from_pickle")))  # noqa: S301 - the point of the test
    assert (tmp_path / "from_yaml").exists() and (tmp_path / "from_pickle").exists()
