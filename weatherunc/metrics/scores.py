"""Verification scores on xarray, all with one signature.

``score(forecast, observed, *, reduce_dims=None, preserve_dims=None, weights=None)``,
after the ``scores`` package. ``forecast`` is a Dataset with ``precipitation_mean`` and
``precipitation_std`` (Gaussian predictive), a DataArray with a ``sample`` dimension
(ensemble), or a DataArray of probabilities. Points where ``observed`` or the forecast
is NaN are left out. NumPy kernels in :mod:`weatherunc.metrics.kernels`; Dask arrays
stay lazy through ``xr.apply_ufunc(..., dask="parallelized")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.metrics import kernels

MEAN = conventions.PRECIPITATION_MEAN
STD = conventions.PRECIPITATION_STD
SAMPLE = "sample"
Dims = str | Sequence[str] | None


def _reduce(
    score: xr.DataArray, reduce_dims: Dims, preserve_dims: Dims, weights: xr.DataArray | None
) -> xr.DataArray:
    """Mean of ``score`` over the chosen dims (all by default), NaN skipped, optionally weighted."""
    if reduce_dims is not None and preserve_dims is not None:
        raise ValueError("give reduce_dims or preserve_dims, not both")
    if preserve_dims is not None:
        keep = {preserve_dims} if isinstance(preserve_dims, str) else set(preserve_dims)
        dims = [dim for dim in score.dims if dim not in keep]
    elif reduce_dims is not None:
        dims = [reduce_dims] if isinstance(reduce_dims, str) else list(reduce_dims)
    else:
        dims = list(score.dims)
    if weights is not None:
        weights = weights.where(score.notnull(), 0.0)
        return score.weighted(weights).mean(dim=dims, skipna=True)
    return score.mean(dim=dims, skipna=True)


def _gaussian(forecast: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray]:
    for name in (MEAN, STD):
        if name not in forecast:
            raise ValueError(f"forecast needs {name!r}; it has {sorted(forecast.data_vars)}")
    std = forecast[STD]
    if bool((std <= 0).any()):
        raise ValueError(f"{STD} must be > 0 everywhere")
    return forecast[MEAN], std


def _elementwise(kernel, *arrays: xr.DataArray) -> xr.DataArray:
    return xr.apply_ufunc(kernel, *arrays, dask="parallelized", output_dtypes=[np.float64])


def _gaussian_score(
    kernel,
    forecast: xr.Dataset,
    observed: xr.DataArray,
    reduce_dims: Dims,
    preserve_dims: Dims,
    weights: xr.DataArray | None,
) -> xr.DataArray:
    """Mean of ``kernel(mean, std, observed)`` of a Gaussian forecast over the chosen dims."""
    mean, std = _gaussian(forecast)
    return _reduce(_elementwise(kernel, mean, std, observed), reduce_dims, preserve_dims, weights)


def crps_gaussian(
    forecast: xr.Dataset,
    observed: xr.DataArray,
    *,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """Mean CRPS of a Gaussian predictive distribution [units of the observation]."""
    return _gaussian_score(kernels.crps_gaussian, forecast, observed, reduce_dims, preserve_dims, weights)


def crps_ensemble(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    *,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """Mean CRPS of the empirical distribution of ``forecast`` over its ``sample`` dim."""
    if SAMPLE not in forecast.dims:
        raise ValueError(f"forecast needs a {SAMPLE!r} dimension; it has {forecast.dims}")
    score = xr.apply_ufunc(
        kernels.crps_ensemble,
        forecast,
        observed,
        input_core_dims=[[SAMPLE], []],
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    return _reduce(score, reduce_dims, preserve_dims, weights)


def negative_log_predictive_density(
    forecast: xr.Dataset,
    observed: xr.DataArray,
    *,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """Mean negative log predictive density of a Gaussian forecast [nats]."""
    return _gaussian_score(
        kernels.negative_log_density_gaussian, forecast, observed, reduce_dims, preserve_dims, weights
    )


def _point(forecast: xr.Dataset | xr.DataArray) -> xr.DataArray:
    return forecast[MEAN] if isinstance(forecast, xr.Dataset) else forecast


def root_mean_squared_error(
    forecast: xr.Dataset | xr.DataArray,
    observed: xr.DataArray,
    *,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """RMSE of the forecast mean."""
    return np.sqrt(_reduce((_point(forecast) - observed) ** 2, reduce_dims, preserve_dims, weights))


def mean_absolute_error(
    forecast: xr.Dataset | xr.DataArray,
    observed: xr.DataArray,
    *,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """MAE of the forecast mean."""
    return _reduce(abs(_point(forecast) - observed), reduce_dims, preserve_dims, weights)


def bias(
    forecast: xr.Dataset | xr.DataArray,
    observed: xr.DataArray,
    *,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """Mean error, forecast minus observation (positive: too wet)."""
    return _reduce(_point(forecast) - observed, reduce_dims, preserve_dims, weights)


def gaussian_interval_coverage(
    forecast: xr.Dataset,
    observed: xr.DataArray,
    *,
    level: float = 0.9,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """Fraction of observations inside the central ``level`` interval of a Gaussian forecast of the
    observation itself (``precipitation_mean``, ``precipitation_std``).

    Not the coverage of a prediction's censored rate distribution: that is
    :func:`weatherunc.evaluation.interval_coverage` (randomised PIT, each target with its transform).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mean, std = _gaussian(forecast)
    lower, upper = kernels.central_interval_gaussian(mean, std, level)
    inside = (
        ((observed >= lower) & (observed <= upper))
        .astype(np.float64)
        .where(observed.notnull() & mean.notnull())
    )
    return _reduce(inside, reduce_dims, preserve_dims, weights)


