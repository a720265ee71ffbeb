"""Score a model's prediction for a task with the verification metrics.

CRPS is evaluated on the back-transformed (censored) predictive distribution in mm/h from
100 equally weighted quantiles (the quantile form of the CRPS, Laio & Tamea 2007, Hydrol.
Earth Syst. Sci. 11, 1267); NLPD is the negative log likelihood of the observed rate (density
where wet, the censored mass at zero where dry: :func:`weatherunc.transforms.log_density`), so
it compares models and transforms alike; coverage is the probability that the randomised PIT
lies in the central interval (:func:`weatherunc.transforms.central_interval_coverage`): for a
wet truth, whether it lies inside the central interval of the rate distribution; for a dry
truth, the share of the point mass at zero inside it, so that a calibrated forecast scores the
nominal level also where much of the field is dry.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from weatherunc import conventions, metrics
from weatherunc.prediction import Prediction, read_transform, single_transform
from weatherunc.prediction import transform_groups as grouped
from weatherunc.tasks import Task
from weatherunc.transforms import (
    PrecipitationTransform,
    central_interval_coverage,
    log_density,
    pit_interval_probability,
    quantile_nodes,
    quantiles,
)

CRPS_NODES = 100


def transform_of(prediction: xr.Dataset) -> PrecipitationTransform:
    """The transform recorded in a prediction (one for all its targets;
    :func:`weatherunc.prediction.read_transform`).

    Raises ``ValueError`` where the per-target ``transform_offset`` differs between targets
    (predictions of several tasks pooled or tiled): split them by offset first
    (:func:`offset_groups`).
    """
    return single_transform(*read_transform(prediction))


def transform_groups(prediction: xr.Dataset) -> list[tuple[PrecipitationTransform, np.ndarray]]:
    """``(transform, mask)`` pairs that cover every target, each mask shaped like ``transformed_mean``.

    One pair (all targets) when the prediction has one offset; otherwise one per value of the
    per-target ``transform_offset`` (targets without an offset, e.g. unpredicted pixels of a
    grid, go with the first). For element-wise work on predictions of several tasks or tiles.
    """
    transform, offsets = read_transform(prediction)
    return grouped(transform, offsets, prediction[conventions.TRANSFORMED_MEAN].shape)


def transformed_values(prediction: xr.Dataset, rates: np.ndarray) -> np.ndarray:
    """``rates`` (shaped like ``transformed_mean``) through each target's own transform."""
    rates = np.asarray(rates, dtype=np.float64)
    out = np.full(rates.shape, np.nan)
    for transform, members in transform_groups(prediction):
        out[members] = transform.forward(rates[members])
    return out


def offset_groups(prediction: xr.Dataset, task: Task) -> list[tuple[xr.Dataset, Task]]:
    """``(prediction, task)`` parts that each have one transform (one part when all targets share
    it), split by :func:`transform_groups`; parts keep the task's contexts."""
    groups = transform_groups(prediction)
    if len(groups) == 1:
        return [(prediction, task)]
    dim = task.target_dim
    parts = []
    for transform, mask in groups:
        members = np.flatnonzero(mask)
        part = prediction.isel({dim: members}).assign_attrs(transform.to_attrs())
        parts.append(
            (
                part,
                Task(
                    task.context_coordinates,
                    task.context_values,
                    task.target_coordinates[members],
                    task.target_values[members],
                    context_covariates=task.context_covariates,
                    target_covariates=None
                    if task.target_covariates is None
                    else task.target_covariates[members],
                    target_dim=dim,
                    target_coords={
                        name: np.asarray(coords)[members] for name, coords in task.target_coords.items()
                    },
                ),
            )
        )
    return parts


