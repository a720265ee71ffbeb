"""Benchmark: predict every pixel of a full KNMI frame (765 x 700) with the GP.

Two contexts on the wettest frame of the KNMI 2010-08-26 event:

- ``gauges``: a uniform gauge-like network on 1 % of the observed pixels (exact GP);
- ``radar_gap``: every observed pixel outside a 100 x 100 px gap, thinned to 20,000 contexts
  (beyond the exact limit: local exact GPs per 40 km tile on the 1,500 nearest contexts).

Targets are all 535,500 pixels. Prints and writes seconds, peak resident memory, and the
scores on the observed pixels that were not contexts, to ``benchmarks/results/gp_full_frame.json``.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/gp_full_frame.py
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import replace

import numpy as np
from common import machine, write_result

from weatherunc.evaluation import score_prediction
from weatherunc.geolocation import crs_of
from weatherunc.loading import open_dataset
from weatherunc.models.gp import GaussianProcessInterpolator
from weatherunc.models.predictive import to_grid
from weatherunc.tasks import Task, planar_kilometres


def full_frame_task(frame, context_mask: np.ndarray, crs, description: str) -> Task:
    """Contexts where ``context_mask`` [ny, nx] is set; every pixel a target (truth NaN where unobserved)."""
    ny, nx = frame.shape
    x_km, y_km = planar_kilometres(frame.x.values, frame.y.values, crs)
    rows, columns = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    coordinates = np.stack([x_km[columns.ravel()], y_km[rows.ravel()]], axis=1)
    values = frame.values.ravel().astype(np.float64)
    context = np.flatnonzero(context_mask.ravel())
    truth = values.copy()
    truth[context] = np.nan  # score only pixels the model did not see
    return Task(
        coordinates[context],
        values[context],
        coordinates,
        truth,
        target_coords={"row": rows.ravel(), "column": columns.ravel()},
        description=description,
    )


def main() -> None:
    dataset = open_dataset("knmi_20100826")
    crs = crs_of(dataset)
    wet = (dataset.precipitation > 0.1).mean(("y", "x")).values
    index = int(np.argmax(wet))
    frame = dataset.precipitation.isel(time=index).load().drop_vars(["latitude", "longitude", "time"])
    observed = np.isfinite(frame.values)
    ny, nx = frame.shape

    rng = np.random.default_rng(0)
    observed_pixels = np.flatnonzero(observed.ravel())
    gauge_mask = np.zeros(ny * nx, dtype=bool)
    gauge_mask[rng.choice(observed_pixels, size=round(0.01 * observed_pixels.size), replace=False)] = (
        True  # uniform 1 % network
    )

    wet_rows, wet_columns = np.nonzero(np.nan_to_num(frame.values) > 0.1)
    centre_row, centre_column = int(np.median(wet_rows)), int(np.median(wet_columns))
    gap = np.zeros((ny, nx), dtype=bool)
    gap[max(0, centre_row - 50) : centre_row + 50, max(0, centre_column - 50) : centre_column + 50] = True
    candidates = np.flatnonzero((observed & ~gap).ravel())
    chosen = rng.choice(candidates, size=min(20_000, candidates.size), replace=False)
    radar_mask = np.zeros(ny * nx, dtype=bool)
    radar_mask[chosen] = True

    rows_out = []
    for name, mask in (("gauges", gauge_mask.reshape(ny, nx)), ("radar_gap", radar_mask.reshape(ny, nx))):
        task = full_frame_task(frame, mask, crs, name)
        start = time.perf_counter()
        prediction = GaussianProcessInterpolator().predict(task)
        grid = to_grid(prediction, frame)
        seconds = time.perf_counter() - start
        scores = score_prediction(prediction, task)
        row = {
            "context": name,
            "frame": str(dataset.time.values[index])[:16],
            "n_context": task.n_context,
            "n_target": task.n_target,
            "grid": [ny, nx],
            "prediction": prediction.attrs["prediction"],
            "seconds": round(seconds, 1),
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "nan_in_output": int(np.isnan(grid.precipitation_mean.values).sum()),
            **{key: round(value, 4) for key, value in scores.items()},
        }
        if name == "radar_gap":
            gap_scores = score_prediction(
                prediction, replace(task, target_values=np.where(gap.ravel(), task.target_values, np.nan))
            )
            row["gap_crps"], row["gap_coverage_90"] = (
                round(gap_scores["crps"], 4),
                round(gap_scores["coverage_90"], 4),
            )
        rows_out.append(row)
        print(json.dumps(row), flush=True)
    path = write_result(
        "gp_full_frame.json",
        {"benchmark": "GP prediction of every pixel of a KNMI frame", "machine": machine(), "rows": rows_out},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
