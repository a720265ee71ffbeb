"""The ``weatherunc`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="weatherunc: fill unobserved precipitation and say how sure each value is.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
catalog_app = typer.Typer(help="Describe the data catalog.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

CatalogOption = Annotated[
    list[Path] | None, typer.Option("--catalog", help="Extra folder of catalog YAML files (repeatable).")
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data root for catalog file patterns (default: $WEATHERUNC_DATA_DIR)."),
]


def _catalog(catalog_dirs: list[Path] | None, data_dir: Path | None):
    from weatherunc.catalog import Catalog

    return Catalog.load(catalog_dirs, data_root_dir=data_dir)


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@catalog_app.command("list")
def catalog_list(catalog: CatalogOption = None, data_dir: DataDirOption = None) -> None:
    """List catalog entries: name, kind, reader and description."""
    from weatherunc.errors import InputDataError

    try:
        entries = _catalog(catalog, data_dir).entries
    except InputDataError as error:
        _fail(error)
    width = max(len(name) for name in entries)
    for name, entry in entries.items():
        typer.echo(f"{name:<{width}}  {entry.kind:<8}  {entry.reader:<10}  {entry.description}")


@catalog_app.command("show")
def catalog_show(name: str, catalog: CatalogOption = None, data_dir: DataDirOption = None) -> None:
    """Show one entry's fields as YAML."""
    import yaml

    from weatherunc.errors import InputDataError

    try:
        entry = _catalog(catalog, data_dir).get(name)
    except (InputDataError, KeyError) as error:
        _fail(error)
    typer.echo(yaml.safe_dump(entry.model_dump(mode="json"), sort_keys=False, allow_unicode=True))


@app.command()
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
    from weatherunc.pipelines.ingest import ingest as run_ingest

    try:
        report = run_ingest(
            name,
            out,
            catalog=_catalog(catalog, data_dir),
            scheduler=scheduler,
            workers=workers,
            overwrite=overwrite,
            restart=restart,
        )
    except (InputDataError, FileExistsError, KeyError) as error:
        _fail(error)
    typer.echo(
        f"{report.store}: {report.frames_total} frames complete "
        f"({report.frames_written} written now, {report.frames_already_done} already done) in "
        f"{report.seconds:.1f} s"
    )


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see pipelines/training/).")],
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Run folder (default: the config's output_dir).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Override the number of training steps.")] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or cuda:N (default: CUDA when available).")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Override the seed (initialisation and task draws), e.g. for ensemble members."),
    ] = None,
    restart: Annotated[
        bool, typer.Option(help="Start over even if the run folder holds a run of another config.")
    ] = False,
    packed: Annotated[
        Path | None,
        typer.Option(
            help="Training data packed by `weatherunc pack` for this config (read instead of the catalog)."
        ),
    ] = None,
    sampling_workers: Annotated[
        int | None,
        typer.Option(
            help=(
                "Processes drawing training batches ahead of the step (default: the config's, 0 = none); "
                "the result does not depend on it."
            )
        ),
    ] = None,
    initialise_from: Annotated[
        Path | None,
        typer.Option(
            "--initialise-from",
            help=(
                "Fine-tune: start a fresh run from this checkpoint's weights (its architecture must be the "
                "config's; default: the config's initialise_from)."
            ),
        ),
    ] = None,
) -> None:
    """Train a neural process (the convolutional one when the config says `architecture: convnp`); resumes
    from the run folder's last checkpoint."""
    from weatherunc.checkpoints import CheckpointError
    from weatherunc.errors import InputDataError
    from weatherunc.training.config import load_training_config
    from weatherunc.training.convnp_config import is_convnp_config, load_convnp_training_config
    from weatherunc.training.convnp_loop import train_convnp
    from weatherunc.training.loop import train as run_training

    try:
        if is_convnp_config(config):
            if packed is not None or sampling_workers is not None:
                raise ValueError(
                    "--packed and --sampling-workers apply to the attentive and plain neural processes, "
                    "not to architecture: convnp"
                )
            result = train_convnp(
                load_convnp_training_config(
                    config,
                    output_dir=output_dir,
                    steps=steps,
                    device=device,
                    seed=seed,
                    initialise_from=initialise_from,
                ),
                restart=restart,
            )
        else:
            training_config = load_training_config(
                config,
                output_dir=output_dir,
                steps=steps,
                device=device,
                seed=seed,
                sampling_workers=sampling_workers,
                initialise_from=initialise_from,
            )
            result = run_training(training_config, restart=restart, packed=packed)
    except (ValueError, CheckpointError, InputDataError, KeyError) as error:
        _fail(error)
    typer.echo(
        json.dumps(
            {
                "best_checkpoint": str(result.best_checkpoint),
                "steps": result.steps,
                "stopped_early": result.stopped_early,
                "seconds": round(result.seconds, 1),
                "best_validation": result.best_scores,
            },
            indent=2,
        )
    )


