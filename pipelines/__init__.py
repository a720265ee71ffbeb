"""Thin Dask entry points (ingest, batch jobs) and their configs (``jobs/``, ``training/``)."""

from pathlib import Path


def jobs_folder() -> Path:
    """The folder of the shipped job configs."""
    return Path(__file__).resolve().parent / "jobs"
