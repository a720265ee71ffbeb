"""Benchmark: do the radar's earlier frames, moved into a persistent gap by the motion field, add to the GP?

A check of one source of information that a single-frame GP cannot use, before building it into
a model: radar gaps persist from frame to frame, but rain moves, so the rain inside a gap now was
observed upstream of it minutes ago. Validation frames only (pipelines/training/anp.yaml: KNMI
04:40-05:10, BoM CSCN from 15:00; never a test frame), in the fixed 192 x 192 px window of
``self_calibration_validation.py``, with the interpolation benchmark's masked-block tasks (3 gaps of
24 px over rain, context from a 24 px ring, at most 2,000 contexts) and the same seeds.

Per frame: the task's targets are hidden in the ``--leads`` frames before it as well (a gap that
persists); the motion between the two frames before it is estimated by the Proesmans et al. (1994)
optical flow (pysteps, on dBR; ``--motion hidden``, the default: from those frames with the gap
hidden and filled by the nearest observed pixel, so that it is not a dry feature that stays put;
``--motion observed``: from the frames with the gap observed, optimistic for a real gap) and
each earlier frame ``t - k`` is moved ``k`` steps along it by semi-Lagrangian extrapolation
(Germann & Zawadzki 2002). Each target takes the moved value of the most recent frame that
reaches it (lead ``k`` reports the targets it reached first: the deeper in the gap, the older).
In the GP's transformed space, the moved value's error variance about the latent field is
estimated on the task's contexts (where the current frame is observed) less the GP's noise
variance, and the moved value is combined with the GP's latent Gaussian by precision weighting
as an independent observation of the latent field; the noise variance is added back
(``combined``). Reported per frame and lead: the share of the task's targets reached, the error
variance on the contexts, on the reached targets the mean squared error of the moved values, of
the GP's mean and of the best blend of the two (the weight chosen by the truth: what no
weighting of the two could beat), and the correlation of the two errors; the CRPS and 90 %
coverage of the GP and of ``combined`` on all targets. The summary pools the squared errors over
the frames, each weighted by its reached targets.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/advection_check.py [--leads 3] \
        [--motion hidden|observed] [--output STEM]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import xarray as xr
from common import require_data_dir, result_header, write_result
from interpolation import RADAR_DATASETS, frame_tasks, radar_test_windows, window_history
from pysteps.extrapolation.semilagrangian import extrapolate
from pysteps.motion.proesmans import proesmans
from scipy import ndimage
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


def nearest_filled(values: np.ndarray) -> np.ndarray:
    """``values`` ``[ny, nx]`` with each NaN replaced by the nearest finite value (for the motion
    only: a gap filled so is not a dry feature that stays put)."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    _, (rows, columns) = ndimage.distance_transform_edt(missing, return_indices=True)
    return values[rows, columns]


