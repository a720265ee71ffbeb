"""Scores of probabilities over ordered precipitation-rate bins (dim ``bin``).

``forecast``: probabilities ``(..., bin)`` summing to 1; ``observed``: the observed bin index
``(...)`` (integer, NaN where unknown). Same signature as every score here.

- multiclass NLL: ``-log p_observed``;
- multiclass Brier score: ``sum_k (p_k - o_k)^2`` (Brier 1950);
- ranked probability score: ``sum_k (P_k - O_k)^2`` over cumulative probabilities, not
  normalised (Epstein 1969, J. Appl. Meteor. 8, 985);
- top-label ECE: expected calibration error of the most probable bin's probability
  (Guo et al. 2017, "On Calibration of Modern Neural Networks", eq. 3), 15 bins by default;
- consistency ECE: the top-label ECE that the forecast itself would score if it were perfectly
  calibrated, with outcomes drawn from it (consistency resampling, Bröcker & Smith 2007,
  "Increasing the reliability of reliability diagrams", Wea. Forecasting 22, 651): the sampling
  floor of the ECE on these forecasts.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.metrics.kernels import rate_bin_index
from weatherunc.metrics.reliability import ReliabilityAccumulator
from weatherunc.metrics.scores import Dims, _reduce

BIN = conventions.BIN
PROBABILITY_FLOOR = 1e-12


def _one_hot(forecast: xr.DataArray, observed: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """The observed bin as one-hot ``(..., bin)`` (float) and where it is known ``(...)``."""
    known = observed.notnull()
    index = observed.fillna(0).astype(np.int64)
    classes = xr.DataArray(np.arange(forecast.sizes[BIN]), dims=BIN)
    return (index == classes).astype(np.float64), known


def _categorical_score(
    per_point,
    forecast: xr.DataArray,
    observed: xr.DataArray,
    reduce_dims: Dims,
    preserve_dims: Dims,
    weights: xr.DataArray | None,
) -> xr.DataArray:
    """Mean of ``per_point(forecast, one_hot)`` ``(...)`` where the observed bin is known."""
    one_hot, known = _one_hot(forecast, observed)
    return _reduce(per_point(forecast, one_hot).where(known), reduce_dims, preserve_dims, weights)


def _rows(array: xr.DataArray) -> np.ndarray:
    """``array`` ``(..., bin)`` as a NumPy array ``[points, bin]``."""
    return array.transpose(..., BIN).values.reshape(-1, array.sizes[BIN])


def categorical_nll(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    *,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """Mean negative log probability of the observed bin (nats)."""
    return _categorical_score(
        lambda probability, one_hot: -np.log(np.maximum((probability * one_hot).sum(BIN), PROBABILITY_FLOOR)),
        forecast,
        observed,
        reduce_dims,
        preserve_dims,
        weights,
    )


def multiclass_brier_score(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    *,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """Mean of ``sum_k (p_k - o_k)^2``."""
    return _categorical_score(
        lambda probability, one_hot: ((probability - one_hot) ** 2).sum(BIN),
        forecast,
        observed,
        reduce_dims,
        preserve_dims,
        weights,
    )


def ranked_probability_score(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    *,
    reduce_dims: Dims = None,
    preserve_dims: Dims = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    """Mean of ``sum_k (P_k - O_k)^2`` over cumulative bin probabilities."""
    return _categorical_score(
        lambda probability, one_hot: ((probability.cumsum(BIN) - one_hot.cumsum(BIN)) ** 2).sum(BIN),
        forecast,
        observed,
        reduce_dims,
        preserve_dims,
        weights,
    )


def top_label_calibration(
    forecast: xr.DataArray, observed: xr.DataArray, *, bins: int = 15
) -> ReliabilityAccumulator:
    """Reliability of the most probable bin: its probability against whether it was observed."""
    one_hot, known = _one_hot(forecast, observed)
    values = _rows(forecast)
    hits = _rows(one_hot.broadcast_like(forecast))
    mask = known.broadcast_like(forecast.isel({BIN: 0})).values.ravel()
    top = np.argmax(values, axis=1)
    rows = np.arange(len(values))
    return ReliabilityAccumulator.init(bins).accumulate(
        values[rows, top][mask], hits[rows, top][mask].astype(bool)
    )


def top_label_ece(forecast: xr.DataArray, observed: xr.DataArray, *, bins: int = 15) -> float:
    """Top-label expected calibration error (Guo et al. 2017)."""
    return top_label_calibration(forecast, observed, bins=bins).expected_calibration_error()


def consistency_top_label_ece(
    forecast: xr.DataArray, *, bins: int = 15, draws: int = 200, seed: int = 0
) -> np.ndarray:
    """Top-label ECE ``[draws]`` of ``forecast`` against outcomes drawn from ``forecast`` itself.

    Each draw observes the most probable bin of each forecast with that bin's probability,
    independently across forecasts, and scores the top-label ECE as :func:`top_label_ece` does;
    a perfectly calibrated forecast scores like these draws. Outcomes that are correlated in
    space (a whole tile too wet) spread the real ECE further, so this is a lower bound on its
    sampling floor. NaN forecasts are skipped.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    values = _rows(forecast)
    values = values[np.all(np.isfinite(values), axis=1)]
    top = values.max(axis=1)
    rng = np.random.default_rng(seed)
    return np.array(
        [
            ReliabilityAccumulator.init(bins)
            .accumulate(top, rng.uniform(size=top.size) < top)
            .expected_calibration_error()
            for _ in range(draws)
        ]
    )


def observed_bins(rate: xr.DataArray, edges: np.ndarray) -> xr.DataArray:
    """Index of the bin of each observed rate (``edges[i] <= rate < edges[i+1]``, last bin open); NaN kept."""
    index = rate_bin_index(np.nan_to_num(rate.values), edges).astype(np.float64)
    return rate.copy(data=np.where(np.isfinite(rate.values), index, np.nan))
