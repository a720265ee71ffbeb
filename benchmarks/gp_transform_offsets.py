"""Benchmark: how the GP's transform offset, kernel set and local variance change its scores (an ablation).

The GP models ``z = log(rate + offset)``. The shipped default chooses the offset per task
among 0.3, 1 and 3 mm/h together with the local variance scale (or none) by the leave-one-out
CRPS of the contexts, then the kernel among Matern 1/2, 3/2, 5/2 and rational quadratic by
marginal likelihood. This runs the GP on exactly the radar tasks of benchmarks/interpolation.py
(same frames, seeds and metrics) with: the default before the offset selection (Matern kernels
only, offset 1 mm/h); each fixed offset with the current kernel set; an offset that scales with
each task's own rates (half the median wet context rate, wet meaning > 0.1 mm/h); the offset
chosen by leave-one-out CRPS (all of these without the local variance, as they were compared
before it came in); and the shipped default with it. Kriging and IDW CRPS are read from
benchmarks/results/interpolation.json for comparison. Writes
benchmarks/results/gp_transform_offsets.json and .md.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/gp_transform_offsets.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
from common import RESULTS, require_data_dir, result_header, write_result
from interpolation import RADAR_DATASETS, radar_tasks

from weatherunc.evaluation import score_prediction
from weatherunc.models.gp import GaussianProcessConfig, GaussianProcessInterpolator
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform

WET_RATE = 0.1


def wet_median_offset(task: Task) -> float:
    """Half the median context rate above :data:`WET_RATE` mm/h (1 mm/h when no context is wet)."""
    wet = task.context_values[task.context_values > WET_RATE]
    return 0.5 * float(np.median(wet)) if len(wet) else 1.0


def fixed(offset_of: Callable[[Task], float], **options: object) -> Callable[[Task], GaussianProcessConfig]:
    """A GP configuration with the offset given per task, no offset selection and no local variance."""
    return lambda task: GaussianProcessConfig(
        transform=PrecipitationTransform(offset=offset_of(task)),
        offset_candidates=(),
        local_variance=False,
        **options,
    )


VARIANTS: dict[str, Callable[[Task], GaussianProcessConfig]] = {
    "matern_offset_1 (first)": fixed(
        lambda task: 1.0, automatic_kernels=("matern12", "matern32", "matern52")
    ),
    "offset_0.1": fixed(lambda task: 0.1),
    "offset_0.3": fixed(lambda task: 0.3),
    "offset_1": fixed(lambda task: 1.0),
    "offset_3": fixed(lambda task: 3.0),
    "offset_half_wet_median": fixed(wet_median_offset),
    "offset_by_loo_crps (previous)": lambda task: GaussianProcessConfig(local_variance=False),
    "with_local_variance (default)": lambda task: GaussianProcessConfig(),
}


def main() -> None:
    require_data_dir()
    start = time.perf_counter()
    reference = {
        (row["dataset"], row["task"], row["method"]): row["crps"]
        for row in json.loads((RESULTS / "interpolation.json").read_text())["summary"]
    }
    rows = []
    for dataset in RADAR_DATASETS:
        tasks = radar_tasks(dataset)
        for kind in ("masked_blocks", "gauge_network"):
            chosen = [task for task_kind, _, task in tasks if task_kind == kind]
            row: dict[str, object] = {"dataset": dataset, "task": kind, "frames": len(chosen)}
            for name, config_of in VARIANTS.items():
                scores, offsets = [], []
                for task in chosen:
                    prediction = GaussianProcessInterpolator(config_of(task)).predict(task)
                    offsets.append(float(prediction.attrs["transform_offset"]))
                    scores.append(score_prediction(prediction, task))
                row[name] = {
                    "crps": round(float(np.mean([s["crps"] for s in scores])), 4),
                    "coverage_90": round(float(np.mean([s["coverage_90"] for s in scores])), 3),
                    "offsets": [round(o, 3) for o in offsets],
                }
            for method in ("kriging", "idw"):
                row[f"{method}_crps"] = reference.get((dataset, kind, method))
            rows.append(row)
            print(dataset, kind, {name: row[name]["crps"] for name in VARIANTS}, flush=True)
    table = markdown(rows)
    print(table)
    write_result(
        "gp_transform_offsets.json",
        {
            **result_header(__doc__),
            "wall_s": round(time.perf_counter() - start, 1),
            "rows": rows,
        },
    )
    (RESULTS / "gp_transform_offsets.md").write_text(table)


def markdown(rows: list[dict[str, object]]) -> str:
    """CRPS (90 % coverage) per variant, and kriging and IDW CRPS."""
    header = ["dataset", "task", *VARIANTS, "kriging", "idw"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row["dataset"]), str(row["task"])]
        cells += [f"{row[name]['crps']} ({row[name]['coverage_90']})" for name in VARIANTS]
        cells += [str(row["kriging_crps"]), str(row["idw_crps"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
