"""Batch commands that run the pipelines: ``ingest``, ``run`` and ``demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from weatherunc.cli.shared import CatalogOption, DataDirOption, fail, load_catalog

#: The shipped job configs (package data in weatherunc/pipelines/jobs/) that ``weatherunc demo`` runs.
DEMO_JOBS = ("demo_mrms_gp.yaml", "demo_mrms_anp.yaml")


def ingest(
    name: str,
    out: Annotated[Path, typer.Option("--out", help="Zarr store to write (STORE.zarr).")],
    catalog: CatalogOption = None,
    data_dir: DataDirOption = None,
    scheduler: Annotated[
        str, typer.Option(help="threads, processes, synchronous, or a distributed scheduler address.")
    ] = "threads",
    workers: Annotated[
        int | None, typer.Option(help="Number of local workers (default: one per core).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing store of other content.")] = False,
    restart: Annotated[bool, typer.Option(help="Discard an unfinished ingest of other input.")] = False,
) -> None:
    """Read, check and write a catalog entry to a chunked zarr store (resumable)."""
    from weatherunc.errors import InputDataError
    from weatherunc.pipelines.execution import SchedulerError
    from weatherunc.pipelines.ingest import ingest as run_ingest

    try:
        report = run_ingest(
            name,
            out,
            catalog=load_catalog(catalog, data_dir),
            scheduler=scheduler,
            workers=workers,
            overwrite=overwrite,
            restart=restart,
        )
    except (InputDataError, SchedulerError, FileExistsError, KeyError) as error:
        fail(error)
    typer.echo(
        f"{report.store}: {report.frames_total} frames complete "
        f"({report.frames_written} written now, {report.frames_already_done} already done) in "
        f"{report.seconds:.1f} s"
    )


def run(
    job: Annotated[
        Path,
        typer.Argument(help="Job config YAML, or the name of a shipped job (e.g. knmi_anp; docs/jobs.md)."),
    ],
    scheduler: Annotated[
        str,
        typer.Option(
            help=(
                "local (a Dask cluster sized to this machine), threads, synchronous, or a distributed "
                "scheduler address."
            )
        ),
    ] = "local",
    workers: Annotated[
        int | None, typer.Option(help="Workers of the local cluster (default: one per core).")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help="Parent folder of the run (default: the job's output_dir)."),
    ] = None,
    restart: Annotated[
        bool, typer.Option(help="Replace output of another config, input or model instead of refusing.")
    ] = False,
    catalog: CatalogOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run a batch job: ingest, tasks, model, tiled prediction, calibration, verification, maps
    (resumable)."""
    from weatherunc.pipelines.execution import JOB_SCHEDULERS, SchedulerError, check_scheduler

    try:  # before the heavy imports below: a bad address fails at once
        check_scheduler(scheduler, local=JOB_SCHEDULERS)
    except SchedulerError as error:
        fail(error)
    from weatherunc.checkpoints import CheckpointError
    from weatherunc.errors import InputDataError
    from weatherunc.pipelines import job_path
    from weatherunc.pipelines.job_config import load_job_config
    from weatherunc.pipelines.run_job import JobStateError, run_job

    try:
        config = load_job_config(job_path(job), output_dir=output_dir)
        report = run_job(
            config,
            scheduler=scheduler,
            workers=workers,
            restart=restart,
            catalog=load_catalog(catalog, data_dir),
        )
    except (ValueError, JobStateError, CheckpointError, InputDataError, KeyError, FileExistsError) as error:
        fail(error)
    typer.echo(
        f"store:   {report.store.resolve()}  ({report.tiles_written} of {report.tiles_total} tiles written "
        f"now, {report.seconds:.1f} s)"
    )
    typer.echo(f"metrics: {report.metrics.resolve()}")
    for path in report.figures:
        typer.echo(f"figure:  {path.resolve()}")


def demo(
    out_dir: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path("outputs/demo"),
    scheduler: Annotated[
        str,
        typer.Option(
            help="local (a Dask cluster sized to this machine), threads, synchronous, or a scheduler address."
        ),
    ] = "local",
) -> None:
    """Fill withheld regions of the embedded MRMS sample with the GP (self-calibrated) and the ANP
    (its shipped calibration): maps, calibrated probabilities and scores against the withheld truth
    (no data folder needed). The demo's folder holds only its own outputs: those of an earlier
    demo with another job config, model or calibration (an earlier version) are replaced, and an
    interrupted demo resumes."""
    from weatherunc.pipelines import jobs_folder
    from weatherunc.pipelines.execution import SchedulerError
    from weatherunc.pipelines.job_config import load_job_config
    from weatherunc.pipelines.run_job import JobStateError, run_job

    for name in DEMO_JOBS:
        job = load_job_config(jobs_folder() / name, output_dir=out_dir)
        try:
            report = run_job(job, scheduler=scheduler, restart=True, catalog=load_catalog(None, None))
        except (SchedulerError, JobStateError, FileExistsError) as error:
            fail(error)
        scores = json.loads(report.metrics.read_text()).get("scores", {})
        summary = ", ".join(
            f"{key} {scores[key]:.3f}" for key in ("crps", "rmse", "coverage_90") if key in scores
        )
        typer.echo(f"{job.name}: {summary}")
        typer.echo(f"  store:   {report.store.resolve()}")
        typer.echo(f"  metrics: {report.metrics.resolve()}")
        typer.echo(f"  figures: {(job.run_dir / 'figures').resolve()}")
