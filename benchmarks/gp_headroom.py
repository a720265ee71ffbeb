"""Benchmark: what do a GP fit and a spread chosen with the truth gain over the GP? Oracles, not bounds.

How much one way to beat the GP (a better covariance or spread) gains, measured where a model may
be tuned: the validation frames of ``self_calibration_validation.py``
(pipelines/training/anp.yaml: KNMI 04:40-05:10, BoM CSCN from
15:00; never a test frame), in its fixed 192 x 192 px window, with the interpolation benchmark's
tasks and seeds (masked blocks: 3 gaps of 24 px over rain, context from a 24 px ring, at most
2,000 contexts; a 1 % gauge-like network). Per task, CRPS over the GP's (``gp``, the shipped
defaults) of:

- ``oracle_fit``: the GP whose kernel choice, hyperparameters, variance scale and local variance
  are fitted, by its usual maximum likelihood, on the contexts together with the truth of (up to
  ``FIT_TARGETS`` of) the targets
  (:meth:`~weatherunc.models.gp.interpolator.GaussianProcessInterpolator.shared_fit`), then
  conditioned on the contexts alone: a covariance chosen with the truth in view, though not for
  the CRPS (it can score worse than the GP);
- ``oracle_scale``: the GP's prediction with its transformed std multiplied by the factor (of
  ``FACTOR_GRID``) that minimises the task's own CRPS: per-task calibration of the spread;
- ``oracle_fit_scale``: both;
- ``oracle_best``: per task the better of ``oracle_scale`` and ``oracle_fit_scale``.

None of these can be run without the truth, and none is an upper bound on what a GP could gain
(another fit, chosen for the CRPS, could gain more); they measure how much these choices made with
the truth gain on these tasks.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/gp_headroom.py
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from common import require_data_dir, result_header, write_result
from interpolation import frame_tasks
from self_calibration_validation import event_frames
from tqdm import tqdm

from weatherunc.evaluation import score_prediction
from weatherunc.heads.calibration import rescale_std
from weatherunc.heads.self_calibration import FACTOR_GRID
from weatherunc.models.registry import get_model
from weatherunc.tasks import Task
from weatherunc.training.config import load_training_config

#: Targets (with their truth) added to the contexts for the oracle fit, at most.
FIT_TARGETS = 2000
VARIANTS = ("gp", "oracle_fit", "oracle_scale", "oracle_fit_scale", "oracle_best")


def with_truth(task: Task, seed: int) -> Task:
    """``task`` whose contexts also hold up to :data:`FIT_TARGETS` of its targets with their truth."""
    known = np.flatnonzero(np.isfinite(task.target_values))
    chosen = np.sort(np.random.default_rng(seed).permutation(known)[:FIT_TARGETS])
    return Task(
        context_coordinates=np.concatenate([task.context_coordinates, task.target_coordinates[chosen]]),
        context_values=np.concatenate([task.context_values, task.target_values[chosen]]),
        target_coordinates=task.target_coordinates,
        target_values=task.target_values,
        target_coords=task.target_coords,
        description=f"{task.description}, with {chosen.size} targets' truth",
    )


def best_scale_crps(prediction, task: Task) -> tuple[float, float]:
    """(the smallest CRPS over std factors of ``FACTOR_GRID``, its factor), by the task's truth."""
    scores = [
        score_prediction(rescale_std(prediction, float(factor)), task)["crps"] for factor in FACTOR_GRID
    ]
    best = int(np.argmin(scores))
    return float(scores[best]), float(FACTOR_GRID[best])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    require_data_dir()
    started = time.perf_counter()
    model = get_model("gp")
    rows = []
    for selection in load_training_config("pipelines/training/anp.yaml").validation:
        frames, crs = event_frames(selection.dataset, selection.start, selection.end)
        for index in tqdm(range(frames.sizes["time"]), desc=selection.dataset):
            frame = frames.isel(time=index).drop_vars("time")
            for kind, task in frame_tasks(frame, crs, 7000 + 10 * index).items():
                plain = model.predict(task)
                oracle = model.shared_fit(with_truth(task, index)).predict(task)
                crps = {"gp": score_prediction(plain, task)["crps"]}
                crps["oracle_fit"] = score_prediction(oracle, task)["crps"]
                crps["oracle_scale"], scale = best_scale_crps(plain, task)
                crps["oracle_fit_scale"], fit_scale = best_scale_crps(oracle, task)
                crps["oracle_best"] = min(crps["oracle_scale"], crps["oracle_fit_scale"])
                rows.append(
                    {
                        "dataset": selection.dataset,
                        "frame": str(frames.time.values[index])[:16],
                        "task": kind,
                        **{f"{name}_crps": round(value, 5) for name, value in crps.items()},
                        "oracle_scale_factor": round(scale, 3),
                        "oracle_fit_scale_factor": round(fit_scale, 3),
                    }
                )
    pooled: dict[str, dict[str, float]] = defaultdict(dict)
    for kind in sorted({row["task"] for row in rows}):
        chosen = [row for row in rows if row["task"] == kind]
        total = sum(row["gp_crps"] for row in chosen)
        for name in VARIANTS:
            pooled[kind][name] = round(sum(row[f"{name}_crps"] for row in chosen) / total, 4)
    result = {
        **result_header(__doc__),
        "fit_targets": FIT_TARGETS,
        "wall_s": round(time.perf_counter() - started, 1),
        "crps_over_gp_pooled": pooled,
        "rows": rows,
    }
    path = write_result("gp_headroom.json", result)
    lines = [
        "CRPS over the GP's, pooled over the validation frames (sum of CRPS over sum of the GP's):",
        "",
        "| task | " + " | ".join(VARIANTS) + " |",
        "|---|" + "---|" * len(VARIANTS),
        *(
            f"| {kind} | " + " | ".join(str(values[name]) for name in VARIANTS) + " |"
            for kind, values in pooled.items()
        ),
        "",
        "| dataset | frame | task | "
        + " | ".join(f"{name} CRPS" for name in VARIANTS)
        + " | scale | fit scale |",
        "|---|---|---|" + "---|" * (len(VARIANTS) + 2),
        *(
            f"| {row['dataset']} | {row['frame']} | {row['task']} | "
            + " | ".join(str(row[f"{name}_crps"]) for name in VARIANTS)
            + f" | {row['oracle_scale_factor']} | {row['oracle_fit_scale_factor']} |"
            for row in rows
        ),
        "",
    ]
    path.with_suffix(".md").write_text("\n".join(lines))
    print(path, dict(pooled))


if __name__ == "__main__":
    main()