def score_prediction(prediction: xr.Dataset, task: Task) -> dict[str, float]:
    """crps, nlpd, rmse, mae, bias, coverage_50/80/90/95 over the task's targets with known truth.

    Targets with different transform offsets are scored with their own and pooled
    (:func:`pooled_scores`).
    """
    parts = offset_groups(prediction, task)
    if len(parts) > 1:
        parts = [(part, part_task) for part, part_task in parts if np.isfinite(part_task.target_values).any()]
        if not parts:
            raise ValueError("the task has no target with known truth to score")
        return pooled_scores([part for part, _ in parts], [part_task for _, part_task in parts])
    predicted = Prediction.from_dataset(prediction)
    transform = predicted.single_transform()
    dim = task.target_dim
    truth = xr.DataArray(task.target_values, dims=dim)
    known = np.isfinite(task.target_values)
    if not known.any():
        raise ValueError("the task has no target with known truth to score")
    mean, std = predicted.transformed_mean, predicted.transformed_std
    nodes = quantiles(transform, mean, std, quantile_nodes(CRPS_NODES))  # [n_target, nodes]
    ensemble = xr.DataArray(nodes, dims=(dim, "sample"))
    rate_mean = xr.DataArray(predicted.rate_outputs()[conventions.PRECIPITATION_MEAN], dims=dim)
    scores = {
        "crps": float(metrics.crps_ensemble(ensemble, truth)),
        "nlpd": float(-np.mean(log_density(transform, mean, std, task.target_values)[known])),
        "rmse": float(metrics.root_mean_squared_error(rate_mean, truth)),
        "mae": float(metrics.mean_absolute_error(rate_mean, truth)),
        "bias": float(metrics.bias(rate_mean, truth)),
    }
    for level in (0.5, 0.8, 0.9, 0.95):
        inside = central_interval_coverage(
            transform, mean[known], std[known], task.target_values[known], level
        )
        scores[f"coverage_{round(level * 100)}"] = float(inside.mean())
    return scores


def pooled_scores(predictions: Sequence[xr.Dataset], tasks: Sequence[Task]) -> dict[str, float]:
    """The scores of :func:`score_prediction` over the targets of several tasks taken together.

    Each prediction is scored with its own transform (models such as the GP choose it per task),
    then the means are combined with weights equal to each task's number of known targets (RMSE
    through its mean square), which equals scoring the pooled targets.
    """
    if len(predictions) != len(tasks) or not tasks:
        raise ValueError(
            f"pooled_scores needs one prediction per task and at least one: {len(predictions)} predictions, "
            f"{len(tasks)} tasks"
        )
    each = [score_prediction(prediction, task) for prediction, task in zip(predictions, tasks)]
    counts = np.array([np.isfinite(task.target_values).sum() for task in tasks], dtype=np.float64)
    weights = counts / counts.sum()
    return {
        key: float(np.sqrt(np.dot(weights, [scores[key] ** 2 for scores in each])))
        if key == "rmse"
        else float(np.dot(weights, [scores[key] for scores in each]))
        for key in each[0]
    }


