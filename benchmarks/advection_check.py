"""Benchmark: do the radar's earlier frames, moved into a persistent gap by the motion field, add to the GP?

A check of one source of information that a single-frame GP cannot use, before building it into
a model: radar gaps persist from frame to frame, but rain moves, so the rain inside a gap now was
observed upstream of it minutes ago. Validation frames only (pipelines/training/anp.yaml: KNMI
04:40-05:10, BoM CSCN from 15:00; never a test frame), in the fixed 192 x 192 px window of
``self_calibration_validation.py``, with the interpolation benchmark's masked-block tasks (3 gaps of
24 px over rain, context from a 24 px ring, at most 2,000 contexts) and the same seeds.

Per frame: the task's targets are hidden in the ``--leads`` frames before it as well (a gap that
persists); the motion between the two frames before it is estimated by the Proesmans et al. (1994)
optical flow (pysteps, on dBR) and each earlier frame ``t - k`` is moved ``k`` steps along it by
semi-Lagrangian extrapolation (Germann & Zawadzki 2002). Each target takes the moved value of the
most recent frame that reaches it. In the GP's transformed space, the moved value's error variance
at lead ``k`` is estimated on the task's contexts (where the current frame is observed), and the
moved value is combined with the GP's predictive Gaussian by precision weighting, as an independent
noisy observation of the target (``combined``). Reported per frame and lead: the share of targets
reached, the error variance on the contexts, and on the reached targets the mean squared error of
the moved values and of the GP's mean (transformed space); the CRPS and 90 % coverage of the GP
and of ``combined`` on all targets.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/advection_check.py [--leads 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
from common import result_header, write_result
from interpolation import frame_tasks
from pysteps.extrapolation.semilagrangian import extrapolate
from pysteps.motion.proesmans import proesmans
from self_calibration_validation import event_frames
from tqdm import tqdm

from weatherunc import conventions
from weatherunc.evaluation import score_prediction
from weatherunc.loading import open_dataset
from weatherunc.models.registry import get_model
from weatherunc.prediction import Prediction
from weatherunc.tasks import Task, planar_kilometres
from weatherunc.training.config import load_training_config

#: dBR of a pixel at or below 0.1 mm/h, for the optical flow.
DRY_DBR = -15.0


def dbr(values: np.ndarray) -> np.ndarray:
    """``10 log10(rate)`` above 0.1 mm/h, :data:`DRY_DBR` elsewhere and where unobserved."""
    rate = np.nan_to_num(values, nan=0.0)
    return np.where(rate > 0.1, 10 * np.log10(np.maximum(rate, 0.1)), DRY_DBR)


def moved_frames(earlier: list[np.ndarray]) -> list[np.ndarray]:
    """``earlier`` ``[ny, nx]`` frames, newest first (gaps NaN), each moved to the current time: the
    frame ``k`` steps back extrapolated ``k`` steps along the motion between the two newest."""
    velocity = proesmans(np.stack([dbr(earlier[1]), dbr(earlier[0])]))
    return [
        extrapolate(frame, velocity, lead, allow_nonfinite_values=True)[-1]
        for lead, frame in enumerate(earlier, start=1)
    ]


def context_pixels(task: Task, x_km: np.ndarray, y_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the task's contexts on the window's axes."""
    columns = np.abs(task.context_coordinates[:, 0][:, None] - x_km[None, :]).argmin(axis=1)
    rows = np.abs(task.context_coordinates[:, 1][:, None] - y_km[None, :]).argmin(axis=1)
    return rows, columns


def mean_squared(error: np.ndarray) -> float | None:
    """The mean square of ``error`` to 4 decimals; None if empty."""
    return round(float(np.mean(error**2)), 4) if error.size else None


