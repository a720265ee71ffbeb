"""Refitting the head of a checkpoint file: the architecture check, the validation report before
and after, and the new checkpoint with the report in its sidecar."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.checkpoints import CheckpointError, save_checkpoint
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.fitting import pool_predictions, probabilities_and_observed_bins
from weatherunc.metrics import categorical_nll, top_label_ece
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import (
    ARCHITECTURE,
    NeuralProcessInterpolator,
    load_neural_process,
)
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.tasks import Task
from weatherunc.training.config import TrainingConfig
from weatherunc.training.head_refit.features import DEFAULT_OPTIONS, HeadRefitOptions
from weatherunc.training.head_refit.fitting import refit_head
from weatherunc.training.loop import architecture_config
from weatherunc.training.packing import catalog_training_data, load_training_data
from weatherunc.training.sampling import StepBatches
from weatherunc.training.validation import mean_scores


def check_architecture(found: NeuralProcessConfig, expected: NeuralProcessConfig, checkpoint: Path) -> None:
    """``CheckpointError`` naming the fields where a checkpoint's config differs from the training
    config's (the value normalisation compared to a relative 1e-6)."""
    found_fields, expected_fields = found.to_dict(), expected.to_dict()
    differing = []
    for name in sorted(set(found_fields) | set(expected_fields)):
        a, b = found_fields.get(name), expected_fields.get(name)
        if name in ("value_centre", "value_scale") and a is not None and b is not None:
            if not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12):
                differing.append(f"{name} {a!r} vs {b!r}")
        elif a != b:
            differing.append(f"{name} {a!r} vs {b!r}")
    if differing:
        raise CheckpointError(
            f"checkpoint {checkpoint} was not trained with this training config: "
            + "; ".join(differing[:4])
            + " (checkpoint vs config)"
        )


def validation_report(model: NeuralProcess, tasks: Sequence[Task]) -> dict[str, float]:
    """The model's scores on ``tasks``: mean crps, nlpd, rmse and coverage_90 over tasks
    (:func:`~weatherunc.training.validation.mean_scores`), and (with a bin head) the multiclass
    ``nll`` and top-label ``ece`` (15 bins) of the bin probabilities pooled over every target."""
    interpolator = NeuralProcessInterpolator(model=model)
    predictions = [interpolator.predict(task) for task in tasks]
    report = mean_scores(predictions, tasks)
    if model.config.bins:
        pooled, truth = pool_predictions(
            [with_bin_probabilities(prediction) for prediction in predictions],
            [task.target_values for task in tasks],
        )
        probabilities, observed = probabilities_and_observed_bins(pooled, truth)  # targets with a known truth
        forecast = xr.DataArray(probabilities, dims=("target", conventions.BIN))
        observed_bin = xr.DataArray(observed.astype(np.float64), dims="target")
        report.update(
            targets=int(observed.size),
            nll=float(categorical_nll(forecast, observed_bin)),
            ece=float(top_label_ece(forecast, observed_bin)),
        )
    return report


def refit_checkpoint(
    config: TrainingConfig,
    checkpoint: Path,
    output: Path,
    options: HeadRefitOptions = DEFAULT_OPTIONS,
    *,
    packed: Path | None = None,
    progress: bool = True,
    open_options: dict | None = None,
) -> dict:
    """Refit the head of ``checkpoint`` (:func:`refit_head`) on tasks from ``config``'s training frames and
    write it to ``output``.

    The checkpoint must have been trained with ``config`` (architecture and value normalisation
    are checked). Tasks are drawn as in training (``config.sampling``, ``config.batch_size``) from
    the stream ``options.seed``. The report (also stored in the new sidecar's metadata under
    ``head_refit``, with the sha256 of the checkpoint it started from) holds the training-task
    NLLs and the validation tasks' scores (:func:`validation_report`) before and after. ``output`` is written
    weights first, sidecar last; it may not be ``checkpoint``.
    """
    checkpoint, output = Path(checkpoint), Path(output)
    if output.resolve() == checkpoint.resolve():
        raise ValueError(
            f"output {output} is the checkpoint itself: the refit never overwrites the weights it starts from"
        )
    model, sidecar = load_neural_process(checkpoint)
    bank, validation = (
        load_training_data(packed, config)
        if packed is not None
        else catalog_training_data(config, progress=progress, open_options=open_options)
    )
    check_architecture(model.config, architecture_config(config, bank), checkpoint)
    batches = StepBatches(bank, model.config, config.sampling, config.batch_size, options.seed)
    refitted, report = refit_head(
        model, (batches[step] for step in range(options.batches)), options, progress=progress
    )
    report["validation_before"], report["validation_after"] = (
        validation_report(model, validation),
        validation_report(refitted, validation),
    )
    report["from_sha256"] = sidecar["sha256"]
    metadata = {**sidecar.get("metadata", {}), "head_refit": report}
    save_checkpoint(
        output,
        refitted.state_dict(),
        architecture=ARCHITECTURE,
        config=refitted.config.to_dict(),
        metadata_=metadata,
    )
    return report
