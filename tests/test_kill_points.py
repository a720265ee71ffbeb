"""Kill points: an ingest and a batch job are SIGKILLed at each stage boundary (in a forked
child that patched the boundary's function), resumed, and compared byte for byte with an
uninterrupted run; no staging or retired folder may be left. The points live in
``tests/bad_inputs/kill_points.py`` (shared with ``benchmarks/reliability.py``)."""

from __future__ import annotations

import pytest

from tests.bad_inputs.kill_points import KILL_POINTS, KillBench, KillPoint


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> KillBench:
    return KillBench(tmp_path_factory.mktemp("kill_points"))


def test_enough_kill_points_on_both_pipelines() -> None:
    kinds = [point.kind for point in KILL_POINTS]
    assert len(KILL_POINTS) >= 12 and kinds.count("ingest") >= 6 and kinds.count("job") >= 6
    assert len({point.id for point in KILL_POINTS}) == len(KILL_POINTS)


@pytest.mark.parametrize("point", [pytest.param(point, id=point.id) for point in KILL_POINTS])
def test_kill_then_resume_equals_uninterrupted_run(bench: KillBench, point: KillPoint) -> None:
    outcome = bench.run(point)
    assert outcome.passed, outcome.describe()
