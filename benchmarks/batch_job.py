"""Benchmark: the KNMI batch job (all 92 frames, full 765 x 700 grid) on a local Dask cluster of 1 and 2
workers.

``--job`` picks the job (default ``weatherunc/pipelines/jobs/knmi_anp.yaml``; ``knmi_convnp.yaml``
runs the convolutional neural process), ``--workers`` the cluster sizes. Each job's entry in
``benchmarks/results/batch_job.json`` (``jobs``, one per job file) is replaced; the others are kept.
Each run starts from an empty output folder (the observation ingest is kept and not timed
twice), on a ``distributed.LocalCluster`` of single-threaded worker processes. Records wall
time, frames per minute, each worker's peak resident memory (``ru_maxrss`` of the worker
process at the end) and the scaling ratio. Writes benchmarks/results/batch_job.json.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/batch_job.py [--job
    weatherunc/pipelines/jobs/knmi_convnp.yaml] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from common import RESULTS, machine, require_data_dir, write_result

from weatherunc.checkpoints import read_sidecar
from weatherunc.models.registry import packaged_checkpoint
from weatherunc.pipelines.job_config import load_job_config
from weatherunc.pipelines.run_job import run_job

JOB = Path("weatherunc/pipelines/jobs/knmi_anp.yaml")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_run(path: Path, workers: int, output_dir: Path) -> dict[str, object]:
    """Run the job ``path`` from scratch on ``workers`` worker processes."""
    from distributed import Client, LocalCluster

    job = load_job_config(path, output_dir=output_dir)
    shutil.rmtree(job.run_dir / "prediction.zarr", ignore_errors=True)
    shutil.rmtree(job.run_dir / "prediction.zarr.partial", ignore_errors=True)
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        started = time.perf_counter()
        report = run_job(job, scheduler=cluster.scheduler_address, progress=True)
        wall = time.perf_counter() - started
        peaks = sorted(client.run(_peak_rss_mb).values())
    frames = json.loads(report.metrics.read_text())["frames"]
    return {
        "workers": workers,
        "wall_s": round(wall, 1),
        "frames": frames,
        "tiles": report.tiles_total,
        "frames_per_minute": round(frames / wall * 60, 2),
        "peak_memory_mb": [round(peak, 1) for peak in peaks],
        "scores": json.loads(report.metrics.read_text())["scores"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--job", type=Path, default=JOB)
    parser.add_argument("--workers", default="1,2", help="comma-separated cluster sizes")
    arguments = parser.parse_args()
    require_data_dir()
    output_dir = Path("outputs/benchmark_batch_job")
    runs = [one_run(arguments.job, int(workers), output_dir) for workers in arguments.workers.split(",")]
    model = load_job_config(arguments.job).model
    checkpoint = model.checkpoint or (
        packaged_checkpoint(model.name) if model.name in ("anp", "cnp", "convnp") else None
    )
    entry = {
        "job": str(arguments.job),
        "machine": machine(),
        "model": model.name,
        "checkpoint_sha256": read_sidecar(checkpoint)["sha256"] if checkpoint else "",
        "runs": runs,
    }
    if len(runs) > 1:
        entry["scaling_ratio"] = round(runs[0]["wall_s"] / runs[-1]["wall_s"], 3)
    previous = (
        json.loads((RESULTS / "batch_job.json").read_text()) if (RESULTS / "batch_job.json").exists() else {}
    )
    jobs = previous.get("jobs") or (
        [{key: value for key, value in previous.items() if key != "benchmark"}] if "runs" in previous else []
    )
    # one entry per job file name, whichever folder the job file was read from
    jobs = [other for other in jobs if Path(other.get("job", "")).name != arguments.job.name] + [entry]
    result = {"benchmark": __doc__.strip().splitlines()[0], "jobs": jobs}
    print(json.dumps(entry, indent=2))
    print(f"wrote {write_result('batch_job.json', result)}")


if __name__ == "__main__":
    main()
