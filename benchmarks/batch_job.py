"""Benchmark: the KNMI batch job (all 92 frames, full 765 x 700 grid) on a local Dask cluster of 1 and 2 workers.

Each run starts from an empty output folder (the observation ingest is kept and not timed
twice), on a ``distributed.LocalCluster`` of single-threaded worker processes. Records wall
time, frames per minute, each worker's peak resident memory (``ru_maxrss`` of the worker
process at the end) and the scaling ratio. Writes benchmarks/results/batch_job.json.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/batch_job.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from common import machine, write_result

from pipelines.job_config import load_job_config
from pipelines.run_job import run_job
from weatherunc.checkpoints import read_sidecar
from weatherunc.models.registry import packaged_checkpoint

JOB = Path("pipelines/jobs/knmi_anp.yaml")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_run(workers: int, output_dir: Path) -> dict[str, object]:
    """Run the job from scratch on ``workers`` worker processes."""
    from distributed import Client, LocalCluster

    job = load_job_config(JOB, output_dir=output_dir)
    shutil.rmtree(job.run_dir / "prediction.zarr", ignore_errors=True)
    shutil.rmtree(job.run_dir / "prediction.zarr.partial", ignore_errors=True)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        started = time.perf_counter()
        report = run_job(job, scheduler=cluster.scheduler_address, progress=True)
        wall = time.perf_counter() - started
        peaks = sorted(client.run(_peak_rss_mb).values())
    frames = json.loads(report.metrics.read_text())["frames"]
    return {
        "workers": workers, "wall_s": round(wall, 1), "frames": frames, "tiles": report.tiles_total,
        "frames_per_minute": round(frames / wall * 60, 2), "peak_memory_mb": [round(peak, 1) for peak in peaks],
        "scores": json.loads(report.metrics.read_text())["scores"],
    }


def main() -> None:
    if not os.environ.get("WEATHERUNC_DATA_DIR"):
        sys.exit("set WEATHERUNC_DATA_DIR to the shared data folder")
    output_dir = Path("outputs/benchmark_batch_job")
    runs = [one_run(workers, output_dir) for workers in (1, 2)]
    result = {
        "benchmark": __doc__.strip().splitlines()[0],
        "machine": machine(),
        "job": str(JOB),
        "anp_checkpoint_sha256": read_sidecar(packaged_checkpoint("anp"))["sha256"],
        "runs": runs,
        "scaling_ratio_2_vs_1": round(runs[0]["wall_s"] / runs[1]["wall_s"], 3),
    }
    print(json.dumps(result, indent=2))
    print(f"wrote {write_result('batch_job.json', result)}")


if __name__ == "__main__":
    main()