def rate_pit_histogram(prediction: xr.Dataset, task: Task, *, bins: int = 10) -> xr.DataArray:
    """Relative frequencies of the PIT of the observed rate in ``bins`` equal bins of [0, 1]
    (dim ``pit_bin``, labelled by the bins' centres), over the targets with known truth.

    Each target adds the probability that its randomised PIT falls in each bin
    (:func:`weatherunc.transforms.pit_interval_probability`): a wet truth all of it to the bin of
    ``F(y)``, a dry truth spread evenly over ``[0, F0]``, the mass at zero (the non-randomised
    PIT histogram of Czado, Gneiting & Held 2009, Biometrics 65, 1254). Flat at ``1 / bins`` for
    a calibrated forecast; U-shaped when overconfident. A PIT of the transformed value instead
    puts every dry truth at ``F0`` and piles them into one bin. Targets with different transform
    offsets each use their own (:func:`transform_groups`).
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    mean, std = (
        prediction[conventions.TRANSFORMED_MEAN].values,
        prediction[conventions.TRANSFORMED_STD].values,
    )
    truth = np.asarray(task.target_values, dtype=np.float64)
    known = np.isfinite(truth)
    if not known.any():
        raise ValueError("the task has no target with known truth to score")
    edges = np.linspace(0.0, 1.0, bins + 1)
    shares = np.zeros((len(truth), bins))
    for transform, members in transform_groups(prediction):
        members = members & known
        for index, (lower, upper) in enumerate(zip(edges[:-1], edges[1:])):
            shares[members, index] = pit_interval_probability(
                transform, mean[members], std[members], truth[members], lower, upper
            )
    # A wet PIT exactly on an inner edge lies in two closed bins: it is shared between them.
    shares[known] /= shares[known].sum(axis=1, keepdims=True)
    centres = 0.5 * (edges[:-1] + edges[1:])
    return xr.DataArray(
        shares[known].mean(axis=0), dims="pit_bin", coords={"pit_bin": centres}, name="pit_frequency"
    )


def interval_coverage(
    prediction: xr.Dataset, truth: xr.DataArray | np.ndarray, level: float = 0.9
) -> xr.DataArray:
    """Per target, the probability that the central ``level`` interval covers the observed ``truth`` [mm/h].

    ``truth`` is shaped like ``prediction["transformed_mean"]`` (a DataArray with its dims, in any
    order, or an array of its shape): task targets or a grid. The result has that shape, NaN where
    the truth or the prediction is missing; its mean over targets is the coverage of
    :func:`score_prediction` (the randomised-PIT rule of
    :func:`weatherunc.transforms.central_interval_coverage`, each target with its own transform),
    not the share of truths between two quantiles, which counts every dry truth as covered where
    the lower quantile is censored to 0.
    (:func:`weatherunc.metrics.gaussian_interval_coverage` is the share of observations inside a
    plain Gaussian's central interval.)
    """
    mean = prediction[conventions.TRANSFORMED_MEAN]
    if isinstance(truth, xr.DataArray):
        if set(truth.dims) != set(mean.dims):
            raise ValueError(
                f"interval_coverage: truth has dims {truth.dims}, the prediction's transformed_mean "
                f"{mean.dims}"
            )
        truth = truth.transpose(*mean.dims)
    rates = np.asarray(truth, dtype=np.float64)
    if rates.shape != mean.shape:
        raise ValueError(
            f"interval_coverage: truth has shape {rates.shape}, the prediction's transformed_mean "
            f"{mean.shape}"
        )
    means, stds = mean.values, prediction[conventions.TRANSFORMED_STD].values
    known = np.isfinite(rates) & np.isfinite(means) & np.isfinite(stds)
    covered = np.full(rates.shape, np.nan)
    for transform, members in transform_groups(prediction):
        chosen = members & known
        covered[chosen] = central_interval_coverage(
            transform, means[chosen], stds[chosen], rates[chosen], level
        )
    return (
        mean.copy(data=covered)
        .rename("interval_coverage")
        .assign_attrs(
            {
                "level": level,
                "long_name": f"probability that the central {level:.0%} interval covers the truth",
            }
        )
    )


def distance_to_nearest_context(task: Task) -> np.ndarray:
    """Distance [km] from each target to its nearest context point, ``[n_target]``."""
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(task.context_coordinates).query(task.target_coordinates, k=1)
    return distance


def scores_by_distance(
    prediction: xr.Dataset, task: Task, edges_km: tuple[float, ...] = (0, 2, 4, 8, 16, 32, np.inf)
) -> xr.Dataset:
    """CRPS, 90 % coverage (as in :func:`score_prediction`) and count per bin of distance to the
    nearest context (dim ``distance``, labelled by the bin's mean distance; empty bins are NaN)."""
    from weatherunc.metrics.kernels import crps_ensemble as crps_kernel

    mean, std = (
        prediction[conventions.TRANSFORMED_MEAN].values,
        prediction[conventions.TRANSFORMED_STD].values,
    )
    truth = task.target_values
    crps = np.full(truth.shape, np.nan)
    for transform, members in transform_groups(prediction):
        crps[members] = crps_kernel(
            quantiles(transform, mean[members], std[members], quantile_nodes(CRPS_NODES)), truth[members]
        )
    covered = interval_coverage(prediction, truth, 0.9).values
    distance = distance_to_nearest_context(task)
    known = np.isfinite(truth)
    rows = []
    for low, high in zip(edges_km[:-1], edges_km[1:]):
        members = known & (distance >= low) & (distance < high)
        count = int(members.sum())
        rows.append(
            (
                float(distance[members].mean()) if count else np.nan,
                float(crps[members].mean()) if count else np.nan,
                float(covered[members].mean()) if count else np.nan,
                count,
            )
        )
    centres, crps_values, coverage, counts = (np.array(column) for column in zip(*rows))
    return xr.Dataset(
        {
            "crps": ("distance", crps_values, {"units": "mm h-1"}),
            "coverage_90": ("distance", coverage),
            "count": ("distance", counts),
            "mean_distance": ("distance", centres, {"units": "km"}),
        },
        coords={
            "distance": ("distance", np.arange(len(rows))),
            "distance_lower": ("distance", np.asarray(edges_km[:-1], dtype=float), {"units": "km"}),
            "distance_upper": ("distance", np.asarray(edges_km[1:], dtype=float), {"units": "km"}),
        },
    )
