"""Benchmark: the ConvNP with a GP prior on the interpolation benchmark's radar tasks, beside the GP.

Scores a ConvNP checkpoint with ``prior: gp`` (default: the best of the fine-tuning run kept in
``benchmarks/checkpoints/convnp_gp_run/``) on the tasks of :func:`interpolation.radar_tasks` and
puts each row beside the GP's row of ``benchmarks/results/interpolation.json`` on the same task.
Writes ``benchmarks/results/convnp_prior_check.json`` and ``.md`` (rows with ``dataset``, ``task``,
``frame``, ``crps``, ``gp_crps``, ``crps_ratio``, ``coverage_90``).

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/convnp_prior_check.py [--checkpoint PATH]

``--members PATH PATH ...`` scores the deep ensemble of those checkpoints instead
(``benchmarks/train_convnp_ensemble.sh``), as method ``convnp_gp_ensemble``; ``--output NAME`` writes
``NAME.json``/``.md`` instead. The Markdown also summarises each dataset and task: the mean CRPS over
the frames divided by the GP's mean CRPS, and the mean coverage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import RESULTS, require_data_dir, result_header, write_result
from interpolation import RADAR_DATASETS, _row, radar_tasks

from weatherunc.models.registry import get_model

CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "convnp_gp_run" / "best-00000600.safetensors"


def summarise(rows: list[dict]) -> list[dict]:
    """Per dataset and task: mean CRPS over the frames / the GP's mean CRPS, and mean coverage."""
    keys = sorted({(row["dataset"], row["task"]) for row in rows})
    summary = []
    for dataset, task in keys:
        chosen = [row for row in rows if (row["dataset"], row["task"]) == (dataset, task)]
        crps = sum(row["crps"] for row in chosen) / len(chosen)
        gp_crps = sum(row["gp_crps"] for row in chosen) / len(chosen)
        coverage = sum(row["coverage_90"] for row in chosen) / len(chosen)
        summary.append(
            {
                "dataset": dataset,
                "task": task,
                "crps_ratio": round(crps / gp_crps, 4),
                "coverage_90": round(coverage, 4),
            }
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--members", type=Path, nargs="*", default=[], help="a deep ensemble's checkpoints")
    parser.add_argument("--output", default="convnp_prior_check", help="name of the result files")
    arguments = parser.parse_args()
    require_data_dir()
    torch.set_num_threads(2)
    method = "convnp_gp_ensemble" if arguments.members else "convnp_gp"
    if arguments.members:
        model = get_model("convnp", members=arguments.members, name=method)
    else:
        model = get_model("convnp", checkpoint=arguments.checkpoint, name=method)
    gp_rows = json.loads((RESULTS / "interpolation.json").read_text())["rows"]
    reference = {(row["dataset"], row["task"], row["frame"]): row for row in gp_rows if row["method"] == "gp"}
    rows = []
    for dataset in RADAR_DATASETS:
        for kind, frame, task in radar_tasks(dataset):
            row = _row(dataset, kind, frame, method, task, model.predict(task))
            row["gp_crps"] = reference[(dataset, kind, frame)]["crps"]
            row["crps_ratio"] = round(row["crps"] / row["gp_crps"], 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = [
        "| dataset | task | frame | crps | gp_crps | crps_ratio | coverage_90 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['task']} | {row['frame']} | {row['crps']} | {row['gp_crps']} | "
            f"{row['crps_ratio']} | {row['coverage_90']} |"
        )
    summary = summarise(rows)
    lines += ["", "| dataset | task | crps_ratio | coverage_90 |", "|---|---|---|---|"]
    lines += [
        f"| {row['dataset']} | {row['task']} | {row['crps_ratio']} | {row['coverage_90']} |"
        for row in summary
    ]
    checkpoints = arguments.members or [arguments.checkpoint]
    result = {
        **result_header(__doc__),
        "method": method,
        "checkpoint": ", ".join(str(path) for path in checkpoints),
        "rows": rows,
        "summary": summary,
    }
    path = write_result(f"{arguments.output}.json", result)
    computer = result["machine"]
    header = f"{computer['date']}, {computer['cpu_count']} cores, checkpoint {result['checkpoint']}"
    path.with_suffix(".md").write_text(f"{result['benchmark']}\n\n{header}\n\n" + "\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