@app.command("refit-head")
def refit_head(
    config: Annotated[Path, typer.Argument(help="The training config the checkpoint was trained with.")],
    checkpoint: Annotated[
        Path, typer.Argument(help="Trained neural process (.safetensors with its sidecar).")
    ],
    output: Annotated[Path, typer.Argument(help="Where to write the refitted checkpoint (not the input).")],
    batches: Annotated[
        int,
        typer.Option(
            help=(
                "Training batches drawn for the refit (300 x batch 32 x 64 targets x 4 draws of 128 "
                "features: about 0.6 GB)."
            )
        ),
    ] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the refit's task stream.")] = 1,
    packed: Annotated[
        Path | None,
        typer.Option(
            help="Training data packed by `weatherunc pack` for this config (read instead of the catalog)."
        ),
    ] = None,
    gaussian: Annotated[
        bool,
        typer.Option(
            help=(
                "Also refit the Gaussian rows (mean, std) to the likelihood of the published Gaussian; "
                "changes the Gaussian predictions."
            )
        ),
    ] = False,
) -> None:
    """Refit a neural process's bin head in prediction mode (prior latents, no dropout) on training tasks;
    the Gaussian outputs are kept unless --gaussian."""
    from weatherunc.checkpoints import CheckpointError
    from weatherunc.errors import InputDataError
    from weatherunc.training.config import load_training_config
    from weatherunc.training.head_refit import HeadRefitOptions, refit_checkpoint

    try:
        report = refit_checkpoint(
            load_training_config(config),
            checkpoint,
            output,
            HeadRefitOptions(batches=batches, seed=seed, gaussian=gaussian),
            packed=packed,
        )
    except (ValueError, CheckpointError, InputDataError, KeyError) as error:
        _fail(error)
    typer.echo(json.dumps({"checkpoint": str(output), **report}, indent=2))


@app.command()
def swag(
    config: Annotated[
        Path, typer.Argument(help="The ConvNP training config the checkpoint was trained with.")
    ],
    checkpoint: Annotated[Path, typer.Argument(help="Trained ConvNP (.safetensors with its sidecar).")],
    output: Annotated[Path, typer.Argument(help="Where to write the SWAG moments (.safetensors).")],
    steps: Annotated[int, typer.Option(help="Training steps at a constant learning rate.")] = 300,
    every: Annotated[int, typer.Option(help="Collect the weights every this many steps.")] = 10,
    burn_in: Annotated[int, typer.Option(help="Steps before the first collection.")] = 50,
    rank: Annotated[int, typer.Option(help="Deviations kept for the low-rank part.")] = 20,
    learning_rate: Annotated[float, typer.Option(help="The constant learning rate (Adam).")] = 1e-4,
) -> None:
    """Collect SWAG moments of a ConvNP's decoder and last U-Net block; use them with
    get_model("convnp", swag=OUTPUT, weight_samples=N)."""
    from weatherunc.checkpoints import CheckpointError
    from weatherunc.errors import InputDataError
    from weatherunc.training.convnp_config import load_convnp_training_config
    from weatherunc.training.swag import collect_swag

    try:
        sidecar = collect_swag(
            load_convnp_training_config(config),
            checkpoint,
            output,
            steps=steps,
            every=every,
            burn_in=burn_in,
            rank=rank,
            learning_rate=learning_rate,
        )
    except (ValueError, CheckpointError, InputDataError, KeyError, OSError) as error:
        _fail(error)
    typer.echo(json.dumps({"swag": str(output), "sidecar": str(sidecar)}, indent=2))


def parse_frames(specification: str):
    """``DATASET[,START[,END]]`` (ISO times, either may be empty) as a frame selection."""
    from weatherunc.training.config import FrameSelection

    parts = specification.split(",")
    if not parts[0] or len(parts) > 3:
        raise ValueError(
            f"--frames {specification!r}: expected DATASET[,START[,END]], e.g. "
            "knmi_20100826,2010-08-26T04:40,2010-08-26T05:10"
        )
    start, end = (parts[1:] + ["", ""])[:2]
    return FrameSelection(dataset=parts[0], start=start or None, end=end or None)


