"""Fit a model's calibration on held-out validation tasks (never on test tasks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.evaluation import transform_groups, transformed_values
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.calibration import (
    Calibration,
    StdScaling,
    TemperatureScaling,
    VectorScaling,
    fit_vector_scaling,
)
from weatherunc.metrics import categorical_nll, observed_bins, top_label_ece
from weatherunc.models.interface import Interpolator
from weatherunc.prediction import HEAD_SOURCE
from weatherunc.prediction.distribution import grouped_bin_probabilities
from weatherunc.tasks import Task
from weatherunc.transforms import TRANSFORM_ATTRIBUTES


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of sample weights ``[n]`` (Kish 1965;
    ``n`` where the weights are equal, 0 where they are all 0)."""
    return float(np.sum(weights)) ** 2 / max(float(np.sum(weights**2)), 1e-12)


def pooled_predictions(model: Interpolator, tasks: Sequence[Task]) -> tuple[xr.Dataset, np.ndarray]:
    """Predictions of every task (with bin probabilities) concatenated along ``target``, and the truths."""
    predictions = [with_bin_probabilities(model.predict(task)) for task in tasks]
    return pool_predictions(predictions, [task.target_values for task in tasks])


def pool_predictions(
    predictions: Sequence[xr.Dataset], truths: Sequence[np.ndarray]
) -> tuple[xr.Dataset, np.ndarray]:
    """Predictions already made (each with ``bin_probability``) concatenated along ``target``:
    ``transformed_mean``, ``transformed_std``, ``transformed_truth`` (each truth through its own
    prediction's transform: models such as the GP choose the transform per task), the per-target
    ``transform_offset`` where every prediction has it ``[target]``, and ``bin_probability``
    ``[target, bin]``, with the first prediction's attributes; the transform's attributes are left
    out where the transforms differ in more than the offset (or differ in it without per-target
    offsets), so that a transform is read from the pool only where it holds for every target. Also
    the truths ``[target]`` concatenated."""
    keep = [conventions.TRANSFORMED_MEAN, conventions.TRANSFORMED_STD, conventions.BIN_PROBABILITY]
    if all(conventions.TRANSFORM_OFFSET in prediction.data_vars for prediction in predictions):
        keep.append(conventions.TRANSFORM_OFFSET)
    parts = []
    for prediction, truth in zip(predictions, truths, strict=True):
        part = prediction[keep]
        part = part.drop_vars(
            [
                name
                for name in part.coords
                if name not in (conventions.BIN, conventions.BIN_LOWER, conventions.BIN_UPPER)
            ]
        )
        parts.append(
            part.assign(
                transformed_truth=(
                    part[conventions.TRANSFORMED_MEAN].dims,
                    transformed_values(prediction, truth),
                )
            )
        )
    pooled = xr.concat(parts, dim="target")
    pooled.attrs.update(predictions[0].attrs)
    described = {  # offsets count only where the per-target offsets do not record them
        tuple(
            (key, value)
            for key, value in transform.to_attrs().items()
            if key != conventions.TRANSFORM_OFFSET or conventions.TRANSFORM_OFFSET not in keep
        )
        for prediction in predictions
        for transform, _ in transform_groups(prediction)
    }
    if len(described) > 1:
        for key in TRANSFORM_ATTRIBUTES:
            pooled.attrs.pop(key, None)
    return pooled, np.concatenate(truths)


def fit_calibration(
    model: Interpolator,
    tasks: Sequence[Task],
    *,
    method: str = "temperature",
    description: str = "",
    task_groups: Sequence[str] | None = None,
) -> Calibration:
    """Temperature (or vector) scaling of the bin probabilities and a std factor, fitted on ``tasks``.

    ``task_groups``: one label per task (e.g. its dataset); with it, vector scaling's penalty is
    chosen by leave-one-group-out cross-validation (:func:`calibrate_predictions`).
    Records the validation NLL and top-label ECE before and after in ``scores``.
    """
    pooled, truth = pooled_predictions(model, tasks)
    groups = None if task_groups is None else target_groups(tasks, task_groups)
    return calibrate_predictions(
        pooled,
        truth,
        method=method,
        description=description or f"{len(tasks)} validation tasks",
        groups=groups,
    )


def target_groups(tasks: Sequence[Task], task_groups: Sequence[str]) -> np.ndarray:
    """Each task's label repeated for its targets: ``[sum of n_target]``, in the order
    :func:`pooled_predictions` pools them."""
    if len(task_groups) != len(tasks):
        raise ValueError(
            f"task_groups: one label per task, got {len(task_groups)} labels for {len(tasks)} tasks"
        )
    return np.repeat(np.asarray(task_groups, dtype=object), [task.n_target for task in tasks])


