"""Summary of neural-process training runs, read from their ``weatherunc train`` logs.

A run may have several parts (a killed run resumed from its last checkpoint); each log is the
console output of one part (tqdm progress and the validation lines). For each part this writes
the first and last step, the wall time the progress bar reports and the steps/s over it
(validation and checkpointing included), and for each run every validation score (step 0 of a
fine-tuning run scores its starting weights). Writes ``benchmarks/results/NAME.json`` and
``.md`` (``--output NAME``; default ``anp_gpu_training``, the GPU runs).

    .venv/bin/python benchmarks/gpu_training_summary.py --device "one NVIDIA H100 80GB" \\
        --run anp=runs/anp/part1.log,runs/anp/part2.log --run anp_task_small=...
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from common import RESULTS, write_result

PROGRESS = re.compile(r"(\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)<")
VALIDATION = re.compile(
    r"step (\d+)(?: \([^)]*\))?: validation crps ([\d.]+) nlpd (-?[\d.]+) coverage_90 ([\d.]+)"
)


def _seconds(hours: str | None, minutes: str, seconds: str) -> int:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)


def read_part(path: Path) -> dict[str, object]:
    """First and last step of one log, elapsed seconds and steps/s, and its validation lines."""
    text = path.read_text(errors="replace").replace("\r", "\n")
    progress = [(int(step), int(total), _seconds(h, m, s)) for step, total, h, m, s in PROGRESS.findall(text)]
    if not progress:
        raise ValueError(f"{path}: no progress lines of `weatherunc train`")
    first, last = progress[0], progress[-1]
    validations = [
        {"step": int(step), "crps": float(crps), "nlpd": float(nlpd), "coverage_90": float(coverage)}
        for step, crps, nlpd, coverage in VALIDATION.findall(text)
    ]
    elapsed = last[2] - first[2]
    return {
        "log": path.name,
        "first_step": first[0],
        "last_step": last[0],
        "configured_steps": last[1],
        "elapsed_s": elapsed,
        "steps_per_s": round((last[0] - first[0]) / elapsed, 2) if elapsed else None,
        "validation": validations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", required=True, help="the machine the runs trained on, in words")
    parser.add_argument("--run", action="append", required=True, help="NAME=LOG[,LOG...] (parts in order)")
    parser.add_argument(
        "--output", default="anp_gpu_training", help="name of the result files under benchmarks/results/"
    )
    arguments = parser.parse_args()
    runs = {}
    for entry in arguments.run:
        name, logs = entry.split("=", 1)
        parts = [read_part(Path(log)) for log in logs.split(",")]
        runs[name] = {"parts": parts, "validation": [row for part in parts for row in part["validation"]]}
    result = {"benchmark": __doc__.strip().splitlines()[0], "device": arguments.device, "runs": runs}
    lines = ["| run | part | steps | elapsed s | steps/s |", "|---|---|---|---|---|"]
    for name, run in runs.items():
        for number, part in enumerate(run["parts"], 1):
            lines.append(
                f"| {name} | {number} | {part['first_step']}-{part['last_step']} of "
                f"{part['configured_steps']} | {part['elapsed_s']} | {part['steps_per_s']} |"
            )
    lines += ["", "| run | step | validation crps | nlpd | coverage_90 |", "|---|---|---|---|---|"]
    for name, run in runs.items():
        lines += [
            f"| {name} | {row['step']} | {row['crps']:.4f} | {row['nlpd']:.3f} | {row['coverage_90']:.3f} |"
            for row in run["validation"]
        ]
    table = "\n".join(lines) + "\n"
    print(table)
    (RESULTS / f"{arguments.output}.md").write_text(f"Device: {arguments.device}\n\n" + table)
    print(f"wrote {write_result(f'{arguments.output}.json', result)}")


if __name__ == "__main__":
    main()
