"""One catalogue case: build its inputs (and any earlier output), run the action, judge the outcome.

A bad case passes when the action raises the expected error type with a message that names the
variable and the check, every earlier output is byte-identical afterwards, and no marker file
of a code-execution attempt appeared. A valid control passes when the action raises nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from weatherunc.errors import InputDataError


@dataclass(frozen=True)
class Scenario:
    """A built case: the ``action`` to try, an ``earlier`` output folder (or file) that must stay
    byte-identical, and a ``marker`` file that would exist only if untrusted code ran."""

    action: Callable[[], object]
    earlier: Path | None = None
    marker: Path | None = None


@dataclass(frozen=True)
class Case:
    """A catalogue entry: ``build(work, shared_data)`` makes the scenario in the empty folder ``work``.

    ``error`` is the exception type a bad case must raise, ``None`` for a valid control; ``match``
    is a regular expression its message must contain (naming the variable and the check).
    ``group`` says which part of the project the case exercises.
    """

    id: str
    group: str
    build: Callable[[Path, Path | None], Scenario]
    error: type[Exception] | None = InputDataError
    match: str = ""
    needs_shared_data: bool = False

    @property
    def valid(self) -> bool:
        """Whether the case is a valid control (must be accepted)."""
        return self.error is None


@dataclass(frozen=True)
class Outcome:
    """What happened when a case ran."""

    case: Case
    error: BaseException | None
    earlier_intact: bool | None
    executed: bool

    @property
    def accepted(self) -> bool:
        """The action raised nothing."""
        return self.error is None

    @property
    def named_check(self) -> bool:
        """The action raised the expected type with a message matching the case's pattern."""
        return (
            self.case.error is not None
            and isinstance(self.error, self.case.error)
            and re.search(self.case.match, str(self.error)) is not None
        )

    @property
    def passed(self) -> bool:
        """The case behaved as the catalogue requires."""
        if self.executed or self.earlier_intact is False:
            return False
        return self.accepted if self.case.valid else self.named_check

    def describe(self) -> str:
        """One line for a failure message or a report."""
        got = "accepted" if self.error is None else f"{type(self.error).__name__}: {self.error}"
        wanted = (
            "acceptance"
            if self.case.error is None
            else f"{self.case.error.__name__} matching {self.case.match!r}"
        )
        return (
            f"{self.case.id}: expected {wanted}, got {got}; "
            f"earlier output intact: {self.earlier_intact}; executed: {self.executed}"
        )


def named(variable: str, check: str) -> str:
    """The pattern of an :class:`InputDataError` message naming ``variable`` and ``check``."""
    return f"variable {re.escape(repr(variable))} failed check {re.escape(repr(check))}"


def tree_digest(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (or of ``path`` itself), by relative path."""
    files = [path] if path.is_file() else sorted(item for item in path.rglob("*") if item.is_file())
    return {
        str(item.relative_to(path) if item != path else item.name): hashlib.sha256(
            item.read_bytes()
        ).hexdigest()
        for item in files
    }


def run_case(case: Case, work: Path, shared_data: Path | None = None) -> Outcome:
    """Build ``case`` in the folder ``work`` (created if needed), run it and return the outcome."""
    work.mkdir(parents=True, exist_ok=True)
    scenario = case.build(work, shared_data)
    before = tree_digest(scenario.earlier) if scenario.earlier is not None else None
    error: BaseException | None = None
    try:
        scenario.action()
    except Exception as caught:  # noqa: BLE001 - the outcome records whatever was raised
        error = caught
    intact = None
    if scenario.earlier is not None:
        intact = scenario.earlier.exists() and tree_digest(scenario.earlier) == before
    executed = scenario.marker is not None and scenario.marker.exists()
    return Outcome(case=case, error=error, earlier_intact=intact, executed=executed)
