"""Benchmark: does self-calibration bring each frame's 90 % coverage closer to 0.9, on validation frames?

Validation frames only (pipelines/training/anp.yaml: KNMI 04:40-05:10, BoM CSCN from 15:00; never
the test frames), in a fixed 192 x 192 px window per event (the wettest of the period's mean), with
the interpolation benchmark's task geometry on every frame: masked blocks (3 gaps of 24 px over
rain, context from a 24 px ring, at most 2,000 contexts) and a 1 % gauge-like network. Frames
whose window would reach before the validation period are not scored, so every variant is scored
on the same tasks.

Per model (the GP, the shipped ANP and ConvNP) and variant: the model alone (``none``),
self-calibrated on the frame's own pseudo-targets (``self``), and with a rolling window of the
``N - 1`` frames before it (``self_window_N``: ``SelfCalibrated(earlier_frames=...)``, the jobs'
``calibration: {self: {window_frames: N}}``), and self-calibrated without the guards that keep a fit
only beyond the pseudo-targets' noise (``self_unguarded``: ``evidence_z=0``, no cross-validation of
the bin scaler; the CRPS and mean guards stay). Rows: per dataset x task x variant, the mean 90 %
coverage over frames, the mean of each frame's distance from 0.9 (``coverage_error``), the CRPS
and the RMSE of the mean relative to ``none`` (``rmse_ratio``, its frames' mean, and
``max_rmse_ratio``, their largest), the top-label ECE of the rain bins pooled over the frames (15 bins, as
``calibration.py``) and the self-calibration seconds relative to the model's own. Also per row
and frame, the std factor fitted on the pseudo-targets against the one that would have given the
frame's real targets 0.9 coverage (``oracle_factor``, known only with the truth):
``factor_correlation`` is their correlation over the frames of one model and variant (log factors);
``dropped_REASON``: in how many frames each guard dropped the std factors (a frame can count under
two). By distance to the nearest context, as the interpolation benchmark scores it (masked-block
targets of each dataset pooled over its frames; ``coverage_by_distance`` in the JSON): how many
bins have a 90 % coverage outside 0.85-0.95 (``distance_bins_outside``) and the bins' mean distance
from 0.9 (``distance_coverage_error``).

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/self_calibration_validation.py

``--shifted`` also scores the GP and the ANP on a radar neither trained on: ``SHIFTED_WINDOWS``
windows of 192 px of the MRMS CONUS hour (every ``SHIFTED_FRAME_STRIDE``-th frame), the wettest
that lie outside the MRMS test sample's region and its 3-degree buffer (``SHIFTED_EXCLUDE_BOX``, as
pipelines/training/convnp.yaml leaves it out; the ConvNP trained on the rest of the continent, so it
is not scored there). Their rows are pooled under ``shifted``, apart from the ``all`` rows of the
validation frames, so that an option can be chosen where the model meets weather it has not seen
(as on the test radars FMI and MRMS) without touching a test frame.

Each model is self-calibrated with its own defaults (``model_options``: the neural processes'
differ). ``--option NAME=VALUE`` (repeatable) sets a field of ``SelfCalibrationOptions`` over them
for every self-calibrated variant, ``--models gp,anp`` scores only those models, ``--windows 1,6``
the rolling windows of those frame counts (default 1 and 3; only frames with that many before them
are scored), ``--shifted-stride N`` takes every N-th frame of the shifted windows, and ``--output
STEM`` names the result files. The options' defaults are chosen on these frames, never on the test
frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict

import numpy as np
import xarray as xr
from bin_scores import pooled_ece
from common import RESULTS, parsed_options, require_data_dir, result_header, write_result
from interpolation import distance_rows, frame_tasks
from tqdm import tqdm

from weatherunc import conventions
from weatherunc.evaluation import score_prediction, scores_by_distance
from weatherunc.geolocation import crs_of
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.calibration import rescale_std
from weatherunc.heads.fitting import pool_predictions
from weatherunc.heads.self_calibration import (
    EarlierFrame,
    SelfCalibrated,
    SelfCalibrationOptions,
    model_options,
)
from weatherunc.heads.self_calibration.fitting import FACTOR_GRID
from weatherunc.loading import open_dataset
from weatherunc.models.registry import get_model
from weatherunc.tasks import WET_THRESHOLD, Task, planar_kilometres, wettest_window
from weatherunc.training.config import load_training_config
from weatherunc.training.patches import overlaps

MODELS = ("gp", "anp", "convnp")
WINDOWS = (1, 3)
#: The rules before the evidence and cross-validation guards (``self_unguarded``).
UNGUARDED = {"evidence_z": 0.0, "probability_cross_validated": False}
WINDOW_PIXELS = 192
#: The guards that can drop the std factors (``std_factors_dropped_by`` of the fit's record).
DROP_REASONS = ("coverage_within_noise", "crps_rise", "mean_error_rise")
#: ``--shifted``: the radar, the test region left out (lon_min, lat_min, lon_max, lat_max), how
#: many windows and which frames; the models scored there (not trained on it).
SHIFTED_DATASET = "mrms_20190610"
SHIFTED_EXCLUDE_BOX = (-102.92, 26.40, -94.36, 34.96)
SHIFTED_WINDOWS, SHIFTED_FRAME_STRIDE = 4, 6
SHIFTED_MODELS = ("gp", "anp")


def event_frames(dataset: str, start: str | None, end: str | None) -> tuple[xr.DataArray, object]:
    """The validation period's frames (time, y, x) in its fixed window, and the CRS."""
    opened = open_dataset(dataset)
    frames = opened.precipitation.sel(time=slice(start, end)).load()
    window = wettest_window(frames.mean("time"), WINDOW_PIXELS)
    frames = frames.sel({conventions.Y: window[conventions.Y], conventions.X: window[conventions.X]})
    return frames.drop_vars(["latitude", "longitude"], errors="ignore"), crs_of(opened)


