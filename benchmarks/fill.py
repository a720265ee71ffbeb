"""Benchmark: weatherunc.fill of a 40 x 40 px gap in the shipped 256 x 256 MRMS frame: seconds and seams.

The gap (rows and columns 108-147) crosses the default tiling's tile edges at 128 (64 px tiles).
For each model: wall time of ``weatherunc.fill`` and the seam ratio: the mean absolute jump of the
filled mean across the tile edges inside the gap, divided by the mean absolute step between
neighbouring pixels inside the gap that do not cross an edge (1 for a seam-free map; a model that
sees the whole frame at once has no edges, and its ratio is that of the same pixel pairs). Writes
``benchmarks/results/fill.json`` (rows with ``model``, ``seconds``, ``seam_ratio``). Needs no
shared data.

    .venv/bin/python benchmarks/fill.py [--models gp,kriging,convnp]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from common import machine, write_result

import weatherunc
from weatherunc.gridding import GridTiling, seam_ratio

GAP = slice(108, 148)
FRAME = 20


def gap_seam_ratio(mean: np.ndarray) -> tuple[float, float, float]:
    """(ratio, jump across the tile edges, step elsewhere) of ``mean`` ``[ny, nx]`` inside the gap."""
    return seam_ratio(mean, GridTiling().tile_pixels, GAP, GAP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--models", default="gp,kriging,convnp")
    arguments = parser.parse_args()
    torch.set_num_threads(2)
    sample = weatherunc.open_dataset("mrms_embedded")
    frame = sample.precipitation.isel(time=FRAME).assign_coords(crs=sample.crs).load()
    gappy = frame.copy()
    gappy[GAP, GAP] = np.nan
    truth = frame.values[GAP, GAP]
    rows = []
    for model in arguments.models.split(","):
        started = time.perf_counter()
        filled = weatherunc.fill(gappy, model=model, progress=False)
        seconds = time.perf_counter() - started
        mean = filled.precipitation_mean.values
        ratio, jump, step = gap_seam_ratio(mean)
        rows.append(
            {
                "model": model,
                "seconds": round(seconds, 2),
                "seam_ratio": round(ratio, 3),
                "edge_jump_mm_h": round(jump, 4),
                "neighbour_step_mm_h": round(step, 4),
                "gap_mae_mm_h": round(float(np.mean(np.abs(mean[GAP, GAP] - truth))), 4),
                "source": filled.attrs["source"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    truth_ratio, _, _ = gap_seam_ratio(frame.values)
    result = {
        "benchmark": __doc__.strip().splitlines()[0],
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "frame": str(frame.time.values)[:16],
        "gap_pixels": int(np.isnan(gappy.values).sum() - np.isnan(frame.values).sum()),
        "truth_seam_ratio": round(truth_ratio, 3),
        "rows": rows,
    }
    print(f"wrote {write_result('fill.json', result)}")


if __name__ == "__main__":
    main()
