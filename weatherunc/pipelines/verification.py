"""Stages 7 and 8 of a batch job: verification against the withheld truth, and figures.

Scores are computed frame by frame from the store and pooled over every predicted pixel
with withheld truth: crps, nlpd, rmse, mae, bias, coverage_50/80/90/95 (as
:func:`weatherunc.evaluation.score_prediction`), and for the bin probabilities the
top-label ECE (15 bins), multiclass NLL, Brier score and RPS, plus per threshold the Brier
score with its decomposition and the binary ECE of the rain probability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from weatherunc import conventions, metrics
from weatherunc.evaluation import score_prediction
from weatherunc.metrics.reliability import ReliabilityAccumulator
from weatherunc.pipelines.job_config import JobConfig
from weatherunc.pipelines.stages import calibration_attributes
from weatherunc.prediction import Prediction
from weatherunc.tasks import Task

POOLED = ("crps", "nlpd", "mae", "bias", "coverage_50", "coverage_80", "coverage_90", "coverage_95")
ECE_BINS = 15


def _frame_targets(frame: xr.Dataset) -> tuple[xr.Dataset, Task] | None:
    truth = frame["withheld_precipitation"].values
    predicted = np.isfinite(frame[conventions.PRECIPITATION_MEAN].values) & np.isfinite(truth)
    if not predicted.any():
        return None
    rows, columns = np.nonzero(predicted)
    flat = frame.isel(y=xr.DataArray(rows, dims="target"), x=xr.DataArray(columns, dims="target"))
    task = Task(
        np.zeros((1, 2)), np.zeros(1), np.zeros((rows.size, 2)), truth[rows, columns].astype(np.float64)
    )
    return flat, task


def verify_store(store: Path, job: JobConfig) -> dict[str, Any]:
    """Pooled scores over every frame of a (staged or finished) job store."""
    dataset = xr.open_zarr(store, consolidated=False)
    attrs = {key: value for key, value in dataset[conventions.PRECIPITATION_MEAN].attrs.items()}
    totals: dict[str, float] = dict.fromkeys(POOLED, 0.0)
    squared_error, count = 0.0, 0
    has_bins = conventions.BIN_PROBABILITY in dataset
    top_label = ReliabilityAccumulator.init(ECE_BINS)
    thresholds = (
        dataset[conventions.RAIN_PROBABILITY][conventions.THRESHOLD].values
        if conventions.RAIN_PROBABILITY in dataset
        else np.array([])
    )
    per_threshold = {float(t): ReliabilityAccumulator.init(ECE_BINS) for t in thresholds}
    brier = {float(t): [] for t in thresholds}
    categorical = {"nll": 0.0, "brier": 0.0, "rps": 0.0}
    per_frame = []
    for index in range(dataset.sizes["time"]):
        frame = dataset.isel(time=index).load()
        found = _frame_targets(frame)
        if found is None:
            continue
        flat, task = found
        flat = flat.assign_attrs(dataset.attrs)  # the root attributes record the transform
        prediction = Prediction.from_dataset(flat)
        scores = score_prediction(flat, task)
        n = task.n_target
        for key in POOLED:
            totals[key] += scores[key] * n
        squared_error += scores["rmse"] ** 2 * n
        count += n
        per_frame.append(
            {
                "time": str(frame["time"].values)[:16],
                "n_target": n,
                **{key: round(scores[key], 4) for key in ("crps", "rmse", "coverage_90")},
            }
        )
        if has_bins:
            bins = prediction.bins
            probabilities = xr.DataArray(bins.probability, dims=(*prediction.dims, conventions.BIN))
            observed = metrics.observed_bins(xr.DataArray(task.target_values, dims="target"), bins.edges)
            categorical["nll"] += float(metrics.categorical_nll(probabilities, observed)) * n
            categorical["brier"] += float(metrics.multiclass_brier_score(probabilities, observed)) * n
            categorical["rps"] += float(metrics.ranked_probability_score(probabilities, observed)) * n
            top_label = top_label.merge(metrics.top_label_calibration(probabilities, observed, bins=ECE_BINS))
            rain_thresholds, rain = prediction.rain_probability()
            for threshold in thresholds:
                forecast = rain[:, int(np.flatnonzero(rain_thresholds == threshold)[0])]
                event = task.target_values >= threshold
                per_threshold[float(threshold)] = per_threshold[float(threshold)].accumulate(forecast, event)
                brier[float(threshold)].append((forecast, event))
    if count == 0:
        return {
            "job": job.name,
            "model": job.model.name,
            "n_target": 0,
            "note": "no withheld truth to verify against",
        }
    result: dict[str, Any] = {
        "job": job.name,
        "dataset": job.dataset,
        "model": job.model.name,
        "frames": dataset.sizes["time"],
        "n_target": count,
        "scores": {
            **{key: round(totals[key] / count, 5) for key in POOLED},
            "rmse": round(float(np.sqrt(squared_error / count)), 5),
        },
        "per_frame": per_frame,
        "units": attrs.get("units", "mm h-1"),
    }
    if has_bins:
        result["probability"] = {
            "ece_top_label": round(top_label.expected_calibration_error(), 5),
            **{key: round(value / count, 5) for key, value in categorical.items()},
            "per_threshold": {},
        }
        for threshold in per_threshold:
            forecast = np.concatenate([pair[0] for pair in brier[threshold]])
            event = np.concatenate([pair[1] for pair in brier[threshold]])
            decomposition = metrics.brier_decomposition(xr.DataArray(forecast), xr.DataArray(event))
            result["probability"]["per_threshold"][f"{threshold:g}"] = {
                "ece": round(per_threshold[threshold].expected_calibration_error(), 5),
                "brier": round(float(np.mean((forecast - event) ** 2)), 5),
                "reliability": round(decomposition.reliability, 5),
                "resolution": round(decomposition.resolution, 5),
                "uncertainty": round(decomposition.uncertainty, 5),
                "reliability_diagram": {
                    key: np.round(values, 5).tolist()
                    for key, values in zip(
                        ("forecast_probability", "observed_frequency", "count"),
                        (
                            per_threshold[threshold].compute()[name].values
                            for name in ("forecast_probability", "observed_frequency", "count")
                        ),
                    )
                },
            }
    return result


def write_figures(store: Path, job: JobConfig, scores: dict[str, Any], folder: Path) -> list[Path]:
    """Maps of the chosen frames and the reliability diagram of P(rate >= threshold)."""
    if not job.plots.enabled:
        return []
    from weatherunc.plotting import reliability_figure, save_figure
    from weatherunc.plotting.files import plot_frame

    dataset = xr.open_zarr(store, consolidated=False)
    written: list[Path] = []
    attrs = {"model": job.model.name, **calibration_attributes(job)}
    for index in job.plots.frames:
        if index >= dataset.sizes["time"]:
            continue
        frame = dataset.isel(time=index).load().assign_attrs(**attrs)
        stem = str(np.datetime_as_string(frame["time"].values, unit="m")).replace("-", "").replace(":", "")
        written += plot_frame(frame, folder, threshold=job.plots.threshold, stem=stem)
    table = scores.get("probability", {}).get("per_threshold", {}).get(f"{job.plots.threshold:g}")
    if table:
        diagram = xr.Dataset(
            {
                name: ("bin", np.asarray(table["reliability_diagram"][name], dtype=float))
                for name in ("forecast_probability", "observed_frequency", "count")
            },
            coords={"bin": (np.arange(ECE_BINS) + 0.5) / ECE_BINS},
        )
        figure = reliability_figure(
            {job.model.name: diagram},
            title=f"P(rate >= {job.plots.threshold:g} mm/h), ECE {table['ece']:.3f}",
        )
        written.append(save_figure(figure, folder / f"reliability_{job.plots.threshold:g}mmh.png"))
    return written