def shifted_windows(stride: int = SHIFTED_FRAME_STRIDE) -> list[tuple[str, xr.DataArray, object]]:
    """(label, frames (time, y, x), CRS) of the ``--shifted`` windows: on the grid of 192 px blocks,
    the ``SHIFTED_WINDOWS`` with the most wet pixels over every ``SHIFTED_FRAME_STRIDE``-th frame,
    observed throughout, outside ``SHIFTED_EXCLUDE_BOX`` and not next to one another (different
    storms); their frames every ``stride``-th (a divisor of ``SHIFTED_FRAME_STRIDE``, so that the
    windows do not depend on it)."""
    if stride < 1 or SHIFTED_FRAME_STRIDE % stride:
        raise ValueError(f"--shifted-stride must divide {SHIFTED_FRAME_STRIDE}, got {stride}")
    opened = open_dataset(SHIFTED_DATASET)
    crs = crs_of(opened)
    if not crs.is_geographic:
        raise ValueError(f"{SHIFTED_DATASET}: expected a longitude/latitude grid for the exclusion box")
    frames = (
        opened.precipitation.isel(time=slice(None, None, stride))
        .drop_vars(["latitude", "longitude"], errors="ignore")
        .load()
    )
    x, y, size = frames[conventions.X].values, frames[conventions.Y].values, WINDOW_PIXELS
    values = frames.values[:: SHIFTED_FRAME_STRIDE // stride]
    observed = np.isfinite(values).all(axis=0)
    wet = (np.nan_to_num(values) > WET_THRESHOLD).sum(axis=0)
    candidates = []
    for row in range(0, y.size - size + 1, size):
        for column in range(0, x.size - size + 1, size):
            rows, columns = slice(row, row + size), slice(column, column + size)
            box = (x[columns].min(), y[rows].min(), x[columns].max(), y[rows].max())
            if observed[rows, columns].all() and not overlaps(box, SHIFTED_EXCLUDE_BOX):
                candidates.append((int(wet[rows, columns].sum()), row // size, column // size))
    chosen: list[tuple[int, int, int]] = []
    for candidate in sorted(candidates, reverse=True):
        if len(chosen) < SHIFTED_WINDOWS and all(
            max(abs(candidate[1] - other[1]), abs(candidate[2] - other[2])) > 1 for other in chosen
        ):
            chosen.append(candidate)
    return [
        (
            f"{SHIFTED_DATASET} window at block {block_row},{block_column}",
            frames.isel(
                {
                    conventions.Y: slice(block_row * size, (block_row + 1) * size),
                    conventions.X: slice(block_column * size, (block_column + 1) * size),
                }
            ),
            crs,
        )
        for _, block_row, block_column in chosen
    ]


def pool_of(dataset: str) -> str:
    """The pooled row a dataset's rows join: ``shifted`` for the ``--shifted`` windows, else ``all``."""
    return "shifted" if dataset.startswith(SHIFTED_DATASET) else "all"


def withheld(frame: xr.DataArray, task: Task) -> np.ndarray:
    """The frame's values ``[ny, nx]`` with ``task``'s targets hidden (an earlier frame of a window)."""
    values = np.asarray(frame.values, dtype=np.float64).copy()
    values[task.target_coords["row"], task.target_coords["column"]] = np.nan
    return values


def oracle_factor(prediction: xr.Dataset, task: Task) -> float:
    """The smallest factor of ``FACTOR_GRID`` on the std that gives ``task``'s targets 0.9 coverage
    (bisection: the coverage grows with the factor; the largest if none does)."""
    low, high = -1, FACTOR_GRID.size - 1  # coverage(low) < 0.9 assumed, coverage(high) tested last
    while high - low > 1:
        middle = (low + high) // 2
        if score_prediction(rescale_std(prediction, float(FACTOR_GRID[middle])), task)["coverage_90"] >= 0.9:
            high = middle
        else:
            low = middle
    return float(FACTOR_GRID[high])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--output", default="self_calibration_validation", metavar="STEM")
    parser.add_argument("--shifted", action="store_true", help="also score the MRMS CONUS windows")
    parser.add_argument(
        "--shifted-stride", type=int, default=SHIFTED_FRAME_STRIDE, help="every N-th frame of those windows"
    )
    parser.add_argument(
        "--windows",
        default=",".join(map(str, WINDOWS)),
        help="frames of the rolling windows scored, comma-separated (1: the frame alone)",
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)} (default: all)"
    )
    arguments = parser.parse_args()
    require_data_dir()
    chosen = parsed_options(arguments.option, SelfCalibrationOptions)
    names = [name for name in arguments.models.split(",") if name]
    if not names or set(names) - set(MODELS):
        sys.exit(f"--models: expected names of {', '.join(MODELS)}, got {arguments.models!r}")
    start = time.perf_counter()
    validation = [
        (selection.dataset, *event_frames(selection.dataset, selection.start, selection.end))
        for selection in load_training_config("pipelines/training/anp.yaml").validation
    ]
    if arguments.shifted:
        validation += shifted_windows(arguments.shifted_stride)
    if arguments.shifted_stride != SHIFTED_FRAME_STRIDE and not arguments.shifted:
        sys.exit("--shifted-stride: applies with --shifted only")
    windows = tuple(sorted({int(number) for number in arguments.windows.split(",")}))
    if 1 not in windows or min(windows) < 1:
        sys.exit(f"--windows: expected counts of frames >= 1 including 1, got {arguments.windows!r}")
    records: list[dict[str, object]] = []
    bins: dict[tuple[str, str, str, str], list[tuple[xr.Dataset, np.ndarray]]] = defaultdict(list)
    by_distance: dict[tuple[str, str, str], list[xr.Dataset]] = defaultdict(list)
    changed_by_model: dict[str, dict[str, object]] = {}
    for name in names:
        model = get_model(name)
        changed_by_model[name] = model_options(model, chosen).changed()
        for dataset, frames, crs in validation:
            if pool_of(dataset) == "shifted" and name not in SHIFTED_MODELS:
                continue
            x_km, y_km = planar_kilometres(frames[conventions.X].values, frames[conventions.Y].values, crs)
            tasks = [
                frame_tasks(frames.isel(time=index).drop_vars("time"), crs, 7000 + 10 * index)
                for index in range(frames.sizes["time"])
            ]
            for index in tqdm(range(max(windows) - 1, frames.sizes["time"]), desc=f"{name} {dataset}"):
                for kind, task in tasks[index].items():
                    plain = model.predict(task)
                    seconds = float(plain.attrs.get("fit_seconds", 0.0)) + float(
                        plain.attrs["predict_seconds"]
                    )
                    plain_scores = score_prediction(plain, task)
                    base = {
                        "dataset": dataset,
                        "task": kind,
                        "frame": str(frames.time.values[index])[:16],
                        "model": name,
                        "oracle_factor": oracle_factor(plain, task),
                    }
                    bins[(name, "none", dataset, kind)].append(
                        (with_bin_probabilities(plain), task.target_values)
                    )
                    if kind == "masked_blocks":
                        by_distance[(name, "none", dataset)].append(scores_by_distance(plain, task))
                    records.append(
                        {
                            **base,
                            "variant": "none",
                            "coverage_90": plain_scores["coverage_90"],
                            "crps_ratio": 1.0,
                            "rmse_ratio": 1.0,
                            "cost": 0.0,
                            "factor": 1.0,
                            "dropped_by": [],
                        }
                    )
                    variants = [
                        (f"self_window_{window}" if window > 1 else "self", window, chosen)
                        for window in windows
                    ]
                    variants.append(("self_unguarded", 1, {**chosen, **UNGUARDED}))
                    for variant, window, options in variants:
                        earlier = tuple(
                            EarlierFrame(withheld(frames.isel(time=other), tasks[other][kind]), x_km, y_km)
                            for other in range(index - window + 1, index)
                        )
                        calibrated = SelfCalibrated(
                            model,
                            options=options,  # over the model's own defaults
                            earlier_frames=earlier,
                        ).predict(task)
                        fit = json.loads(calibrated.attrs["self_calibration"])
                        scores = score_prediction(calibrated, task)
                        bins[(name, variant, dataset, kind)].append(
                            (with_bin_probabilities(calibrated), task.target_values)
                        )
                        if kind == "masked_blocks":
                            by_distance[(name, variant, dataset)].append(scores_by_distance(calibrated, task))
                        records.append(
                            {
                                **base,
                                "variant": variant,
                                "coverage_90": scores["coverage_90"],
                                "crps_ratio": scores["crps"] / plain_scores["crps"],
                                "rmse_ratio": scores["rmse"] / plain_scores["rmse"],
                                "cost": float(calibrated.attrs["self_calibration_seconds"])
                                / max(seconds, 1e-9),
                                "factor": float(fit.get("overall_std_factor", 1.0)),
                                "dropped_by": fit.get("scores", {}).get("std_factors_dropped_by", []),
                            }
                        )
    distances = [
        {"model": name, "variant": variant, **row}
        for (name, variant, dataset), parts in sorted(by_distance.items())
        for row in distance_rows(dataset, name, parts)
    ]
    rows = summarise(records, bins, distances)
    table = markdown(rows, changed_by_model)
    print(table)
    result = {
        **result_header(__doc__),
        "wall_s": round(time.perf_counter() - start, 1),
        "options": {
            name: {**dataclasses.asdict(SelfCalibrationOptions()), **changed}
            for name, changed in changed_by_model.items()
        },
        "summary": rows,
        "coverage_by_distance": distances,
        "frames": records,
    }
    path = write_result(f"{arguments.output}.json", result)
    (RESULTS / f"{arguments.output}.md").write_text(table)
    print(f"wrote {path} in {result['wall_s']} s")


def summarise(
    records: list[dict[str, object]],
    bins: dict[tuple[str, str, str, str], list[tuple[xr.Dataset, np.ndarray]]],
    distances: list[dict[str, object]],
) -> list[dict[str, object]]:
    """One row per model x dataset x task x variant, and per model x variant over all of them; the
    masked-block and pooled rows also say how many bins of distance to the nearest context (each
    dataset's masked-block targets pooled over its frames, ``distances``) have a 90 % coverage
    outside 0.85-0.95 and the bins' mean distance from 0.9."""
    groups: dict[tuple, list[dict[str, object]]] = defaultdict(list)
    for record in records:
        groups[(record["model"], record["variant"], record["dataset"], record["task"])].append(record)
        groups[(record["model"], record["variant"], pool_of(str(record["dataset"])), "all")].append(record)
    parts: dict[tuple, list[tuple[xr.Dataset, np.ndarray]]] = defaultdict(list)
    for (model, variant, dataset, task), members in bins.items():
        parts[(model, variant, dataset, task)] += members
        parts[(model, variant, pool_of(dataset), "all")] += members
    rows = []
    for (model, variant, dataset, task), members in groups.items():
        coverage = np.array([member["coverage_90"] for member in members])
        factor = np.log([member["factor"] for member in members])
        oracle = np.log([member["oracle_factor"] for member in members])
        varied = factor.std() > 0 and oracle.std() > 0
        rows.append(
            {
                "model": model,
                "variant": variant,
                "dataset": dataset,
                "task": task,
                "frames": len(members),
                "coverage_90": round(float(coverage.mean()), 4),
                "coverage_error": round(float(np.abs(coverage - 0.9).mean()), 4),
                "crps_ratio": round(float(np.mean([member["crps_ratio"] for member in members])), 4),
                "rmse_ratio": round(float(np.mean([member["rmse_ratio"] for member in members])), 4),
                "max_rmse_ratio": round(float(np.max([member["rmse_ratio"] for member in members])), 4),
                "cost": round(float(np.mean([member["cost"] for member in members])), 3),
                "ece": round(pooled_ece(*pool_predictions(*zip(*parts[(model, variant, dataset, task)]))), 4),
                "factor_correlation": round(float(np.corrcoef(factor, oracle)[0, 1]), 3) if varied else None,
                **{
                    f"dropped_{reason}": sum(reason in member["dropped_by"] for member in members)
                    for reason in DROP_REASONS
                },
                **distance_summary(distances, model, variant, dataset, task),
            }
        )
    return sorted(
        rows,
        key=lambda row: (
            row["model"],
            row["dataset"] in ("all", "shifted"),
            row["dataset"],
            row["task"],
            row["variant"],
        ),
    )


def distance_summary(
    distances: list[dict[str, object]], model: str, variant: str, dataset: str, task: str
) -> dict[str, object]:
    """``distance_bins``, ``distance_bins_outside`` (90 % coverage outside 0.85-0.95) and
    ``distance_coverage_error`` (the bins' mean distance from 0.9) of a row's masked-block targets;
    None for a gauge-network row."""
    if task not in ("masked_blocks", "all"):
        return {"distance_bins": None, "distance_bins_outside": None, "distance_coverage_error": None}
    coverage = np.array(
        [
            row["coverage_90"]
            for row in distances
            if row["model"] == model
            and row["variant"] == variant
            and dataset in (pool_of(str(row["dataset"])), row["dataset"])
        ]
    )
    return {
        "distance_bins": int(coverage.size),
        "distance_bins_outside": int(np.sum((coverage < 0.85) | (coverage > 0.95))),
        "distance_coverage_error": round(float(np.abs(coverage - 0.9).mean()), 4) if coverage.size else None,
    }


def markdown(rows: list[dict[str, object]], changed_by_model: dict[str, dict[str, object]]) -> str:
    fields = (
        "model",
        "dataset",
        "task",
        "variant",
        "frames",
        "coverage_90",
        "coverage_error",
        "crps_ratio",
        "rmse_ratio",
        "max_rmse_ratio",
        "ece",
        "cost",
        "factor_correlation",
        *(f"dropped_{reason}" for reason in DROP_REASONS),
        "distance_bins_outside",
        "distance_coverage_error",
    )
    lines = [
        "Benchmark: self-calibration on validation frames (see benchmarks/self_calibration_validation.py).",
        "",
        "Options other than the defaults, by model (the model's own and `--option`): "
        + "; ".join(f"{name}: {changed or 'none'}" for name, changed in changed_by_model.items())
        + ".",
        "",
        "| " + " | ".join(fields) + " |",
        "|" + "---|" * len(fields),
    ]
    lines += [
        "| " + " | ".join("" if row[field] is None else str(row[field]) for field in fields) + " |"
        for row in rows
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
