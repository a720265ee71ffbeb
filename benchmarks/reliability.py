"""Benchmark: the bad-input catalogue and the kill points, counted.

Runs every case of ``tests/bad_inputs/cases.py`` (bad inputs that must be refused with their
named check, earlier outputs that must stay byte-identical, YAML tags and pickles that must
never execute, and valid controls that must be accepted) and every kill point of
``tests/bad_inputs/kill_points.py`` (an ingest or batch job SIGKILLed at a stage boundary,
resumed, compared byte for byte with an uninterrupted run). The same lists drive
``tests/test_bad_inputs.py`` and ``tests/test_kill_points.py``. Writes
``benchmarks/results/reliability.json`` and ``reliability.md``. Cases that need the shared
data are left out (and counted as skipped) when it is absent.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/reliability.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import RESULTS, machine, write_result

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from tests.bad_inputs.cases import CASES  # noqa: E402
from tests.bad_inputs.kill_points import KILL_POINTS, KillBench  # noqa: E402
from tests.bad_inputs.runner import Outcome, run_case  # noqa: E402
from tests.conftest import shared_data_dir  # noqa: E402


def _case_row(outcome: Outcome, seconds: float) -> dict[str, object]:
    return {
        "id": outcome.case.id,
        "group": outcome.case.group,
        "valid_control": outcome.case.valid,
        "passed": outcome.passed,
        "error": None if outcome.error is None else type(outcome.error).__name__,
        "message": None if outcome.error is None else str(outcome.error)[:240],
        "earlier_output_intact": outcome.earlier_intact,
        "executed": outcome.executed,
        "seconds": round(seconds, 2),
    }


def run_catalogue(folder: Path, shared: Path | None) -> tuple[list[Outcome], list[dict[str, object]], int]:
    """Every case that can run here: outcomes, report rows, and the number skipped."""
    outcomes, rows, skipped = [], [], 0
    for number, case in enumerate(CASES):
        if case.needs_shared_data and shared is None:
            skipped += 1
            continue
        start = time.perf_counter()
        outcome = run_case(case, folder / f"case{number:03d}", shared)
        rows.append(_case_row(outcome, time.perf_counter() - start))
        outcomes.append(outcome)
        print(("ok   " if outcome.passed else "FAIL ") + outcome.describe()[:200], flush=True)
    return outcomes, rows, skipped


def summary(outcomes: list[Outcome], kills: list, skipped: int) -> dict[str, object]:
    """The contract figures of ``reliability.json``."""
    bad = [outcome for outcome in outcomes if not outcome.case.valid]
    controls = [outcome for outcome in outcomes if outcome.case.valid]
    with_earlier = [outcome for outcome in outcomes if outcome.earlier_intact is not None]
    checkpoints = [outcome for outcome in bad if outcome.case.group == "checkpoint"]
    return {
        "cases_tried": len(outcomes),
        "cases_skipped_no_shared_data": skipped,
        "valid_controls": len(controls),
        "valid_controls_accepted": sum(outcome.accepted for outcome in controls),
        "rejected_with_named_check": sum(outcome.named_check for outcome in bad),
        "rejected_otherwise": sum(not outcome.accepted and not outcome.named_check for outcome in bad),
        "silent_accepts": sum(outcome.accepted for outcome in bad),
        "cases_with_earlier_output": len(with_earlier),
        "earlier_output_intact": sum(bool(outcome.earlier_intact) for outcome in with_earlier),
        "kill_points": len(kills),
        "kill_points_killed": sum(kill.killed for kill in kills),
        "kill_points_identical": sum(kill.passed for kill in kills),
        "checkpoints_tampered": len(checkpoints),
        "checkpoints_refused": sum(outcome.named_check for outcome in checkpoints),
        "execution_attempts": sum(_has_marker(outcome) for outcome in outcomes),
        "executed": sum(outcome.executed for outcome in outcomes),
    }


def _has_marker(outcome: Outcome) -> bool:
    """Whether the case plants code that would create a marker file if it ran."""
    return any(word in outcome.case.id for word in ("python-apply", "python-object-new", "pickle"))


def _machine_line(machine: dict[str, object]) -> str:
    return (
        f"{machine['cpu_count']} cores ({machine['processor']}), Python {machine['python']}, "
        f"run on {machine['date']}"
    )


def _markdown(result: dict[str, object], figures: dict[str, object]) -> str:
    lines = [
        "# Reliability: bad-input catalogue and kill points",
        "",
        f"{_machine_line(result['machine'])}; `benchmarks/reliability.py` took {result['seconds']} s.",
        "",
        "| figure | value |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in figures.items()],
        "",
        "## Cases by group (tried / passed)",
        "",
        "| group | tried | passed |",
        "|---|---|---|",
        *[
            f"| {group} | {count} | {result['passed_by_group'].get(group, 0)} |"
            for group, count in result["tried_by_group"].items()
        ],
        "",
        "## Kill points",
        "",
        "| kill point | where | killed | resumed identical, nothing left over |",
        "|---|---|---|---|",
        *[
            f"| {row['id']} | {row['description']} | {row['killed']} | {row['passed']} |"
            for row in result["kill_point_rows"]
        ],
        "",
    ]
    failures = [row["id"] for row in result["case_rows"] if not row["passed"]]
    lines.append(f"Failed cases: {', '.join(failures) if failures else 'none'}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the catalogue and the kill points; write the JSON and Markdown results."""
    shared = shared_data_dir()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reliability-") as folder:
        outcomes, rows, skipped = run_catalogue(Path(folder) / "cases", shared)
        bench = KillBench(Path(folder) / "kills")
        kills = []
        for point in KILL_POINTS:
            kill = bench.run(point)
            print(("ok   " if kill.passed else "FAIL ") + kill.describe(), flush=True)
            kills.append(kill)
    tried, passed = Counter(), Counter()
    for outcome in outcomes:
        tried[outcome.case.group] += 1
        passed[outcome.case.group] += outcome.passed
    figures = summary(outcomes, kills, skipped)
    result = {
        "benchmark": "reliability",
        **figures,
        "machine": machine(),
        "seconds": round(time.perf_counter() - start, 1),
        "tried_by_group": dict(tried),
        "passed_by_group": dict(passed),
        "case_rows": rows,
        "kill_point_rows": [
            {
                "id": kill.point.id,
                "kind": kill.point.kind,
                "description": kill.point.description,
                "killed": kill.killed,
                "passed": kill.passed,
                "leftovers": kill.leftovers,
                "differing": kill.differing[:10],
            }
            for kill in kills
        ],
    }
    path = write_result("reliability.json", result)
    (RESULTS / "reliability.md").write_text(_markdown(result, figures))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