def pit_histogram(
    forecast: xr.Dataset,
    observed: xr.DataArray,
    *,
    bins: int = 10,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """Relative frequencies of PIT values in ``bins`` equal bins of [0, 1] (dim ``pit_bin``).

    Flat at ``1 / bins`` for a calibrated forecast; U-shaped when overconfident.
    """
    mean, std = _gaussian(forecast)
    pit = _elementwise(kernels.probability_integral_transform_gaussian, mean, std, observed)
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    index = xr.DataArray(
        np.clip(np.digitize(pit.values, edges[1:-1]), 0, bins - 1), dims=pit.dims, coords=pit.coords
    )
    frequencies = [
        _reduce((index == b).astype(np.float64).where(pit.notnull()), reduce_dims, preserve_dims, weights)
        for b in range(bins)
    ]
    return xr.concat(frequencies, dim="pit_bin").assign_coords(pit_bin=centres)


@dataclass(frozen=True)
class BrierDecomposition:
    """Brier score = reliability - resolution + uncertainty (Murphy 1973, J. Appl. Meteor. 12, 595)."""

    brier_score: float
    reliability: float
    resolution: float
    uncertainty: float


def brier_score(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    *,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """Mean Brier score of probabilities ``forecast`` for binary ``observed`` (0 or 1)."""
    return _reduce(_elementwise(kernels.brier, forecast, observed), reduce_dims, preserve_dims, weights)


def brier_decomposition(
    forecast: xr.DataArray, observed: xr.DataArray, *, bins: int = 10
) -> BrierDecomposition:
    """Murphy's decomposition over probability bins, from all points (NaN skipped).

    Exact when every forecast probability in a bin is equal; with binned continuous
    probabilities, ``reliability - resolution + uncertainty`` approximates the Brier score.
    """
    probability = np.asarray(forecast, dtype=np.float64).ravel()
    event = np.asarray(observed, dtype=np.float64).ravel()
    valid = np.isfinite(probability) & np.isfinite(event)
    probability, event = probability[valid], event[valid]
    count = probability.size
    climatology = event.mean()
    index = kernels.probability_bin_index(probability, bins)
    reliability = resolution = 0.0
    for b in range(bins):
        members = index == b
        n = members.sum()
        if n:
            reliability += n * (probability[members].mean() - event[members].mean()) ** 2
            resolution += n * (event[members].mean() - climatology) ** 2
    return BrierDecomposition(
        brier_score=float(np.mean((probability - event) ** 2)),
        reliability=float(reliability / count),
        resolution=float(resolution / count),
        uncertainty=float(climatology * (1.0 - climatology)),
    )