def moved_frames(earlier: list[np.ndarray], motion_from: list[np.ndarray]) -> list[np.ndarray]:
    """``earlier`` ``[ny, nx]`` frames, newest first (gaps NaN), each moved to the current time: the
    frame ``k`` steps back extrapolated ``k`` steps along the motion between the two newest of
    ``motion_from`` (those frames with their gaps filled by :func:`nearest_filled`, or observed)."""
    velocity = proesmans(np.stack([dbr(nearest_filled(motion_from[1])), dbr(nearest_filled(motion_from[0]))]))
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
    """Per lead scores of the moved frames and the combined prediction (see the module docstring).

    The combination is on the GP's latent field: the moved value's error variance about the latent
    field is the one measured on the contexts less the GP's noise variance (both hold the pixel's
    own noise), and the noise variance is added back to the combined latent variance."""
    transform = plain.single_transform()
    rows, columns = np.asarray(task.target_coords["row"]), np.asarray(task.target_coords["column"])
    truth = transform.forward(np.maximum(task.target_values, 0.0))
    observed = transform.forward(np.maximum(task.context_values, 0.0))
    noise = np.broadcast_to(plain.noise_variance, plain.shape)
    precision = 1.0 / np.maximum(plain.latent_variance, 1e-12)
    weighted = plain.transformed_mean * precision
    reached = np.zeros(len(rows), dtype=bool)
    leads = []
    for lead, field in enumerate(moved, start=1):
        at_context = field[context]
        known = np.isfinite(at_context)
        moved_at_context = transform.forward(np.maximum(at_context[known], 0.0))
        error_variance = float(np.mean((moved_at_context - observed[known]) ** 2)) if known.any() else np.nan
        at_target = field[rows, columns]
        use = np.isfinite(at_target) & ~reached
        value = transform.forward(np.maximum(np.nan_to_num(at_target), 0.0))
        latent_error = error_variance - float(np.mean(noise))
        if np.isfinite(latent_error) and latent_error > 0:  # else the lead is not combined
            reached |= use
            precision = precision + np.where(use, 1.0 / latent_error, 0.0)
            weighted = weighted + np.where(use, value / latent_error, 0.0)
        moved_error, gp_error = value[use] - truth[use], plain.transformed_mean[use] - truth[use]
        leads.append(
            {
                "lead": lead,
                "reached": round(float(use.mean()), 4),
                "context_error_variance": round(error_variance, 4),
                "moved_mse": mean_squared(moved_error),
                "gp_mse": mean_squared(gp_error),
                # the least squared error of (1 - w) GP mean + w moved value, w chosen by the truth
                "best_blend_mse": best_blend(gp_error, moved_error),
                "error_correlation": (
                    round(float(np.corrcoef(gp_error, moved_error)[0, 1]), 3) if use.sum() > 2 else None
                ),
            }
        )
    latent = 1.0 / precision
    combined = dataclasses.replace(
        plain,
        transformed_mean=weighted / precision,
        transformed_std=np.sqrt(latent + noise),
        latent_variance=latent,
        cached={},
        bins=None,
    )
    return {"leads": leads}, combined


def best_blend(gp_error: np.ndarray, moved_error: np.ndarray) -> float | None:
    """``min_w mean(((1 - w) gp_error + w moved_error)^2)`` over ``w`` in [0, 1] (closed form), to 4
    decimals: how far an oracle-weighted blend of the two could lower the squared error; None if empty."""
    if gp_error.size == 0:
        return None
    difference = moved_error - gp_error
    denominator = float(np.sum(difference**2))
    weight = 0.0 if denominator == 0 else float(np.clip(-np.sum(gp_error * difference) / denominator, 0, 1))
    return mean_squared(gp_error + weight * difference)


def pooled_ratio(rows: list[dict], lead: int, name: str) -> float:
    """Sum over frames of reached targets x ``name`` over the same sum of ``gp_mse``, at ``lead``."""
    parts = [(row["targets"] * row["leads"][lead - 1]["reached"], row["leads"][lead - 1]) for row in rows]
    total = sum(count * entry["gp_mse"] for count, entry in parts if entry["gp_mse"] is not None)
    return round(sum(count * entry[name] for count, entry in parts if entry[name] is not None) / total, 3)


@dataclass(frozen=True)
class Case:
    """One frame to fill: its window ``frame`` (y, x), CRS, task seed, planar axes and the ``earlier``
    frames' values ``[ny, nx]`` on the same window, newest first (the gap not yet hidden)."""

    dataset: str
    label: str
    frame: xr.DataArray
    crs: object
    seed: int
    x_km: np.ndarray
    y_km: np.ndarray
    earlier: list[np.ndarray]


def validation_cases(leads: int) -> Iterator[Case]:
    """The validation frames in the window of ``self_calibration_validation.py``, seeds as there."""
    for selection in load_training_config("pipelines/training/anp.yaml").validation:
        frames, crs = event_frames(selection.dataset, selection.start, selection.end)
        whole = open_dataset(selection.dataset).precipitation.sel(
            {conventions.Y: frames[conventions.Y], conventions.X: frames[conventions.X]}
        )
        first = int(np.searchsorted(whole.time.values, frames.time.values[0]))
        x_km, y_km = planar_kilometres(frames[conventions.X].values, frames[conventions.Y].values, crs)
        for index in range(frames.sizes["time"]):
            if first + index - leads < 0:
                sys.exit(f"{selection.dataset}: fewer than {leads} frames before frame {index}")
            earlier = [
                np.asarray(whole.isel(time=first + index - back).values, dtype=np.float64)
                for back in range(1, leads + 1)
            ]
            frame = frames.isel(time=index).drop_vars("time")
            label = str(frames.time.values[index])[:16]
            yield Case(selection.dataset, label, frame, crs, 7000 + 10 * index, x_km, y_km, earlier)


