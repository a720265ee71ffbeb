"""Benchmark: GP vs ordinary kriging, inverse distance and climatology on the same tasks.

Radar datasets: for each, the three wettest frames (at least 30 minutes apart) of its test period
(the events and times the neural processes never trained on, see pipelines/training/anp.yaml: KNMI
from 05:20; the other four events entirely), cropped to their wettest 192 x 192 px window; two tasks
per frame with fixed seeds: masked blocks (3 gaps of 24 px over rain, context from a 24 px ring) and
a uniform gauge-like network (1 % of pixels). Methods: the GP, kriging, inverse distance,
climatology, and the shipped ANP and CNP checkpoints, and three ANP ablations
(benchmarks/checkpoints/: ``anp_task_small``, the shipped recipe with a 64-wide network;
``anp_global``, the previously shipped ANP without per-task normalisation or intensity scaling;
``anp_gaussian_refit``, the shipped ANP with its Gaussian rows refitted too, ``weatherunc refit-head
--gaussian``), and the ConvNP's GP-prior ablations (``convnp_gp``: the ConvNP that corrects a GP's
predictive distribution, pipelines/training/convnp_gp_crps.yaml at step 1,500;
``convnp_gp_ensemble``: the deep ensemble of five such members that differ by seed,
convnp_gp_ensemble.yaml; ``convnp_gp_ensemble_random_start``: five members whose new weights were
drawn with their seed, convnp_gp_ensemble_random_start.yaml). SIC97: 10-fold cross-validation on the
100 training stations (not the neural processes: they were trained on radar rates, not daily gauge
totals). Also scores by distance to the nearest context on the masked-block tasks. Writes
``benchmarks/results/interpolation.json`` (one row per dataset x task x frame x method, and means
over frames with the standard error of the 90 % coverage over frames) and ``interpolation.md``.

``METHOD+self`` (GP, ANP, ConvNP): the method's prediction self-calibrated on pseudo-gaps of the
task's own contexts (weatherunc.heads.self_calibration); its ``predict_s`` includes that cost.

``--methods A,B``: run only these methods (registered names or ablations) and replace their rows
in the existing ``interpolation.json`` (the other methods' rows are kept as committed; the summary,
the scores by distance and the markdown are rebuilt from all rows). ``--sic97`` with it also
re-runs the SIC97 rows of every station method and replaces them.

``--holdout``: the same for the GP, the three baselines and the ConvNP, on tasks that no choice of the
GP's defaults looked at: the three wettest frames of each test period that are at least 30
minutes from each other and at least 15 minutes from the main run's frames (fewer where the
period is short), other task seeds, and SIC97 folds with another seed. Writes
``interpolation_holdout.json`` and ``interpolation_holdout.md``.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/interpolation.py [--holdout]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import xarray as xr
from common import RESULTS, require_data_dir, result_header, write_result
from tqdm import tqdm

from weatherunc.evaluation import score_prediction, scores_by_distance
from weatherunc.geolocation import crs_of
from weatherunc.loading import open_dataset
from weatherunc.models.gp import GaussianProcessConfig, GaussianProcessInterpolator
from weatherunc.models.registry import Interpolator, get_model
from weatherunc.tasks import (
    Task,
    gauge_network,
    masked_blocks,
    planar_kilometres,
    station_folds,
    wettest_window,
)

RADAR_DATASETS = (
    "knmi_20100826",
    "mch_20150515",
    "fmi_20160928",
    "bom_prcp_c10_20201031",
    "mrms_sample_20190610",
)
#: Test period per dataset (start, end); absent: the whole event.
TEST_PERIODS = {"knmi_20100826": ("2010-08-26T05:20", None)}
METHODS = ("gp", "kriging", "idw", "climatology")
NEURAL_METHODS = (
    "anp",
    "cnp",
    "convnp",
    "anp_task_small",
    "anp_global",
    "anp_gaussian_refit",
    "convnp_gp",
    "convnp_gp_ensemble",
    "convnp_gp_ensemble_random_start",
)
#: Ablation checkpoints kept beside the benchmarks (see pipelines/training/).
ABLATIONS = {
    "anp_task_small": "anp_task_normalised_small.safetensors",
    "anp_global": "anp_global_normalisation.safetensors",
    "anp_gaussian_refit": "anp_gaussian_refit.safetensors",
}
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
#: The ConvNP's GP-prior ablations (pipelines/training/convnp_gp_*.yaml): one checkpoint, or the
#: members of a deep ensemble.
CONVNP_ABLATIONS = {
    "convnp_gp": ("convnp_gp_crps_run/last-00001500.safetensors",),
    "convnp_gp_ensemble": tuple(f"convnp_gp_ensemble/member-{number}.safetensors" for number in range(1, 6)),
    "convnp_gp_ensemble_random_start": tuple(
        f"convnp_gp_ensemble_random_start/member-{number}.safetensors" for number in range(1, 6)
    ),
}
STATION_METHODS = METHODS
DISTANCE_METHODS = (
    "gp",
    "kriging",
    "anp",
    "cnp",
    "convnp",
    "gp+self",
    "anp+self",
    "convnp+self",
    "convnp_gp_ensemble",
)
#: Methods also run self-calibrated (``METHOD+self``: weatherunc.heads.self_calibration).
SELF_METHODS = ("gp", "anp", "convnp")
WINDOW = 192
FRAMES_PER_DATASET = 3
#: Added to every task and fold seed of the ``--holdout`` run.
HOLDOUT_SEED = 50_000
# : The ``--holdout`` run's frames are at least this far from the main run's (the MRMS sample spans 70
# minutes).
HOLDOUT_MINUTES = 15
METRICS = ("crps", "nlpd", "rmse", "mae", "bias", "coverage_50", "coverage_80", "coverage_90", "coverage_95")


def wettest_frames(
    dataset: xr.Dataset, count: int, *, avoid: tuple[int, ...] = (), avoid_minutes: float = HOLDOUT_MINUTES
) -> list[int]:
    """Indices of the ``count`` wettest frames, at least 30 minutes apart and at least ``avoid_minutes``
    from the frames ``avoid``."""
    wet = (dataset.precipitation > 0.1).mean(("y", "x")).values
    seconds = np.diff(dataset.time.values[:2]).astype("timedelta64[s]").astype(int)[0]
    step = max(1, int(np.ceil(30 * 60 / seconds)))
    away = max(1, int(np.ceil(avoid_minutes * 60 / seconds)))
    chosen: list[int] = []
    for index in np.argsort(-wet, kind="stable"):
        if all(abs(int(index) - other) >= step for other in chosen) and all(
            abs(int(index) - other) >= away for other in avoid
        ):
            chosen.append(int(index))
        if len(chosen) == count:
            break
    return sorted(chosen)


def convnp_ablation(name: str) -> Interpolator:
    """The ConvNP ablation ``name`` of :data:`CONVNP_ABLATIONS`: its checkpoint, or a deep ensemble of
    its members (a member's checkpoint sha256 in each prediction's ``member_checkpoints``)."""
    paths = [CHECKPOINTS / path for path in CONVNP_ABLATIONS[name]]
    if len(paths) == 1:
        return get_model("convnp", checkpoint=paths[0], name=name)
    return get_model("convnp", members=paths, name=name)


def checkpoint_sha256(model: Interpolator) -> str | list[str]:
    """The sha256 of ``model``'s checkpoint, or of each member's for a deep ensemble."""
    if hasattr(model, "members"):
        return [getattr(member, "checkpoint_sha256", "") for member in model.members]
    return getattr(model, "checkpoint_sha256", "")


def radar_test_windows(
    name: str, *, holdout: bool = False
) -> tuple[xr.Dataset, list[tuple[int, xr.DataArray]], object]:
    """The whole event of one radar dataset, its test frames as (index in the whole event, the
    frame's wettest ``WINDOW`` px window (y, x)), and its CRS: the ``FRAMES_PER_DATASET`` wettest
    frames of the test period (``holdout``: other frames, see the module docstring)."""
    whole = open_dataset(name)
    start, end = TEST_PERIODS.get(name, (None, None))
    period = whole.sel(time=slice(start, end))
    frames = wettest_frames(period, FRAMES_PER_DATASET)
    if holdout:
        frames = wettest_frames(period, FRAMES_PER_DATASET, avoid=tuple(frames))
    offset = int(np.searchsorted(whole.time.values, period.time.values[0]))  # where the period starts
    windows = [
        (
            offset + index,
            wettest_window(
                period.precipitation.isel(time=index).load().drop_vars(["latitude", "longitude", "time"]),
                WINDOW,
            ),
        )
        for index in frames
    ]
    return whole, windows, crs_of(whole)


def radar_tasks(name: str, *, holdout: bool = False) -> list[tuple[str, str, Task]]:
    """(task kind, frame time, task) for one radar dataset (``holdout``: other frames and seeds, see the
    module docstring), on the windows of :func:`radar_test_windows`."""
    whole, windows, crs = radar_test_windows(name, holdout=holdout)
    tasks = []
    for frame_number, (index, frame) in enumerate(windows):
        time_label = str(whole.time.values[index])[:16]
        seed = 1000 * frame_number + (HOLDOUT_SEED if holdout else 0)
        tasks += [(kind, time_label, task) for kind, task in frame_tasks(frame, crs, seed).items()]
    return tasks


def frame_histories(name: str, count: int) -> list[tuple[list[np.ndarray], np.ndarray, np.ndarray]]:
    """Per frame of :func:`radar_tasks` (main run, in its order; two tasks a frame): the values
    ``[ny, nx]`` of the up to ``count`` frames before it in the same window, newest first, from the
    whole event (past observations of the radar, whatever period they belong to), and the window's
    planar km axes ``x_km``, ``y_km`` (the tasks' coordinates)."""
    whole, windows, crs = radar_test_windows(name)
    return [window_history(whole, index, frame, crs, count) for index, frame in windows]


def window_history(
    whole: xr.Dataset, index: int, frame: xr.DataArray, crs, count: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The values ``[ny, nx]`` of the up to ``count`` frames of ``whole`` before its frame ``index``
    in ``frame``'s window, newest first, and the window's planar km axes ``x_km``, ``y_km``."""
    earlier = [
        np.asarray(
            whole.precipitation.isel(time=index - back)
            .sel({"y": frame["y"].values, "x": frame["x"].values})
            .values,
            dtype=np.float64,
        )
        for back in range(1, count + 1)
        if index - back >= 0
    ]
    return earlier, *planar_kilometres(frame["x"].values, frame["y"].values, crs)


def frame_tasks(frame: xr.DataArray, crs, seed: int) -> dict[str, Task]:
    """The benchmark's two tasks on one frame window (y, x): masked blocks (3 gaps of 24 px over rain,
    context from a 24 px ring, at most 2,000 contexts) and a 1 % gauge-like network."""
    return {
        "masked_blocks": masked_blocks(
            frame,
            block_pixels=24,
            count=3,
            halo_pixels=24,
            max_context=2000,
            min_wet_fraction=0.3,
            seed=seed,
            crs=crs,
        ),
        "gauge_network": gauge_network(frame, fraction=0.01, max_target=10_000, seed=seed + 1, crs=crs),
    }


def _row(
    dataset: str, kind: str, frame: str, method: str, task: Task, prediction: xr.Dataset
) -> dict[str, object]:
    scores = score_prediction(prediction, task)
    return {
        "dataset": dataset,
        "task": kind,
        "frame": frame,
        "method": method,
        **{key: round(scores[key], 4) for key in METRICS},
        "fit_s": round(float(prediction.attrs["fit_seconds"]), 3),
        "predict_s": round(float(prediction.attrs["predict_seconds"]), 3),
        "n_context": task.n_context,
        "n_target": task.n_target,
    }


def sic97_rows(*, seed: int = 0) -> list[dict[str, object]]:
    """10-fold cross-validation on SIC97 (folds drawn with ``seed``), predictions pooled over folds, then
    scored."""
    stations = open_dataset("sic97").compute()
    rows = []
    methods = {name: get_model(name) for name in STATION_METHODS}
    methods["gp_altitude"] = GaussianProcessInterpolator(GaussianProcessConfig(), name="gp_altitude")
    for method, model in methods.items():
        covariates = ("altitude_m",) if method == "gp_altitude" else ()
        folds = list(station_folds(stations, folds=10, seed=seed, covariates=covariates))
        rows.append(pooled_fold_row("sic97", "10-fold CV", "1986-05-08", method, model, folds))
    return rows


def pooled_fold_row(
    dataset: str, kind: str, frame: str, method: str, model: Interpolator, folds: list[Task]
) -> dict[str, object]:
    """One scored row for cross-validation ``folds`` over a station set: ``model`` predicts every
    fold, the predictions ``[n_target of the fold]`` are pooled over folds ``[n_station]`` and
    scored at once (fit and predict seconds summed; ``n_context``: the first fold's)."""
    predictions = [model.predict(task) for task in folds]
    pooled = xr.concat(predictions, dim="station", combine_attrs="drop_conflicts")
    pooled.attrs.update(predictions[0].attrs)
    pooled.attrs["fit_seconds"] = sum(p.attrs["fit_seconds"] for p in predictions)
    pooled.attrs["predict_seconds"] = sum(p.attrs["predict_seconds"] for p in predictions)
    task = Task(
        np.zeros((1, 2)),
        np.zeros(1),
        np.concatenate([t.target_coordinates for t in folds]),
        np.concatenate([t.target_values for t in folds]),
        target_dim="station",
        target_coords={"station": np.concatenate([t.target_coords["station"] for t in folds])},
    )
    row = _row(dataset, kind, frame, method, task, pooled)
    row["n_context"] = folds[0].n_context
    return row


def summarise(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Means over frames per dataset x task x method, and the standard error over frames of the
    90 % coverage (``coverage_90_se``: sample standard deviation / sqrt(frames); None for one
    frame), so that a mean near the edge of the 0.85-0.95 band can be read with its spread."""
    groups: dict[tuple[str, str, str], list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        groups[(row["dataset"], row["task"], row["method"])].append(row)
    summary = []
    for (dataset, task, method), members in groups.items():
        entry = {"dataset": dataset, "task": task, "method": method, "frames": len(members)}
        for key in (*METRICS, "fit_s", "predict_s", "n_context", "n_target"):
            entry[key] = round(float(np.mean([member[key] for member in members])), 4)
        coverage = [member["coverage_90"] for member in members]
        entry["coverage_90_se"] = (
            round(float(np.std(coverage, ddof=1) / np.sqrt(len(coverage))), 4) if len(coverage) > 1 else None
        )
        summary.append(entry)
    return summary


def markdown(summary: list[dict[str, object]]) -> str:
    """The summary as a Markdown table."""
    columns = (
        "dataset",
        "task",
        "method",
        "frames",
        "crps",
        "nlpd",
        "rmse",
        "mae",
        "coverage_90",
        "coverage_90_se",
        "coverage_95",
        "fit_s",
        "predict_s",
        "n_context",
        "n_target",
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join("-" if entry[column] is None else str(entry[column]) for column in columns) + " |"
        for entry in summary
    ]
    return "\n".join(lines) + "\n"


def distance_rows(dataset: str, method: str, parts: list[xr.Dataset]) -> list[dict[str, object]]:
    """Scores by distance to the nearest context, pooled over a dataset's masked-block tasks."""
    rows = []
    for index in range(parts[0].sizes["distance"]):
        counts = np.array([float(part["count"][index]) for part in parts])
        if counts.sum() == 0:
            continue
        weights = counts / counts.sum()
        pooled = {
            name: float(
                np.nansum([float(part[name][index]) * weight for part, weight in zip(parts, weights)])
            )
            for name in ("crps", "coverage_90")
        }
        rows.append(
            {
                "dataset": dataset,
                "method": method,
                "distance_km": (
                    f"{float(parts[0].distance_lower[index]):g}-{float(parts[0].distance_upper[index]):g}"
                ),
                "count": int(counts.sum()),
                "crps": round(pooled["crps"], 4),
                "coverage_90": round(pooled["coverage_90"], 4),
            }
        )
    return rows


def distance_markdown(rows: list[dict[str, object]]) -> str:
    """Coverage and CRPS by distance as a Markdown table."""
    columns = ("dataset", "method", "distance_km", "count", "crps", "coverage_90")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="GP, baselines and ConvNP on the next wettest frames with other seeds",
    )
    parser.add_argument(
        "--methods",
        default="",
        help="comma-separated methods to run; their rows replace those in the existing result",
    )
    parser.add_argument(
        "--sic97",
        action="store_true",
        help="with --methods: also re-run the SIC97 rows (all their methods) and replace them",
    )
    arguments = parser.parse_args()
    holdout = arguments.holdout
    only = tuple(name for name in arguments.methods.split(",") if name)
    require_data_dir()
    start = time.perf_counter()
    rows: list[dict[str, object]] = []
    distances: list[dict[str, object]] = []
    factories = {method: (lambda method=method: get_model(method)) for method in (*METHODS, "convnp")}
    if not holdout:
        factories.update({method: (lambda method=method: get_model(method)) for method in ("anp", "cnp")})
        factories.update(
            {
                name: (
                    lambda name=name, file=file: get_model("anp", checkpoint=CHECKPOINTS / file, name=name)
                )
                for name, file in ABLATIONS.items()
            }
        )
        factories.update({name: (lambda name=name: convnp_ablation(name)) for name in CONVNP_ABLATIONS})
    factories.update(
        {
            f"{method}+self": (lambda method=method: get_model(f"{method}+self"))
            for method in SELF_METHODS
            if method in factories
        }
    )
    unknown = sorted(set(only) - set(factories))
    if unknown:
        sys.exit(f"unknown methods {unknown}; valid: {sorted(factories)}")
    models = {name: factory() for name, factory in factories.items() if not only or name in only}
    for dataset in RADAR_DATASETS:
        tasks = radar_tasks(dataset, holdout=holdout)
        pooled: dict[str, list[xr.Dataset]] = defaultdict(list)
        for kind, frame, task in tqdm(tasks, desc=dataset):
            for method, model in models.items():
                prediction = model.predict(task)  # METHOD+self: the product's path (a GP fits once)
                rows.append(_row(dataset, kind, frame, method, task, prediction))
                if kind == "masked_blocks" and method in DISTANCE_METHODS:
                    pooled[method].append(scores_by_distance(prediction, task))
        for method, parts in pooled.items():
            distances += distance_rows(dataset, method, parts)
    if not only or arguments.sic97:
        rows += sic97_rows(seed=HOLDOUT_SEED if holdout else 0)
    name = "interpolation_holdout" if holdout else "interpolation"
    if only:
        previous = json.loads((RESULTS / f"{name}.json").read_text())
        rows = [
            row
            for row in previous["rows"]
            if row["method"] not in only and not (arguments.sic97 and row["dataset"] == "sic97")
        ] + rows
        distances = [row for row in previous["coverage_by_distance"] if row["method"] not in only] + distances
    summary = summarise(rows)
    table = markdown(summary) + "\n" + distance_markdown(distances)
    print(table)
    result = {
        **result_header(__doc__),
        "wall_s": round(time.perf_counter() - start, 1),
        "checkpoints": {
            method: checkpoint_sha256(models[method]) for method in NEURAL_METHODS if method in models
        },
        "methods_run": sorted(models),
        # the fields of each self-calibrated method's options that differ from the defaults
        "self_calibration_options": {
            method: model.options.changed() for method, model in models.items() if method.endswith("+self")
        },
        "summary": summary,
        "coverage_by_distance": distances,
        "rows": rows,
    }
    if only:
        result["checkpoints"] = {**previous.get("checkpoints", {}), **result["checkpoints"]}
        result["self_calibration_options"] = {
            **previous.get("self_calibration_options", {}),
            **result["self_calibration_options"],
        }
        result["methods_run"] = (
            f"{', '.join(only)} in this run; the other rows from the run of "
            f"{previous['machine'].get('date', 'an earlier date')}"
        )
    if holdout:
        result["holdout"] = (
            f"the wettest frames at least {HOLDOUT_MINUTES} minutes from the main run's, task and fold "
            f"seeds + {HOLDOUT_SEED}"
        )
    path = write_result(f"{name}.json", result)
    (RESULTS / f"{name}.md").write_text(table)
    print(f"wrote {path} in {result['wall_s']} s")


if __name__ == "__main__":
    main()
