"""``weatherunc calibrate``: fit a model's calibration on held-out frames."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from weatherunc.cli.shared import CatalogOption, DataDirOption, fail, load_catalog

if TYPE_CHECKING:
    from weatherunc.training.config import FrameSelection


def parse_frames(specification: str) -> FrameSelection:
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
            if path is not None and not path.resolve().parent.is_dir():
                raise ValueError(f"{path}: its folder {path.parent} does not exist")
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
            selections, tasks, seed=seed, open_options={"catalog": load_catalog(catalog, data_dir)}
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
        calibration = replace(
            calibration, model=model, checkpoint_sha256=str(getattr(interpolator, "checkpoint_sha256", ""))
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
        fail(error)
    typer.echo(json.dumps({"calibration": str(output), **calibration.to_dict()}, indent=2))
