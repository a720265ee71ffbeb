"""Helpers of the service tests: a tiny job store, built in a temporary folder."""

from __future__ import annotations

from pathlib import Path

#: A two-frame inverse-distance job on the embedded MRMS sample (seconds to run).
TINY_JOB = {
    "name": "mrms_idw",
    "dataset": "mrms_embedded",
    "frames": {"start": "2019-06-10T00:30", "stride": 10, "limit": 2},
    "targets": {"mode": "withheld", "blocks": 3, "block_pixels": 24, "min_wet_fraction": 0.2},
    "model": {"name": "idw"},
    "tiling": {"tile_pixels": 64, "halo_pixels": 16, "max_context": 1000},
    "plots": {"enabled": False},
}


def make_job_store(output_dir: Path) -> Path:
    """Run :data:`TINY_JOB` into ``output_dir``; returns its complete ``prediction.zarr``."""
    from weatherunc.pipelines.job_config import JobConfig
    from weatherunc.pipelines.run_job import run_job

    job = JobConfig(**{**TINY_JOB, "output_dir": str(output_dir)})
    return run_job(job, scheduler="synchronous", progress=False).store
