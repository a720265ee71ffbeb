"""Per-target scores of a prediction whose transformed std is scaled by a factor, as self-calibration
fits them on pseudo-targets (:mod:`weatherunc.heads.self_calibration.fitting`): coverage of the
central interval, CRPS and the squared error of the rate's mean, the median kept or (``keep_mean``)
the rate's mean kept."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.evaluation import CRPS_NODES, transform_groups
from weatherunc.metrics.kernels import crps_ensemble
from weatherunc.prediction.distribution import mean_keeping_location
from weatherunc.transforms import (
    PrecipitationTransform,
    central_interval_coverage,
    moments,
    quantile_nodes,
    quantiles,
)

#: Std factors searched per distance bin.
FACTOR_GRID = np.exp(np.linspace(np.log(0.5), np.log(4.0), 61))
#: The column of :data:`FACTOR_GRID` that is exactly 1 (the std as predicted).
UNIT_FACTOR = int(np.argmin(np.abs(np.log(FACTOR_GRID))))


def _gaussian(
    prediction: xr.Dataset, factor: np.ndarray | float, keep_mean: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Transformed mean and std times ``factor``, each shaped like ``transformed_mean``; with
    ``keep_mean`` the mean moved so that the rate's mean stays (:meth:`Prediction.rescaled`)."""
    mean = prediction[conventions.TRANSFORMED_MEAN].values
    std = prediction[conventions.TRANSFORMED_STD].values
    scaled = std * factor
    if keep_mean:
        mean = mean_keeping_location(transform_groups(prediction), mean, std, scaled)
    return mean, scaled


def _per_target(
    prediction: xr.Dataset,
    truth: np.ndarray,
    score: Callable[[PrecipitationTransform, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    factor: np.ndarray | float = 1.0,
    keep_mean: bool = False,
) -> np.ndarray:
    """``score(transform, mean, std, truth)`` ``[n]`` of each target, by transform group, with the std
    times ``factor`` (:func:`_gaussian`)."""
    mean, std = _gaussian(prediction, factor, keep_mean)
    values = np.full(mean.shape, np.nan)
    for transform, members in transform_groups(prediction):
        values[members] = score(transform, mean[members], std[members], truth[members])
    return values


def scaled_coverage(
    prediction: xr.Dataset, truth: np.ndarray, level: float, factor: np.ndarray | float = 1.0
) -> np.ndarray:
    """Randomised-PIT coverage ``[n]`` of the central ``level`` interval with the std times ``factor``."""
    return _per_target(
        prediction,
        truth,
        lambda transform, mean, std, observed: central_interval_coverage(
            transform, mean, std, observed, level
        ),
        factor,
    )


def scaled_crps(
    prediction: xr.Dataset, truth: np.ndarray, factor: np.ndarray | float = 1.0, keep_mean: bool = False
) -> np.ndarray:
    """CRPS ``[n]`` of each target (quantile-node approximation, as the verification scores it) with the
    std times ``factor`` (:func:`_gaussian`)."""
    return _per_target(
        prediction,
        truth,
        lambda transform, mean, std, observed: crps_ensemble(
            quantiles(transform, mean, std, quantile_nodes(CRPS_NODES)), observed
        ),
        factor,
        keep_mean,
    )


def scaled_squared_error(
    prediction: xr.Dataset, truth: np.ndarray, factor: np.ndarray | float = 1.0, keep_mean: bool = False
) -> np.ndarray:
    """Squared error ``[n]`` [(mm/h)^2] of the rate's mean (:func:`~weatherunc.transforms.moments`) with the
    std times ``factor``: under a log-like transform the mean grows with the std, the median does not
    (unless ``keep_mean``)."""
    return _per_target(
        prediction,
        truth,
        lambda transform, mean, std, observed: (moments(transform, mean, std)[0] - observed) ** 2,
        factor,
        keep_mean,
    )


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """The ``weights``-weighted mean of ``values`` ``[n]`` (0 where the weights sum to 0)."""
    return float(np.sum(values * weights) / max(np.sum(weights), 1e-12))


def coverage_by_factor(prediction: xr.Dataset, truth: np.ndarray, level: float) -> np.ndarray:
    """Randomised-PIT coverage ``[n, len(FACTOR_GRID)]`` of each target with the std times each factor
    of :data:`FACTOR_GRID` (:func:`scaled_coverage` for every factor at once)."""
    mean, std = _gaussian(prediction, 1.0)
    covered = np.full((mean.size, FACTOR_GRID.size), np.nan)
    for transform, members in transform_groups(prediction):
        covered[members] = central_interval_coverage(
            transform,
            mean[members][:, None],
            std[members][:, None] * FACTOR_GRID[None, :],
            truth[members][:, None],
            level,
        )
    return covered
