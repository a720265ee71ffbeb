"""Benchmark: neural-process training steps/s, whole-frame prediction time, and stitched vs untiled
prediction.

1. Training: steps/s of the shipped ANP architecture on batches drawn from the training frames
   (pipelines/training/anp.yaml), at two context sizes, batch 16, 256 targets per task.
2. Whole frame: a KNMI frame (765 x 700 px, 2010-08-26 06:40, test period) predicted tile by
   tile (128 px tiles, 48 px halo): every pixel, and only six withheld 32 px blocks.
3. Stitching: on the frame's wettest 192 x 192 px window with three withheld 24 px blocks, the
   tiled prediction (64 px tiles, halos of 24 and 48 px) against one untiled prediction.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/anp_throughput.py
"""

from __future__ import annotations

import copy
import resource
import sys
import time

import numpy as np
import torch
from common import require_data_dir, result_header, write_result

from weatherunc.geolocation import crs_of
from weatherunc.gridding import GridTiling, predict_grid
from weatherunc.loading import open_dataset
from weatherunc.models.neural_process.losses import neural_process_loss
from weatherunc.models.predictive import to_grid
from weatherunc.models.registry import get_model, packaged_checkpoint
from weatherunc.tasks import Task, wettest_window
from weatherunc.tasks.blocks import BlockRules, cover, place_blocks
from weatherunc.training.config import SamplingOptions, load_training_config
from weatherunc.training.sampling import FrameBank, sample_batch

FRAME_TIME = "2010-08-26T06:40"


def training_throughput(
    model, bank: FrameBank, context: int, batch: int = 16, steps: int = 20
) -> dict[str, float]:
    """Seconds per optimiser step (forward, backward, update) after three warm-up steps.

    Trains a copy of the interpolator's network, so the predictions timed and compared after
    this use the shipped weights.
    """
    options = SamplingOptions(context_points=(context, context), target_points=256)
    rng = np.random.default_rng(0)
    network = copy.deepcopy(model.model).train()
    optimiser = torch.optim.AdamW(network.parameters(), lr=1e-5)
    timings = []
    for step in range(steps + 3):
        batch_tensors = sample_batch(bank, network.config, options, batch, rng)
        started = time.perf_counter()
        output = network(
            batch_tensors.context_inputs,
            batch_tensors.context_values,
            batch_tensors.target_inputs,
            batch_tensors.target_values,
        )
        loss = neural_process_loss(output, batch_tensors.target_values[..., 0], batch_tensors.target_bins)[
            "loss"
        ]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step >= 3:
            timings.append(time.perf_counter() - started)
    return {
        "batch": batch,
        "context_points": context,
        "target_points": 256,
        "steps_per_s": round(1 / float(np.mean(timings)), 3),
        "seconds_per_step": round(float(np.mean(timings)), 4),
    }


def withheld_blocks(
    shape: tuple[int, int], count: int, size: int, observed: np.ndarray, seed: int
) -> np.ndarray:
    """``count`` non-overlapping squares over observed pixels only (drawn until they are placed)."""
    rules = BlockRules(attempts=sys.maxsize, touch_far_edge=False, spacing=0, min_observed_fraction=1.0)
    blocks = place_blocks(shape, count, size, rules, np.random.default_rng(seed), observed=observed)
    return cover(shape, blocks)


def main() -> None:
    require_data_dir()
    model = get_model("anp")
    config = load_training_config("pipelines/training/anp.yaml")
    bank = FrameBank.load(config.train[:1], progress=False)
    training = [training_throughput(model, bank, context) for context in (128, 512)]

    dataset = open_dataset("knmi_20100826")
    crs = crs_of(dataset)
    frame = dataset.precipitation.sel(time=FRAME_TIME).load().drop_vars(["latitude", "longitude"])
    observed = np.isfinite(frame.values)
    whole_frame = {}
    for label, targets, mask in (
        ("every pixel", "all", None),
        ("six withheld 32 px blocks", "unobserved", withheld_blocks(frame.shape, 6, 32, observed, 0)),
    ):
        started = time.perf_counter()
        prediction = predict_grid(
            model,
            frame,
            crs=crs,
            tiling=GridTiling(tile_pixels=128, halo_pixels=48, max_context=4096, targets=targets),
            target_mask=mask,
            progress=False,
        )
        whole_frame[label] = {
            "seconds": round(time.perf_counter() - started, 2),
            "targets": int(prediction.precipitation_mean.notnull().sum()),
            "pixels": int(frame.size),
        }

    window = wettest_window(frame.drop_vars("time"), 192)
    mask = withheld_blocks(window.shape, 3, 24, np.isfinite(window.values), 1)
    rows, columns = np.nonzero(np.isfinite(window.values) & ~mask)
    target_rows, target_columns = np.nonzero(mask)
    x_km, y_km = window.x.values / 1000, window.y.values / 1000
    task = Task(
        np.stack([x_km[columns], y_km[rows]], 1),
        window.values[rows, columns].astype(float),
        np.stack([x_km[target_columns], y_km[target_rows]], 1),
        window.values[target_rows, target_columns].astype(float),
        target_coords={"row": target_rows, "column": target_columns},
    )
    untiled = to_grid(model.predict(task), window)
    stitching = []
    for halo in (24, 48):
        tiled = predict_grid(
            model,
            window,
            crs=crs,
            tiling=GridTiling(tile_pixels=64, halo_pixels=halo, max_context=100_000),
            target_mask=mask,
            progress=False,
        )
        difference = np.abs(tiled.transformed_mean.values - untiled.transformed_mean.values)[mask]
        std = untiled.transformed_std.values[mask]
        stitching.append(
            {
                "tile_pixels": 64,
                "halo_pixels": halo,
                "targets": int(mask.sum()),
                "max_abs_difference_transformed_mean": round(float(difference.max()), 5),
                "mean_abs_difference_over_std": round(float(np.mean(difference / std)), 5),
                "max_abs_difference_rate_mm_h": round(
                    float(
                        np.nanmax(
                            np.abs(tiled.precipitation_mean.values - untiled.precipitation_mean.values)[mask]
                        )
                    ),
                    4,
                ),
            }
        )
    result = {
        **result_header(__doc__),
        "torch_threads": torch.get_num_threads(),
        "checkpoint": str(packaged_checkpoint("anp").name),
        "checkpoint_sha256": model.checkpoint_sha256,
        "training": training,
        "whole_frame": whole_frame,
        "stitched_vs_untiled": stitching,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    import json

    print(json.dumps(result, indent=2))
    print(f"wrote {write_result('anp_throughput.json', result)}")


if __name__ == "__main__":
    main()