def calibrate_predictions(
    pooled: xr.Dataset,
    truth: np.ndarray,
    *,
    method: str = "temperature",
    description: str = "",
    groups: np.ndarray | None = None,
) -> Calibration:
    """:func:`fit_calibration` on predictions already pooled by :func:`pooled_predictions`.

    ``pooled`` has ``transformed_mean``, ``transformed_std``, ``transformed_truth`` ``[target]``
    and ``bin_probability`` ``[target, bin]``; ``truth`` ``[target]`` is the observed rate (NaN
    targets are left out). The std factor is fitted first (:meth:`StdScaling.fit`, dry truths
    counted with their mass below the censoring point); where the bins are derived from the
    Gaussian they follow that factor when the calibration is applied, so the probability scaler
    is fitted on the bins derived at the rescaled std (which needs the pool's transform:
    :func:`pool_predictions` keeps it). ``groups`` ``[target]`` (optional): a label per target; for
    ``method="vector"`` the L2 penalty is then chosen by leave-one-group-out cross-validation
    (:func:`~weatherunc.heads.calibration.fit_vector_scaling`) and the held-out NLL of each
    penalty is recorded in ``scores``; without it vector scaling is unpenalised.
    Lets several calibration methods be fitted on one set of validation predictions.
    """
    known = np.isfinite(truth)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != truth.shape:
            raise ValueError(
                f"groups must have one label per target: shape {groups.shape}, truth {truth.shape}"
            )
        groups = groups[known]
    pooled, truth = pooled.isel(target=np.flatnonzero(known)), truth[known]
    std = StdScaling.fit(
        pooled[conventions.TRANSFORMED_MEAN].values,
        pooled[conventions.TRANSFORMED_STD].values,
        pooled["transformed_truth"].values,
        dry=(truth <= 0) & bool(pooled.attrs.get("censored_at_zero", True)),
    )
    as_predicted = pooled
    if pooled[conventions.BIN_PROBABILITY].attrs.get("source") != HEAD_SOURCE and std.factor != 1.0:
        # bins derived from the Gaussian follow the std factor when applied (Prediction.rescaled):
        # the probability scaler is fitted on them as they will be
        pooled = pooled.assign(
            {
                conventions.BIN_PROBABILITY: pooled[conventions.BIN_PROBABILITY].copy(
                    data=grouped_bin_probabilities(
                        transform_groups(pooled),
                        pooled[conventions.TRANSFORMED_MEAN].values,
                        pooled[conventions.TRANSFORMED_STD].values * std.factor,
                        pooled[conventions.BIN_LOWER].values,
                    )
                )
            }
        )
    probabilities, observed = probabilities_and_observed_bins(pooled, truth)
    held_out: dict[float, float] = {}
    if method == "vector" and groups is not None:
        scaler, held_out = fit_vector_scaling(probabilities, observed, groups)
    else:
        scaler = {"temperature": TemperatureScaling, "vector": VectorScaling}[method].fit(
            probabilities, observed
        )
    calibrated = pooled[conventions.BIN_PROBABILITY].copy(
        data=scaler.apply(pooled[conventions.BIN_PROBABILITY].values)
    )
    observed_bin = xr.DataArray(observed.astype(np.float64), dims="target")
    scores = {
        "validation_targets": int(truth.size),
        "nll_before": float(categorical_nll(as_predicted[conventions.BIN_PROBABILITY], observed_bin)),
        "nll_after": float(categorical_nll(calibrated, observed_bin)),
        "ece_before": top_label_ece(as_predicted[conventions.BIN_PROBABILITY], observed_bin),
        "ece_after": top_label_ece(calibrated, observed_bin),
    }
    if held_out:
        scores["held_out_nll_by_penalty"] = {f"{penalty:g}": value for penalty, value in held_out.items()}
    return Calibration(
        probability=scaler,
        std=std,
        fitted_on=description or f"{int(known.sum())} validation targets",
        scores=scores,
    )


def probabilities_and_observed_bins(pooled: xr.Dataset, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin probabilities ``[n, bins]`` of pooled predictions (:func:`pool_predictions`) at their
    targets with a finite ``truth`` ``[target]``, and the index ``[n]`` of each truth's bin."""
    known = np.flatnonzero(np.isfinite(truth))
    observed = observed_bins(
        xr.DataArray(np.asarray(truth)[known], dims="target"), pooled[conventions.BIN_LOWER].values
    )
    probabilities = pooled[conventions.BIN_PROBABILITY].transpose("target", conventions.BIN).values
    return probabilities[known], observed.values.astype(np.int64)