def _calibration_figure(pooled, truth, calibration, path: Path, *, title: str) -> Path:
    """Reliability of the most probable bin before and after ``calibration`` on pooled predictions, saved
    to ``path``."""
    import numpy as np
    import xarray as xr

    from weatherunc.heads.fitting import probabilities_and_observed_bins
    from weatherunc.metrics import top_label_calibration
    from weatherunc.plotting import reliability_figure, save_figure

    probabilities, observed = probabilities_and_observed_bins(pooled, truth)
    outcome = xr.DataArray(observed.astype(np.float64), dims="target")
    diagrams = {
        label: top_label_calibration(xr.DataArray(values, dims=("target", "bin")), outcome).compute()
        for label, values in (
            ("before", probabilities),
            (f"after ({calibration.probability.method})", calibration.probability.apply(probabilities)),
        )
    }
    return save_figure(reliability_figure(diagrams, title=title), path)


@app.command()
def calibrate(
    model: Annotated[str, typer.Argument(help="Registered model name (anp, cnp, gp, kriging, idw, ...).")],
    output: Annotated[
        Path, typer.Argument(help="calibration.json to write (give it to a job as `calibration:`).")
    ],
    frames: Annotated[
        list[str],
        typer.Option(
            "--frames",
            help=(
                "Held-out frames to calibrate on: DATASET[,START[,END]] (repeatable; never the frames you "
                "will score on)."
            ),
        ),
    ],
    method: Annotated[
        str,
        typer.Option(
            help=(
                "temperature, or vector (its penalty chosen by leaving out one dataset at a time: needs "
                "frames of two or more datasets)."
            )
        ),
    ] = "temperature",
    tasks: Annotated[
        int,
        typer.Option(
            min=2,
            help=(
                "Validation tasks drawn (alternately masked blocks and gauge networks), spread over the "
                "--frames."
            ),
        ),
    ] = 24,
    seed: Annotated[int, typer.Option(help="Seed of the tasks.")] = 101,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Neural-process checkpoint instead of the packaged one.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUTPUT.")] = False,
    figure: Annotated[
        Path | None,
        typer.Option(
            help=(
                "Also draw the reliability of the most probable bin on the calibration tasks, before and "
                "after (PNG)."
            )
        ),
    ] = None,
    catalog: CatalogOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Fit a model's calibration (temperature or vector scaling of its bin probabilities, and a std factor)
    on held-out frames, e.g. of your own radar."""
    from weatherunc.checkpoints import CheckpointError
    from weatherunc.errors import InputDataError
    from weatherunc.heads.fitting import calibrate_predictions, pooled_predictions, target_groups
    from weatherunc.models.registry import get_model
    from weatherunc.training.validation import labelled_validation_tasks

    try:
        if method not in ("temperature", "vector"):
            raise ValueError(f"--method {method!r}: expected temperature or vector")
        for path in (output, figure):
            if path is not None and path.exists() and not overwrite:
                raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
        selections = [parse_frames(specification) for specification in frames]
        if method == "vector" and len({selection.dataset for selection in selections}) < 2:
            raise ValueError(
                "--method vector chooses its penalty by leaving out one dataset at a time: give --frames of "
                "at least two datasets"
            )
        try:
            interpolator = get_model(model, checkpoint=checkpoint) if checkpoint else get_model(model)
        except TypeError as error:
            raise ValueError(f"--checkpoint: model {model!r} does not load checkpoints ({error})") from error
        labelled = labelled_validation_tasks(
            selections, tasks, seed=seed, open_options={"catalog": _catalog(catalog, data_dir)}
        )
        description = f"{len(labelled)} validation tasks (seed {seed}) of " + "; ".join(
            f"{s.dataset} {s.start or '...'} to {s.end or '...'}" for s in selections
        )
        validation = [task for _, task in labelled]
        pooled, truth = pooled_predictions(
            interpolator, validation
        )  # as fit_calibration, keeping the predictions for the figure
        calibration = calibrate_predictions(
            pooled,
            truth,
            method=method,
            description=description,
            groups=target_groups(validation, [dataset for dataset, _ in labelled]),
        )
        calibration.save(output)
        if figure is not None:
            _calibration_figure(
                pooled,
                truth,
                calibration,
                figure,
                title=f"{model}: most probable bin, {len(validation)} calibration tasks",
            )
    except (ValueError, CheckpointError, InputDataError, KeyError, FileExistsError) as error:
        _fail(error)
    typer.echo(json.dumps({"calibration": str(output), **calibration.to_dict()}, indent=2))


@app.command()
def pack(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see pipelines/training/).")],
    output: Annotated[Path, typer.Argument(help="The .npz file to write.")],
    seed: Annotated[
        int | None, typer.Option(help="Seed the run will use (it fixes the validation tasks).")
    ] = None,
) -> None:
    """Pack a training config's frames and validation tasks into one file, for `weatherunc train --packed`
    on a machine without the raw data."""
    from weatherunc.errors import InputDataError
    from weatherunc.training.config import load_training_config
    from weatherunc.training.packing import pack_training_data

    try:
        path = pack_training_data(load_training_config(config, seed=seed), output)
    except (ValueError, InputDataError, KeyError) as error:
        _fail(error)
    typer.echo(json.dumps({"packed": str(path), "bytes": path.stat().st_size}))


@app.command()
def run(
    job: Annotated[Path, typer.Argument(help="Job config YAML (see weatherunc/pipelines/jobs/).")],
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
    from weatherunc.checkpoints import CheckpointError
    from weatherunc.errors import InputDataError
    from weatherunc.pipelines.job_config import load_job_config
    from weatherunc.pipelines.run_job import JobStateError, run_job

    try:
        config = load_job_config(job, output_dir=output_dir)
        report = run_job(
            config, scheduler=scheduler, workers=workers, restart=restart, catalog=_catalog(catalog, data_dir)
        )
    except (ValueError, JobStateError, CheckpointError, InputDataError, KeyError, FileExistsError) as error:
        _fail(error)
    typer.echo(
        f"store:   {report.store.resolve()}  ({report.tiles_written} of {report.tiles_total} tiles written "
        f"now, {report.seconds:.1f} s)"
    )
    typer.echo(f"metrics: {report.metrics.resolve()}")
    for path in report.figures:
        typer.echo(f"figure:  {path.resolve()}")


@app.command()
def plot(
    store: Annotated[
        Path, typer.Argument(help="A complete prediction store (zarr) with dims (y, x) or (time, y, x).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG figures.")],
    threshold: Annotated[float, typer.Option(help="Rate threshold [mm/h] of the exceedance map.")] = 1.0,
) -> None:
    """Draw the uncertainty maps of a prediction store: observed, mean, std, P(rate > t), combined, panel."""
    from weatherunc.plotting.files import plot_store

    try:
        written = plot_store(store, out, threshold=threshold)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    for path in written:
        typer.echo(str(path))


@app.command()
def serve(
    stores: Annotated[
        list[Path],
        typer.Argument(help="Complete prediction stores, or folders searched for them (job run folders)."),
    ],
    host: Annotated[
        str, typer.Option(help="Interface to bind; the default serves this machine only.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    fill_timeout: Annotated[
        float, typer.Option(help="Seconds a synchronous POST /fill may take before it is answered 503.")
    ] = 120.0,
) -> None:
    """Serve prediction stores: OGC EDR queries, zarr, maps, on-demand fills and a map page (needs the
    service extra: pip install 'weatherunc[service]')."""
    try:
        from weatherunc.service.server import serve as run_service
    except ImportError as error:
        _fail(ImportError(f"{error}; install the service extra: pip install 'weatherunc[service]'"))
    try:
        from weatherunc.service.settings import ServiceLimits

        run_service(stores, host=host, port=port, limits=ServiceLimits(fill_timeout_s=fill_timeout))
    except (ValueError, FileNotFoundError, ImportError) as error:
        _fail(error)


DEMO_JOBS = ("demo_mrms_gp.yaml", "demo_mrms_anp.yaml")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path("outputs/demo"),
    scheduler: Annotated[
        str,
        typer.Option(
            help="local (a Dask cluster sized to this machine), threads, synchronous, or a scheduler address."
        ),
    ] = "local",
) -> None:
    """Fill withheld regions of the embedded MRMS sample with the GP and the ANP: maps, calibrated
    probabilities and scores against the withheld truth (no data folder needed)."""
    from weatherunc.pipelines import jobs_folder
    from weatherunc.pipelines.job_config import load_job_config
    from weatherunc.pipelines.run_job import run_job

    for name in DEMO_JOBS:
        job = load_job_config(jobs_folder() / name, output_dir=out_dir)
        report = run_job(job, scheduler=scheduler, catalog=_catalog(None, None))
        scores = json.loads(report.metrics.read_text()).get("scores", {})
        summary = ", ".join(
            f"{key} {scores[key]:.3f}" for key in ("crps", "rmse", "coverage_90") if key in scores
        )
        typer.echo(f"{job.name}: {summary}")
        typer.echo(f"  store:   {report.store.resolve()}")
        typer.echo(f"  metrics: {report.metrics.resolve()}")
        typer.echo(f"  figures: {(job.run_dir / 'figures').resolve()}")


if __name__ == "__main__":
    app()
