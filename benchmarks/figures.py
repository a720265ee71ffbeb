"""Maps and diagnostics for one KNMI and one MeteoSwiss frame (test periods), written to docs/figures/.

For each frame: four 32 px blocks over rain are withheld in the wettest 256 x 256 px window and
filled by the GP, the ANP (calibrated) and kriging. Maps (panel of observed / mean / std /
P(rate > 1 mm/h), combined view) per model, and diagnostics comparing the three: reliability of
P(rate > 1 mm/h) with counts, PIT histogram, coverage against nominal level, CRPS and coverage
against distance to the nearest observation, scores side by side.

    WEATHERUNC_DATA_DIR=../shared/data CARTOPY_DATA_DIR=../shared/data/natural_earth/cartopy_data \\
        .venv/bin/python benchmarks/figures.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
from common import require_data_dir

from weatherunc import metrics
from weatherunc.evaluation import rate_pit_histogram, score_prediction, scores_by_distance
from weatherunc.geolocation import crs_of
from weatherunc.gridding import GridTiling, predict_grid
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.calibration import Calibration
from weatherunc.loading import open_dataset
from weatherunc.models.registry import PACKAGED_MODELS_DIR, get_model
from weatherunc.plotting import (
    combined_map,
    coverage_figure,
    distance_figure,
    model_comparison_figure,
    pit_figure,
    reliability_figure,
    save_figure,
    uncertainty_maps,
)
from weatherunc.tasks import Task, wettest_window

FRAMES = {"knmi": ("knmi_20100826", "2010-08-26T06:40"), "meteoswiss": ("mch_20150515", "2015-05-15T17:30")}
OUT = Path(__file__).resolve().parent.parent / "docs" / "figures"


def withheld(frame: xr.DataArray, count: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    """``count`` non-overlapping observed squares, at least 30 % wet."""
    rng = np.random.default_rng(seed)
    values = frame.values
    mask = np.zeros(values.shape, dtype=bool)
    for _ in range(5000):
        if mask.sum() == count * size * size:
            break
        top, left = rng.integers(0, values.shape[0] - size), rng.integers(0, values.shape[1] - size)
        block = (slice(top, top + size), slice(left, left + size))
        if np.isfinite(values[block]).all() and not mask[block].any() and np.mean(values[block] > 0.1) >= 0.3:
            mask[block] = True
    return mask


def flat(prediction: xr.Dataset, mask: np.ndarray) -> tuple[xr.Dataset, Task]:
    rows, columns = np.nonzero(mask)
    points = prediction.isel(y=xr.DataArray(rows, dims="target"), x=xr.DataArray(columns, dims="target"))
    x, y = prediction.x.values[columns] / 1000, prediction.y.values[rows] / 1000
    observed = prediction.precipitation.values
    context_rows, context_columns = np.nonzero(np.isfinite(observed))
    task = Task(
        np.stack([prediction.x.values[context_columns] / 1000, prediction.y.values[context_rows] / 1000], 1),
        observed[context_rows, context_columns],
        np.stack([x, y], 1),
        prediction.withheld_precipitation.values[rows, columns],
    )
    return points, task


def main() -> None:
    require_data_dir()
    calibration = Calibration.load(PACKAGED_MODELS_DIR / "anp.calibration.json")
    written, summary = [], {}
    for label, (name, time) in FRAMES.items():
        dataset = open_dataset(name)
        crs = crs_of(dataset)
        frame = wettest_window(
            dataset.precipitation.sel(time=time).load().drop_vars(["latitude", "longitude"]), 256
        )
        mask = withheld(frame)
        tiling = GridTiling(tile_pixels=128, halo_pixels=48, max_context=4096)
        models = {"gp": get_model("gp"), "anp": get_model("anp"), "kriging": get_model("kriging")}
        scores, reliability, pit, coverage, distance = {}, {}, {}, {}, {}
        for model_name, model in models.items():
            prediction = predict_grid(model, frame, crs=crs, tiling=tiling, target_mask=mask, progress=False)
            if model_name == "anp":
                prediction = calibration.apply(prediction)
            written.append(
                save_figure(
                    uncertainty_maps(prediction, threshold=1.0), OUT / f"{label}_{model_name}_maps.png"
                )
            )
            written.append(save_figure(combined_map(prediction), OUT / f"{label}_{model_name}_combined.png"))
            points, task = flat(prediction, mask)
            scores[model_name] = score_prediction(points.assign_attrs(prediction.attrs), task)
            probability = with_bin_probabilities(points.assign_attrs(prediction.attrs))[
                "rain_probability"
            ].sel(threshold=1.0)
            reliability[model_name] = metrics.reliability_diagram(
                probability, xr.DataArray(task.target_values >= 1.0, dims="target"), bins=10
            )
            pit[model_name] = rate_pit_histogram(points.assign_attrs(prediction.attrs), task, bins=10)
            coverage[model_name] = {
                level / 100: scores[model_name][f"coverage_{level}"] for level in (50, 80, 90, 95)
            }
            distance[model_name] = scores_by_distance(
                points.assign_attrs(prediction.attrs), task, edges_km=(0, 2, 4, 8, 16, 32)
            )
        title = f"{name} {time.replace('T', ' ')} UTC, four withheld 32 px blocks"
        written.append(
            save_figure(
                reliability_figure(reliability, title=f"P(rate >= 1 mm/h): {title}"),
                OUT / f"{label}_reliability.png",
            )
        )
        written.append(
            save_figure(
                pit_figure(pit, title=f"PIT of the rate (dry truths over the mass at zero): {title}"),
                OUT / f"{label}_pit.png",
            )
        )
        written.append(
            save_figure(coverage_figure(coverage, title=f"coverage: {title}"), OUT / f"{label}_coverage.png")
        )
        written.append(save_figure(distance_figure(distance, title=title), OUT / f"{label}_distance.png"))
        written.append(save_figure(model_comparison_figure(scores, title=title), OUT / f"{label}_scores.png"))
        summary[label] = {
            "dataset": name,
            "time": time,
            "targets": int(mask.sum()),
            "scores": {m: {k: round(v, 4) for k, v in s.items()} for m, s in scores.items()},
        }
    (OUT / "figures.json").write_text(json.dumps(summary, indent=2))
    for path in written:
        print(path.relative_to(OUT.parent.parent))


if __name__ == "__main__":
    main()