def test_cases(leads: int, skipped: list[str]) -> Iterator[Case]:
    """The interpolation benchmark's test frames and windows (``radar_tasks``: the same seeds, so
    the GP's scores are the benchmark's), with the frames before each in the same window; a frame
    with fewer than ``leads`` frames before it (an event's first) is left out and named in
    ``skipped``."""
    for name in RADAR_DATASETS:
        whole, windows, crs = radar_test_windows(name)
        for number, (index, frame) in enumerate(windows):
            earlier, x_km, y_km = window_history(whole, index, frame, crs, leads)
            label = str(whole.time.values[index])[:16]
            if len(earlier) < leads:
                skipped.append(f"{name} {label}: {len(earlier)} frame(s) before it")
                continue
            yield Case(name, label, frame, crs, 1000 * number, x_km, y_km, earlier)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=3, help="earlier frames moved into the gap (>= 2)")
    parser.add_argument(
        "--motion",
        choices=("hidden", "observed"),
        default="hidden",
        help="estimate the motion from the earlier frames with the gap hidden (and filled by the nearest "
        "pixel), or observed (optimistic: the truth of the earlier frames inside the gap)",
    )
    parser.add_argument("--output", default="advection_check", metavar="STEM")
    parser.add_argument(
        "--test",
        action="store_true",
        help="the interpolation benchmark's test frames of the five radars instead of the validation frames",
    )
    arguments = parser.parse_args()
    require_data_dir()
    if arguments.leads < 2:
        sys.exit(f"--leads: the motion needs two earlier frames, got {arguments.leads}")
    started = time.perf_counter()
    model = get_model("gp")
    rows = []
    skipped: list[str] = []
    for case in tqdm(
        list(test_cases(arguments.leads, skipped) if arguments.test else validation_cases(arguments.leads))
    ):
        task = frame_tasks(case.frame, case.crs, case.seed)["masked_blocks"]
        hidden = np.asarray(task.target_coords["row"]), np.asarray(task.target_coords["column"])
        earlier = []
        for values in case.earlier:
            values = values.copy()
            values[hidden] = np.nan
            earlier.append(values)
        plain_dataset = model.predict(task)
        plain = Prediction.from_dataset(plain_dataset)
        row, combined = frame_row(
            plain,
            task,
            moved_frames(earlier, case.earlier if arguments.motion == "observed" else earlier),
            context_pixels(task, case.x_km, case.y_km),
        )
        gp_scores, combined_scores = (
            score_prediction(plain_dataset, task),
            score_prediction(combined.to_dataset(), task),
        )
        rows.append(
            {
                "dataset": case.dataset,
                "frame": case.label,
                "targets": task.n_target,
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
        # squared errors over the GP's on the targets each lead reached first, pooled over the frames
        # (each frame weighted by those targets)
        **{
            f"lead_{name}_over_gp_mse": {
                lead: pooled_ratio(rows, lead, name) for lead in range(1, arguments.leads + 1)
            }
            for name in ("moved_mse", "best_blend_mse")
        },
    }
    result = {
        **result_header(__doc__),
        "leads": arguments.leads,
        "motion": arguments.motion,
        "frames_from": "test" if arguments.test else "validation",
        "skipped": skipped,
        "wall_s": round(time.perf_counter() - started, 1),
        "summary": summary,
        "rows": rows,
    }
    path = write_result(f"{arguments.output}.json", result)
    lines = [
        "| dataset | frame | GP CRPS | combined CRPS | GP cov 90 | combined cov 90 | "
        + " | ".join(f"lead {k}: reached; MSE moved, best blend, GP" for k in range(1, arguments.leads + 1))
        + " |",
        "|---|---|---|---|---|---|" + "---|" * arguments.leads,
    ]
    for row in rows:
        cells = [
            f"{lead['reached']:.2f}; {lead['moved_mse']}, {lead['best_blend_mse']}, {lead['gp_mse']}"
            if lead["reached"]
            else "0"
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
