"""Thin Dask entry points (ingest, batch jobs) and the shipped job configs (``jobs/``, package data).

Training configs are not shipped: they stay in the repository's ``pipelines/training/``.
"""

from pathlib import Path


def jobs_folder() -> Path:
    """The folder of the shipped job configs (``weatherunc/pipelines/jobs/``)."""
    return Path(__file__).resolve().parent / "jobs"
