"""Benchmark: how fast training batches are drawn, in the training process and by worker processes.

On the H100 the shipped ANP trained at 6.2 steps/s and its 64-wide ablation at 6.9 steps/s
(benchmarks/results/anp_gpu_training.md): the width hardly mattered, so something other than
the network's arithmetic set the pace, drawing the batch on one CPU core among the suspects.
This measures that cost with the shipped training config (pipelines/training/anp.yaml: its
training frames, sampling options and batch size):

1. seconds to draw one batch in the training process (``sample_batch``), over ``STEPS`` steps;
2. batches/s of :func:`~weatherunc.training.sampling.batch_stream` with 0, 1 and 2 worker
   processes (``sampling_workers``), the loader's start included, with no training step
   consuming them: the ceiling on steps/s that drawing alone allows.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/training_sampling.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import machine, write_result

from weatherunc.training.config import load_training_config
from weatherunc.training.loop import architecture_config
from weatherunc.training.sampling import FrameBank, StepBatches, batch_stream

CONFIG = Path(__file__).resolve().parents[1] / "pipelines" / "training" / "anp.yaml"
STEPS = 60
WORKERS = (0, 1, 2)
GPU_TRAINING = Path(__file__).resolve().parent / "results" / "anp_gpu_training.json"


def gpu_training_rates(path: Path = GPU_TRAINING) -> dict[str, object]:
    """Steps/s of the first part of each GPU training run in ``path``
    (benchmarks/results/anp_gpu_training.json), with its device."""
    record = json.loads(path.read_text())
    rates: dict[str, object] = {name: run["parts"][0]["steps_per_s"] for name, run in record["runs"].items()}
    rates["source"] = f"{path.relative_to(path.parents[2])} (part 1 of each run): {record['device']}"
    return rates


def stream_rate(batches: StepBatches, workers: int, steps: int) -> dict[str, float]:
    """Batches/s of the stream over ``steps`` steps, from before the loader starts to the last batch."""
    started = time.perf_counter()
    first_at = None
    for count, _batch in enumerate(batch_stream(batches, range(steps), workers=workers), start=1):
        if count == 1:
            first_at = time.perf_counter() - started
    seconds = time.perf_counter() - started
    return {
        "workers": workers,
        "steps": steps,
        "seconds": round(seconds, 2),
        "batches_per_s": round(steps / seconds, 2),
        "first_batch_s": round(first_at, 2),
    }


def main() -> None:
    if not os.environ.get("WEATHERUNC_DATA_DIR"):
        sys.exit("set WEATHERUNC_DATA_DIR to the shared data folder (../shared/data)")
    torch.set_num_threads(1)
    config = load_training_config(CONFIG)
    started = time.perf_counter()
    bank = FrameBank.load(list(config.train), progress=True)
    load_seconds = time.perf_counter() - started
    batches = StepBatches(
        bank, architecture_config(config, bank), config.sampling, config.batch_size, config.seed
    )
    per_batch = []
    for step in range(STEPS):
        began = time.perf_counter()
        batches[step]
        per_batch.append(time.perf_counter() - began)
    rates = [stream_rate(batches, workers, STEPS) for workers in WORKERS]
    result = {
        "benchmark": "training_sampling",
        "machine": machine(),
        "config": str(CONFIG.relative_to(CONFIG.parents[2])),
        "frames": len(bank.frames),
        "bank_load_s": round(load_seconds, 1),
        "batch_size": config.batch_size,
        "context_points": list(config.sampling.context_points),
        "target_points": config.sampling.target_points,
        "draw_one_batch_s": {
            "mean": round(float(np.mean(per_batch)), 4),
            "median": round(float(np.median(per_batch)), 4),
            "p90": round(float(np.quantile(per_batch, 0.9)), 4),
        },
        "stream": rates,
        "gpu_training_steps_per_s": gpu_training_rates(),
    }
    path = write_result("training_sampling.json", result)
    print(
        f"{len(bank.frames)} frames loaded in {load_seconds:.1f} s; batch {config.batch_size}, contexts "
        f"{config.sampling.context_points}, {config.sampling.target_points} targets"
    )
    print(
        f"one batch drawn in the training process: mean {result['draw_one_batch_s']['mean']:.3f} s, median "
        f"{result['draw_one_batch_s']['median']:.3f} s, p90 {result['draw_one_batch_s']['p90']:.3f} s"
    )
    for rate in rates:
        print(
            f"stream with {rate['workers']} workers: {rate['batches_per_s']:.2f} batches/s ({rate['steps']} "
            f"batches in {rate['seconds']:.1f} s, first after {rate['first_batch_s']:.2f} s)"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
