"""Thin Dask entry points (ingest, batch jobs) and the shipped job configs (``jobs/``, package data).

Training configs are not shipped: they stay in the repository's ``pipelines/training/``.
"""

from pathlib import Path


def jobs_folder() -> Path:
    """The folder of the shipped job configs (``weatherunc/pipelines/jobs/``)."""
    return Path(__file__).resolve().parent / "jobs"


def job_path(job: str | Path) -> Path:
    """``job`` where it is a file, else the shipped job of that name (``knmi_anp`` or
    ``knmi_anp.yaml`` in :func:`jobs_folder`), so that an installed package runs its jobs by name;
    ``job`` as given where neither exists (reading it then names the missing file)."""
    path = Path(job)
    if path.exists():
        return path
    shipped = jobs_folder() / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    return shipped if path.parent == Path(".") and shipped.exists() else path
