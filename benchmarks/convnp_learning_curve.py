"""Benchmark: the convolutional neural process's learning curve, against training steps and wall time.

For every ``snapshot-STEP`` checkpoint of a run folder (default ``runs/convnp``, written by
``weatherunc train pipelines/training/convnp.yaml``): the validation scores the run recorded at
that step (``history.json``: validation frames only, what model selection sees) and the scores on
the interpolation benchmark's radar test tasks (``benchmarks/interpolation.py``: 5 radars x 3
frames x masked blocks and gauge networks), each task's CRPS divided by the GP's on the same task
(the GP's rows of ``benchmarks/results/interpolation.json``). Test scores are reported, never used to
choose anything. For reference, the GP's and the shipped ANP's mean scores on the same validation
tasks (``validation_reference``). Writes ``benchmarks/results/convnp_learning_curve.json`` and ``.md``; with
``--name``, ``convnp_learning_curve_NAME.*`` (for variants).

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/convnp_learning_curve.py [--run
    runs/convnp] [--every 1000] [--initial] [--name VARIANT] [--merge]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, require_data_dir, result_header, write_result
from interpolation import RADAR_DATASETS, radar_tasks

from weatherunc.checkpoints import read_sidecar
from weatherunc.evaluation import score_prediction
from weatherunc.models.convnp.interpolator import ConvNPInterpolator
from weatherunc.models.registry import get_model
from weatherunc.training.convnp_config import ConvNPTrainingConfig
from weatherunc.training.convnp_loop import initial_convnp
from weatherunc.training.validation import mean_scores, validation_tasks


def gp_crps() -> dict[tuple[str, str, str], float]:
    """The GP's CRPS per (dataset, task, frame) from the committed interpolation benchmark."""
    rows = json.loads((RESULTS / "interpolation.json").read_text())["rows"]
    return {(row["dataset"], row["task"], row["frame"]): row["crps"] for row in rows if row["method"] == "gp"}


def curve_row(
    path: Path, history: dict[int, dict], tasks: list[tuple[str, str, str, object]], reference: dict
) -> dict[str, object]:
    """Scores of one snapshot: validation (from the run's history) and test tasks (relative to the GP)."""
    sidecar = read_sidecar(path)
    step = int(sidecar["metadata"]["step"])
    return model_row(
        ConvNPInterpolator.from_checkpoint(path),
        step,
        sidecar["metadata"].get("seconds"),
        history,
        tasks,
        reference,
    )


def initial_row(
    training_config: ConvNPTrainingConfig, tasks: list[tuple[str, str, str, object]], reference: dict
) -> dict[str, object]:
    """Scores of the model a run starts from (step 0): for a fine-tuning run, its
    ``initialise_from`` weights as the run sets them up (a prior model predicts its prior); the
    validation CRPS on the run's own validation tasks."""
    model = ConvNPInterpolator(model=initial_convnp(training_config, None).eval())
    validation = validation_tasks(
        training_config.validation, training_config.validation_tasks, seed=training_config.seed + 1
    )
    scores = mean_scores([model.predict(task) for task in validation], validation)
    return model_row(model, 0, 0.0, {0: scores}, tasks, reference)


def model_row(
    model: ConvNPInterpolator,
    step: int,
    seconds: float | None,
    history: dict[int, dict],
    tasks: list[tuple[str, str, str, object]],
    reference: dict,
) -> dict[str, object]:
    """Scores of ``model`` at ``step``: validation (``history[step]``) and test tasks (over the GP)."""
    ratios: dict[tuple[str, str], list[float]] = defaultdict(list)
    coverage: dict[tuple[str, str], list[float]] = defaultdict(list)
    for dataset, kind, frame, task in tasks:
        scores = score_prediction(model.predict(task), task)
        ratios[(dataset, kind)].append(scores["crps"] / reference[(dataset, kind, frame)])
        coverage[(dataset, kind)].append(scores["coverage_90"])
    validation = history.get(step, {})
    return {
        "step": step,
        "seconds": seconds,
        "validation_crps": validation.get("crps"),
        "validation_coverage_90": validation.get("coverage_90"),
        "test_crps_over_gp": {
            f"{dataset}/{kind}": round(float(np.mean(values)), 4)
            for (dataset, kind), values in ratios.items()
        },
        "test_coverage_90": {
            f"{dataset}/{kind}": round(float(np.mean(values)), 4)
            for (dataset, kind), values in coverage.items()
        },
        "worst_masked_blocks_crps_over_gp": round(
            max(float(np.mean(v)) for (d, k), v in ratios.items() if k == "masked_blocks"), 4
        ),
    }


def markdown(rows: list[dict[str, object]]) -> str:
    """Rows as a Markdown table (CRPS over the GP's per radar and task)."""
    keys = sorted(rows[0]["test_crps_over_gp"]) if rows else []
    columns = ["step", "seconds", "validation_crps", *keys]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(str(row[c]) if c in row else str(row["test_crps_over_gp"][c]) for c in columns)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/convnp"))
    parser.add_argument("--every", type=int, default=1, help="score every n-th snapshot")
    parser.add_argument("--name", default="", help="suffix of the result files (a variant's name)")
    parser.add_argument(
        "--initial", action="store_true", help="also score the model the run starts from, as step 0"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the result file's rows of steps whose snapshots the run folder no longer holds",
    )
    arguments = parser.parse_args()
    require_data_dir()
    torch.set_num_threads(2)
    start = time.perf_counter()
    history_file = arguments.run / "history.json"
    history = (
        {entry["step"]: entry for entry in json.loads(history_file.read_text())}
        if history_file.exists()
        else {}
    )
    snapshots = sorted(arguments.run.glob("snapshot-*.safetensors"))[:: arguments.every]
    tasks = [
        (dataset, kind, frame, task)
        for dataset in RADAR_DATASETS
        for kind, frame, task in radar_tasks(dataset)
    ]
    reference = gp_crps()
    rows = [curve_row(path, history, tasks, reference) for path in snapshots]
    training_config = read_sidecar(snapshots[-1])["metadata"]["training_config"] if snapshots else {}
    if arguments.initial and training_config:
        rows.insert(0, initial_row(ConvNPTrainingConfig(**training_config), tasks, reference))
    validation_reference = {}
    if training_config:
        config = ConvNPTrainingConfig(**training_config)
        validation = validation_tasks(config.validation, config.validation_tasks, seed=config.seed + 1)
        validation_reference = {
            method: mean_scores([get_model(method).predict(task) for task in validation], validation)
            for method in ("gp", "anp")
        }
    result = {
        **result_header(__doc__),
        "wall_s": round(time.perf_counter() - start, 1),
        "run": str(arguments.run),
        "training_config": training_config,
        "validation_reference": validation_reference,
        "validation_history": list(history.values()),
        "curve": rows,
    }
    suffix = f"_{arguments.name}" if arguments.name else ""
    earlier = RESULTS / f"convnp_learning_curve{suffix}.json"
    if arguments.merge and earlier.exists():
        scored = {row["step"] for row in rows}
        kept = [row for row in json.loads(earlier.read_text())["curve"] if row["step"] not in scored]
        rows = sorted(kept + rows, key=lambda row: row["step"])
    result["curve"] = rows
    for row in rows:
        print(row["step"], row["seconds"], row["validation_crps"], row["worst_masked_blocks_crps_over_gp"])
    path = write_result(f"convnp_learning_curve{suffix}.json", result)
    (RESULTS / f"convnp_learning_curve{suffix}.md").write_text(markdown(rows))
    print(f"wrote {path} in {result['wall_s']} s")


if __name__ == "__main__":
    main()
