"""Benchmark: weatherunc.fill of a 40 x 40 px gap in the shipped 256 x 256 MRMS frame: seconds and seams.

The gap (rows and columns 108-147) crosses the default tiling's tile edges at 128 (64 px tiles).
For each model: wall time of ``weatherunc.fill`` and the seam ratio: the mean absolute jump of the
filled mean across the tile edges inside the gap, divided by the mean absolute step between
neighbouring pixels inside the gap that do not cross an edge (1 for a seam-free map; a model that
sees the whole frame at once has no edges, and its ratio is that of the same pixel pairs). The
quality of the fill against the withheld truth: mean absolute error of the mean, coverage of the
central 90 % interval (the 0.05 and 0.95 quantiles) and the quantile score (twice the mean pinball
loss over the output's quantile levels, an estimate of the CRPS; Gneiting & Raftery 2007, JASA
102, 359, eq. 24). ``gp-per-tile`` is the GP with each tile fitting its own options
(``share_fit=False``). ``--contexts`` runs every model with each rule of choosing a tile's
contexts (``GridTiling.contexts``: random, or the nearest half and a random far field; a model
that sees the whole frame at once, such as the ConvNP, takes every observed pixel: ``all``). Writes
``benchmarks/results/fill.json`` (rows with ``model``, ``contexts``, ``seconds``, ``seam_ratio``;
``cpu_seconds``: the process's CPU time, all threads;
``other_processes_cpu_seconds``: the CPU time other processes took meanwhile, 0 on an idle
machine) with the load average before and after the runs. Needs no shared data.

    .venv/bin/python benchmarks/fill.py [--models gp,kriging,idw,convnp,gp-per-tile] \
        [--contexts random,nearest]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from common import result_header, write_result

import weatherunc
from weatherunc.filling import DEFAULT_BLEND_PIXELS
from weatherunc.gridding import GridTiling, seam_ratio
from weatherunc.models.registry import get_model
from weatherunc.tiling import DEFAULT_TILING

GAP = slice(108, 148)
FRAME = 20
#: Suffix of a model name run with each tile fitting its own options (``share_fit=False``).
PER_TILE = "-per-tile"
#: ``contexts`` of a model that sees the whole frame at once (fill's one tile, every observed pixel).
WHOLE_FRAME = "all"


def gap_seam_ratio(mean: np.ndarray) -> tuple[float, float, float]:
    """(ratio, jump across the tile edges, step elsewhere) of ``mean`` ``[ny, nx]`` inside the gap."""
    return seam_ratio(mean, GridTiling().tile_pixels, GAP, GAP)


def quality(filled: object, truth: np.ndarray) -> dict[str, float]:
    """MAE, 90 % interval coverage and quantile score of ``filled``'s gap against ``truth`` ``[40, 40]``."""
    mean = filled.precipitation_mean.values[GAP, GAP]
    quantiles = filled.precipitation_quantile.values[GAP, GAP]  # [40, 40, levels]
    levels = filled["quantile"].values
    error = truth[..., None] - quantiles
    pinball = np.maximum(levels * error, (levels - 1.0) * error)
    low, high = (int(np.argmin(np.abs(levels - level))) for level in (0.05, 0.95))
    inside = (truth >= quantiles[..., low]) & (truth <= quantiles[..., high])
    return {
        "gap_mae_mm_h": round(float(np.mean(np.abs(mean - truth))), 4),
        "gap_interval_90_coverage": round(float(inside.mean()), 4),
        "gap_quantile_score_mm_h": round(float(2.0 * pinball.mean()), 4),
    }


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (all cores; /proc/stat), None off Linux."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--models", default="gp,kriging,idw,convnp,gp-per-tile")
    parser.add_argument("--contexts", default=DEFAULT_TILING.contexts)
    arguments = parser.parse_args()
    torch.set_num_threads(2)
    sample = weatherunc.open_dataset("mrms_embedded")
    frame = sample.precipitation.isel(time=FRAME).assign_coords(crs=sample.crs).load()
    gappy = frame.copy()
    gappy[GAP, GAP] = np.nan
    truth = frame.values[GAP, GAP]
    rows = []
    load_before = load_average()
    runs = []
    for model in arguments.models.split(","):
        if getattr(get_model(model.removesuffix(PER_TILE)), "whole_frame", False):
            runs.append((model, WHOLE_FRAME))  # one tile with every observed pixel: no rule applies
        else:
            runs.extend((model, rule) for rule in arguments.contexts.split(","))
    for model, rule in runs:
        name, share_fit = model.removesuffix(PER_TILE), not model.endswith(PER_TILE)
        tiling = None if rule == WHOLE_FRAME else GridTiling(blend_pixels=DEFAULT_BLEND_PIXELS, contexts=rule)
        started, cpu_started, busy_started = time.perf_counter(), time.process_time(), machine_busy_seconds()
        filled = weatherunc.fill(gappy, model=name, share_fit=share_fit, tiling=tiling, progress=False)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        busy = machine_busy_seconds()
        others = None if busy is None or busy_started is None else busy - busy_started - cpu_seconds
        ratio, jump, step = gap_seam_ratio(filled.precipitation_mean.values)
        rows.append(
            {
                "model": model,
                "contexts": rule,
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu_seconds, 2),
                "other_processes_cpu_seconds": None if others is None else round(max(others, 0.0), 2),
                "seam_ratio": round(ratio, 3),
                "edge_jump_mm_h": round(jump, 4),
                "neighbour_step_mm_h": round(step, 4),
                "std_seam_ratio": round(gap_seam_ratio(filled.precipitation_std.values)[0], 3),
                **quality(filled, truth),
                "source": filled.attrs["source"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    truth_ratio, _, _ = gap_seam_ratio(frame.values)
    result = {
        **result_header(__doc__),
        "finished_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M"),
        "load_average_1_5_15_min": {"before": load_before, "after": load_average()},
        "torch_threads": torch.get_num_threads(),
        "frame": str(frame.time.values)[:16],
        "gap_pixels": int(np.isnan(gappy.values).sum() - np.isnan(frame.values).sum()),
        "truth_seam_ratio": round(truth_ratio, 3),
        "rows": rows,
    }
    print(f"wrote {write_result('fill.json', result)}")


if __name__ == "__main__":
    main()
