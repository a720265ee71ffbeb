"""Benchmark: a GP batch job with one fit per tile against one fit per frame shared by its tiles.

The job (:data:`JOB`) withholds blocks of 40 px on MeteoSwiss 2015-05-15 frames tiled by 64 px, so
that most blocks cross tile edges, and fills them with the GP, once with each tile fitting its own
options and hyperparameters (``tiling.share_fit: false``, the default) and once with one fit per
frame (``share_fit: true``), on the threaded scheduler with two threads of one torch thread each;
each of the two also with the tiles' contexts chosen as the nearest half and a random far field
(``tiling.contexts: nearest``) instead of at random (:data:`VARIANTS`; arguments such as
``True,nearest`` run only those). ``--period validation`` runs the same job on the KNMI validation
frames (:data:`VALIDATION_JOB`): the variants are compared there, the MeteoSwiss event being a test
event. ``--model anp`` runs another model instead of the GP (without a shared fit, which only the GP
has; written to ``..._anp.json``). ``--self-calibration N`` runs the job self-calibrated over a
window of ``N`` frames (``calibration: {self: {window_frames: N}}``, as the demo GP job; written to
``..._self_N.json``). Per run: wall seconds, the job's scores against the withheld
truth (``metrics.json``), and the seam ratio of the mean inside the withheld blocks: the mean
absolute difference between neighbouring withheld pixels on either side of a tile edge over that
between the other neighbouring withheld pixels (``truth_seam_ratio``: the same of the withheld
truth; a map with seams has a higher ratio than the truth's). Writes
``benchmarks/results/job_shared_fit.json`` (``job_shared_fit_validation.json``).

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/job_shared_fit.py \
        [--period validation] [--model anp] [--self-calibration 3] [True,nearest ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import xarray as xr
from common import require_data_dir, result_header, write_result

from weatherunc import conventions
from weatherunc.pipelines.job_config import JobConfig
from weatherunc.pipelines.run_job import run_job

TILE_PIXELS = 64
JOB = {
    "name": "mch_gp_shared_fit",
    "dataset": "mch_20150515",
    "frames": {"start": "2015-05-15T16:00", "stride": 6, "limit": 6},
    "targets": {"mode": "withheld", "blocks": 6, "block_pixels": 40, "min_wet_fraction": 0.2},
    "model": {"name": "gp"},
    "tiling": {"tile_pixels": TILE_PIXELS, "halo_pixels": 32, "max_context": 2000},
    "plots": {"enabled": False},
}
#: The same job on validation frames (pipelines/training/anp.yaml: KNMI 04:40-05:10), where the
#: choice between the variants is made; MeteoSwiss 2015-05-15 is a test event.
VALIDATION_JOB = {
    **JOB,
    "name": "knmi_validation_gp_shared_fit",
    "dataset": "knmi_20100826",
    "frames": {"start": "2010-08-26T04:40", "stride": 1, "limit": 6},
}
#: Frames of each period: job, results file.
PERIODS = {
    "test": (JOB, "job_shared_fit.json"),
    "validation": (VALIDATION_JOB, "job_shared_fit_validation.json"),
}
#: (tiling.share_fit, tiling.contexts) of each run.
VARIANTS = [(False, "random"), (True, "random"), (False, "nearest"), (True, "nearest")]


def masked_seam_ratio(values: np.ndarray, mask: np.ndarray, tile_pixels: int) -> tuple[float, int]:
    """(mean |step| across tile edges / mean |step| elsewhere, pairs across edges) over the
    neighbouring pixel pairs (along y and along x) of ``values`` ``[time, ny, nx]`` whose two
    pixels both lie in ``mask``."""
    across, elsewhere = [], []
    for axis in (1, 2):
        size = values.shape[axis]
        first_values = np.take(values, np.arange(size - 1), axis=axis)
        first_mask = np.take(mask, np.arange(size - 1), axis=axis)
        second_values = np.take(values, np.arange(1, size), axis=axis)
        second_mask = np.take(mask, np.arange(1, size), axis=axis)
        steps = np.abs(second_values - first_values)
        both = first_mask & second_mask
        shape = [1, 1, 1]
        shape[axis] = size - 1
        edge = (np.arange(1, size) % tile_pixels == 0).reshape(shape)  # the second pixel starts a tile
        across.append(steps[both & edge])
        elsewhere.append(steps[both & ~edge])
    across_all, elsewhere_all = np.concatenate(across), np.concatenate(elsewhere)
    return float(np.mean(across_all) / np.mean(elsewhere_all)), int(across_all.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--period", choices=sorted(PERIODS), default="test")
    parser.add_argument("variants", nargs="*", help='e.g. "True,nearest": run only these variants')
    parser.add_argument("--model", default="gp", help="models other than the GP: share_fit false only")
    parser.add_argument(
        "--self-calibration", type=int, default=0, help="self-calibrate over a window of N frames (0: no)"
    )
    arguments = parser.parse_args()
    only = arguments.variants
    base, output = PERIODS[arguments.period]
    if arguments.model != "gp":
        base = {**base, "name": f"{base['name']}_{arguments.model}", "model": {"name": arguments.model}}
        output = output.replace(".json", f"_{arguments.model}.json")
        only = only or [f"False,{contexts}" for _, contexts in VARIANTS]
    if arguments.self_calibration > 0:
        window = arguments.self_calibration
        base = {
            **base,
            "name": f"{base['name']}_self_{window}",
            "calibration": {"self": {"window_frames": window}},
        }
        output = output.replace(".json", f"_self_{window}.json")
    require_data_dir()
    rows = []
    truth_ratio = None
    with tempfile.TemporaryDirectory() as folder:
        for share_fit, contexts in VARIANTS:
            if only and f"{share_fit},{contexts}" not in only:
                continue
            job = JobConfig(
                **{
                    **base,
                    "name": f"{base['name']}_{'shared' if share_fit else 'per_tile'}_{contexts}",
                    "tiling": {**base["tiling"], "share_fit": share_fit, "contexts": contexts},
                    "output_dir": folder,
                }
            )
            started = time.perf_counter()
            report = run_job(job, scheduler="threads", workers=2, progress=True)
            seconds = time.perf_counter() - started
            store = xr.open_zarr(report.store, consolidated=False).load()
            withheld = store.observation.values == conventions.WITHHELD
            ratio, pairs = masked_seam_ratio(store.precipitation_mean.values, withheld, TILE_PIXELS)
            std_ratio, _ = masked_seam_ratio(store.precipitation_std.values, withheld, TILE_PIXELS)
            if truth_ratio is None:
                truth_ratio, _ = masked_seam_ratio(store.withheld_precipitation.values, withheld, TILE_PIXELS)
            scores = json.loads(report.metrics.read_text())["scores"]
            rows.append(
                {
                    "share_fit": share_fit,
                    "contexts": contexts,
                    "wall_s": round(seconds, 1),
                    "tiles_written": report.tiles_written,
                    "withheld_pixels": int(withheld.sum()),
                    "edge_pairs": pairs,
                    "seam_ratio": round(ratio, 3),
                    "std_seam_ratio": round(std_ratio, 3),
                    **{name: round(float(scores[name]), 4) for name in ("crps", "rmse", "coverage_90")},
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    result = {
        **result_header(__doc__),
        "period": arguments.period,
        "job": base,
        "scheduler": "threads, 2 workers, torch_threads 1",
        "truth_seam_ratio": round(truth_ratio, 3),
        "rows": rows,
    }
    print(f"wrote {write_result(output, result)}")


if __name__ == "__main__":
    main()
