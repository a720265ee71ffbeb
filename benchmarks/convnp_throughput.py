"""Benchmark: whole-frame prediction by the convolutional neural process beside the ANP and the GP, and its
training steps/s.

On the wettest KNMI frame of the test period (765 x 700 px, from 2010-08-26 05:20):

- ``whole_frame``: every pixel predicted from every observed pixel outside a 100 x 100 px gap
  over the rain (the ConvNP's own use: no thinning). ``whole_frame_s`` is its wall time from the
  task to the gridded prediction (:func:`weatherunc.models.predictive.to_grid`).
- ``thinned``: the same gap with the contexts thinned to 20,000 (the GP's full-frame setting in
  ``gp_full_frame.py``), predicted by the ConvNP, the shipped ANP and the GP in the same run.
- ``gauges``: a uniform 1 % gauge network, every pixel a target (ConvNP).

Training: seconds per optimiser step of the shipped config (``pipelines/training/convnp.yaml``)
on its own frames, batch and patch size, over 20 steps after 3 warm-up steps, drawing included.
Nothing else should run on the machine meanwhile. Writes ``benchmarks/results/convnp_throughput.json``.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/convnp_throughput.py [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import require_data_dir, result_header, write_result
from gp_full_frame import full_frame_task

from weatherunc.evaluation import score_prediction
from weatherunc.geolocation import crs_of
from weatherunc.loading import open_dataset
from weatherunc.models.convnp.model import censored_loss
from weatherunc.models.predictive import to_grid
from weatherunc.models.registry import get_model
from weatherunc.training.convnp_config import load_convnp_training_config
from weatherunc.training.convnp_loop import training_frames
from weatherunc.training.grid_sampling import sample_grid_batch
from weatherunc.training.sampling import step_generator

TEST_START = "2010-08-26T05:20"
CONFIG = Path("pipelines/training/convnp.yaml")


def training_seconds_per_step(model, steps: int = 20) -> dict[str, object]:
    """Seconds per step (batch drawn, forward, backward, update) of the shipped training config."""
    config = load_convnp_training_config(CONFIG)
    bank = training_frames(config, progress=False)
    network = copy.deepcopy(model.model).train()
    optimiser = torch.optim.AdamW(network.parameters(), lr=1e-5)
    timings = []
    for step in range(steps + 3):
        started = time.perf_counter()
        batch = sample_grid_batch(
            bank, network.config, config.sampling, config.batch_size, step_generator(1, step)
        )
        output = network(batch.observed, batch.values, batch.positions)
        loss = censored_loss(
            output,
            batch.target_values,
            batch.target_bins,
            batch.weights,
            dry_bound=network.config.dry_bound,
            bin_weight=config.bin_weight,
        )["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step >= 3:
            timings.append(time.perf_counter() - started)
    seconds = float(np.mean(timings))
    return {
        "batch": config.batch_size,
        "patch_cells": config.sampling.patch_cells,
        "target_points": config.sampling.target_points,
        "seconds_per_step": round(seconds, 4),
        "steps_per_s": round(1 / seconds, 3),
    }


def timed(model, task, frame, gap: np.ndarray) -> tuple[float, dict[str, object]]:
    """Seconds from the task to the gridded prediction, and the scores on the gap and overall."""
    started = time.perf_counter()
    prediction = model.predict(task)
    grid = to_grid(prediction, frame)
    seconds = time.perf_counter() - started
    scores = score_prediction(prediction, task)
    gap_scores = score_prediction(
        prediction, replace(task, target_values=np.where(gap.ravel(), task.target_values, np.nan))
    )
    return seconds, {
        "seconds": round(seconds, 2),
        "n_context": task.n_context,
        "n_target": task.n_target,
        "nan_in_output": int(np.isnan(grid.precipitation_mean.values).sum()),
        "crps": round(scores["crps"], 4),
        "coverage_90": round(scores["coverage_90"], 4),
        "gap_crps": round(gap_scores["crps"], 4),
        "gap_coverage_90": round(gap_scores["coverage_90"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="ConvNP checkpoint (default: the shipped one)"
    )
    arguments = parser.parse_args()
    require_data_dir()
    convnp = get_model("convnp", checkpoint=arguments.checkpoint)
    dataset = open_dataset("knmi_20100826")
    crs = crs_of(dataset)
    test = dataset.precipitation.sel(time=slice(TEST_START, None))
    index = int(np.argmax((test > 0.1).mean(("y", "x")).values))
    frame = test.isel(time=index).load().drop_vars(["latitude", "longitude", "time"])
    observed = np.isfinite(frame.values)
    ny, nx = frame.shape
    rng = np.random.default_rng(0)
    wet_rows, wet_columns = np.nonzero(np.nan_to_num(frame.values) > 0.1)
    centre_row, centre_column = int(np.median(wet_rows)), int(np.median(wet_columns))
    gap = np.zeros((ny, nx), dtype=bool)
    gap[max(0, centre_row - 50) : centre_row + 50, max(0, centre_column - 50) : centre_column + 50] = True
    outside = observed & ~gap
    thinned = np.zeros(ny * nx, dtype=bool)
    candidates = np.flatnonzero(outside.ravel())
    thinned[rng.choice(candidates, size=min(20_000, candidates.size), replace=False)] = True
    gauges = np.zeros(ny * nx, dtype=bool)
    observed_pixels = np.flatnonzero(observed.ravel())
    gauges[rng.choice(observed_pixels, size=round(0.01 * observed_pixels.size), replace=False)] = True

    rows = []
    whole_frame_s, row = timed(convnp, full_frame_task(frame, outside, crs, "whole_frame"), frame, gap)
    rows.append({"context": "whole_frame", "method": "convnp", **row})
    thinned_task = full_frame_task(frame, thinned.reshape(ny, nx), crs, "thinned")
    seconds_by_method = {}
    for method in ("convnp", "anp", "gp"):
        seconds_by_method[method], row = timed(
            get_model(method) if method != "convnp" else convnp, thinned_task, frame, gap
        )
        rows.append({"context": "thinned", "method": method, **row})
        print(json.dumps(rows[-1]), flush=True)
    _, row = timed(
        convnp,
        full_frame_task(frame, gauges.reshape(ny, nx), crs, "gauges"),
        frame,
        np.ones((ny, nx), dtype=bool),
    )
    rows.append({"context": "gauges", "method": "convnp", **row})
    training = training_seconds_per_step(convnp)
    result = {
        **result_header(__doc__),
        "torch_threads": torch.get_num_threads(),
        "frame": str(test.time.values[index])[:16],
        "grid": [ny, nx],
        "checkpoint_sha256": convnp.checkpoint_sha256,
        "whole_frame_s": round(whole_frame_s, 2),
        "anp_s": round(seconds_by_method["anp"], 2),
        "gp_s": round(seconds_by_method["gp"], 2),
        "training": training,
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rows": rows,
    }
    print(json.dumps({key: result[key] for key in ("whole_frame_s", "anp_s", "gp_s", "training")}, indent=2))
    path = write_result("convnp_throughput.json", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