def frame_row(
    plain: Prediction, task: Task, moved: list[np.ndarray], context: tuple
) -> tuple[dict, Prediction]:
    """Per lead scores of the moved frames and the combined prediction (see the module docstring)."""
    transform = plain.single_transform()
    rows, columns = np.asarray(task.target_coords["row"]), np.asarray(task.target_coords["column"])
    truth = transform.forward(np.maximum(task.target_values, 0.0))
    observed = transform.forward(np.maximum(task.context_values, 0.0))
    precision = 1.0 / plain.transformed_std**2
    weighted = plain.transformed_mean * precision
    reached = np.zeros(len(rows), dtype=bool)
    leads = []
    for lead, field in enumerate(moved, start=1):
        at_context = field[context]
        known = np.isfinite(at_context)
        moved_at_context = transform.forward(np.maximum(at_context[known], 0.0))
        error_variance = float(np.mean((moved_at_context - observed[known]) ** 2))
        at_target = field[rows, columns]
        use = np.isfinite(at_target) & ~reached
        reached |= use
        value = transform.forward(np.maximum(np.nan_to_num(at_target), 0.0))
        precision = precision + use / error_variance
        weighted = weighted + use * value / error_variance
        leads.append(
            {
                "lead": lead,
                "reached": round(float(use.mean()), 4),
                "context_error_variance": round(error_variance, 4),
                "moved_mse": mean_squared(value[use] - truth[use]),
                "gp_mse": mean_squared(plain.transformed_mean[use] - truth[use]),
            }
        )
    std = np.sqrt(1.0 / precision)
    ratio = std / plain.transformed_std
    combined = dataclasses.replace(
        plain,
        transformed_mean=weighted / precision,
        transformed_std=std,
        latent_variance=plain.latent_variance * ratio**2,
        noise_variance=plain.noise_variance * ratio**2,
        cached={},
        bins=None,
    )
    return {"leads": leads}, combined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=3, help="earlier frames moved into the gap (>= 2)")
    arguments = parser.parse_args()
    if not os.environ.get("WEATHERUNC_DATA_DIR"):
        sys.exit("set WEATHERUNC_DATA_DIR to the shared data folder")
    if arguments.leads < 2:
        sys.exit(f"--leads: the motion needs two earlier frames, got {arguments.leads}")
    started = time.perf_counter()
    model = get_model("gp")
    rows = []
    for selection in load_training_config("pipelines/training/anp.yaml").validation:
        frames, crs = event_frames(selection.dataset, selection.start, selection.end)
        whole = open_dataset(selection.dataset).precipitation.sel(
            {conventions.Y: frames[conventions.Y], conventions.X: frames[conventions.X]}
        )
        first = int(np.searchsorted(whole.time.values, frames.time.values[0]))
        x_km, y_km = planar_kilometres(frames[conventions.X].values, frames[conventions.Y].values, crs)
        for index in tqdm(range(frames.sizes["time"]), desc=selection.dataset):
            frame = frames.isel(time=index).drop_vars("time")
            task = frame_tasks(frame, crs, 7000 + 10 * index)["masked_blocks"]
            hidden = np.asarray(task.target_coords["row"]), np.asarray(task.target_coords["column"])
            earlier = []
            for back in range(1, arguments.leads + 1):
                values = np.asarray(whole.isel(time=first + index - back).values, dtype=np.float64).copy()
                values[hidden] = np.nan
                earlier.append(values)
            plain_dataset = model.predict(task)
            plain = Prediction.from_dataset(plain_dataset)
            row, combined = frame_row(plain, task, moved_frames(earlier), context_pixels(task, x_km, y_km))
            gp_scores, combined_scores = (
                score_prediction(plain_dataset, task),
                score_prediction(combined.to_dataset(), task),
            )
            rows.append(
                {
                    "dataset": selection.dataset,
                    "frame": str(frames.time.values[index])[:16],
                    "gp_crps": round(gp_scores["crps"], 4),
                    "combined_crps": round(combined_scores["crps"], 4),
                    "gp_coverage_90": round(gp_scores["coverage_90"], 4),
                    "combined_coverage_90": round(combined_scores["coverage_90"], 4),
                    **row,
                }
            )
    gp_total = sum(row["gp_crps"] for row in rows)
    summary = {
        "frames": len(rows),
        "crps_ratio_pooled": round(sum(row["combined_crps"] for row in rows) / gp_total, 4),
        "frames_better": sum(row["combined_crps"] < row["gp_crps"] for row in rows),
        "gp_coverage_90": round(float(np.mean([row["gp_coverage_90"] for row in rows])), 4),
        "combined_coverage_90": round(float(np.mean([row["combined_coverage_90"] for row in rows])), 4),
        "lead_moved_mse_over_gp_mse": {
            lead: round(
                sum(r["leads"][lead - 1]["moved_mse"] or 0.0 for r in rows)
                / sum(r["leads"][lead - 1]["gp_mse"] or 0.0 for r in rows),
                3,
            )
            for lead in range(1, arguments.leads + 1)
        },
    }
    result = {
        **result_header(__doc__),
        "leads": arguments.leads,
        "wall_s": round(time.perf_counter() - started, 1),
        "summary": summary,
        "rows": rows,
    }
    path = write_result("advection_check.json", result)
    lines = [
        "| dataset | frame | GP CRPS | combined CRPS | GP cov 90 | combined cov 90 | "
        + " | ".join(f"lead {k}: reached, moved MSE / GP MSE" for k in range(1, arguments.leads + 1))
        + " |",
        "|---|---|---|---|---|---|" + "---|" * arguments.leads,
    ]
    for row in rows:
        cells = [
            f"{lead['reached']:.2f}, {lead['moved_mse']} / {lead['gp_mse']}" if lead["reached"] else "0"
            for lead in row["leads"]
        ]
        lines.append(
            f"| {row['dataset']} | {row['frame']} | {row['gp_crps']} | {row['combined_crps']} | "
            f"{row['gp_coverage_90']} | {row['combined_coverage_90']} | " + " | ".join(cells) + " |"
        )
    lines += ["", f"Summary: `{summary}`", ""]
    (path.with_suffix(".md")).write_text("\n".join(lines))
    print(path, summary)


if __name__ == "__main__":
    main()
