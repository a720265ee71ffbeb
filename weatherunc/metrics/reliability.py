"""Reliability diagrams and expected calibration error for probability forecasts.

Streaming: a :class:`ReliabilityAccumulator` is built with ``init``, fed chunk by chunk
with ``accumulate`` (e.g. per Dask block), merged with ``merge``, and read with ``compute``
(as in pysteps ``verification/probscores.py``). References: Murphy & Winkler (1977), Appl.
Statist. 26, 41 (reliability diagram); Naeini, Cooper & Hauskrecht (2015), AAAI (ECE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from weatherunc.metrics.kernels import probability_bin_index

#: How far outside [0, 1] a probability may lie from floating-point rounding before it is refused.
PROBABILITY_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ReliabilityAccumulator:
    """Per-bin sums over equal-width probability bins ``[0, 1]``; each array is ``[bins]``."""

    counts: np.ndarray
    probability_sums: np.ndarray
    event_sums: np.ndarray

    @classmethod
    def init(cls, bins: int = 15) -> ReliabilityAccumulator:
        """Empty accumulator with ``bins`` bins."""
        return cls(np.zeros(bins), np.zeros(bins), np.zeros(bins))

    @property
    def bins(self) -> int:
        """Number of bins."""
        return self.counts.size

    def accumulate(self, probability: np.ndarray, event: np.ndarray) -> ReliabilityAccumulator:
        """A new accumulator that also counts these forecasts (any shape; NaN pairs skipped)."""
        probability = np.asarray(probability, dtype=np.float64).ravel()
        event = np.asarray(event, dtype=np.float64).ravel()
        valid = np.isfinite(probability) & np.isfinite(event)
        probability, event = probability[valid], event[valid]
        if np.any((probability < -PROBABILITY_TOLERANCE) | (probability > 1 + PROBABILITY_TOLERANCE)):
            worst = float(probability[np.argmax(np.abs(probability - 0.5))])
            raise ValueError(f"probabilities must lie in [0, 1]; got {worst!r}")
        probability = np.clip(probability, 0.0, 1.0)  # float32 sums of bin probabilities may end at 1 + 1e-7
        index = probability_bin_index(probability, self.bins)
        return ReliabilityAccumulator(
            self.counts + np.bincount(index, minlength=self.bins),
            self.probability_sums + np.bincount(index, weights=probability, minlength=self.bins),
            self.event_sums + np.bincount(index, weights=event, minlength=self.bins),
        )

    def merge(self, other: ReliabilityAccumulator) -> ReliabilityAccumulator:
        """Sum of two accumulators with the same bins."""
        if other.bins != self.bins:
            raise ValueError(f"cannot merge {self.bins} bins with {other.bins}")
        return ReliabilityAccumulator(
            self.counts + other.counts,
            self.probability_sums + other.probability_sums,
            self.event_sums + other.event_sums,
        )

    def compute(self) -> xr.Dataset:
        """Diagram: mean forecast probability, observed frequency and count per bin (dim ``bin``)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            forecast = self.probability_sums / self.counts
            observed = self.event_sums / self.counts
        edges = np.linspace(0.0, 1.0, self.bins + 1)
        return xr.Dataset(
            {
                "forecast_probability": ("bin", forecast, {"long_name": "mean forecast probability in bin"}),
                "observed_frequency": ("bin", observed, {"long_name": "observed relative frequency in bin"}),
                "count": ("bin", self.counts, {"long_name": "number of forecasts in bin"}),
            },
            coords={
                "bin": 0.5 * (edges[:-1] + edges[1:]),
                "bin_lower": ("bin", edges[:-1]),
                "bin_upper": ("bin", edges[1:]),
            },
        )

    def expected_calibration_error(self) -> float:
        """``sum_b n_b / N * |observed_b - forecast_b|`` over non-empty bins."""
        filled = self.counts > 0
        gaps = np.abs(self.event_sums[filled] - self.probability_sums[filled])  # = n_b |o_b - f_b|
        return float(gaps.sum() / self.counts.sum())


def reliability_diagram(forecast: xr.DataArray, observed: xr.DataArray, *, bins: int = 15) -> xr.Dataset:
    """Reliability diagram of probabilities ``forecast`` for binary ``observed``, over every point."""
    return accumulate_blocks(forecast, observed, bins=bins).compute()


def expected_calibration_error(forecast: xr.DataArray, observed: xr.DataArray, *, bins: int = 15) -> float:
    """Binary expected calibration error over equal-width bins (15 by default)."""
    return accumulate_blocks(forecast, observed, bins=bins).expected_calibration_error()


def accumulate_blocks(
    forecast: xr.DataArray, observed: xr.DataArray, *, bins: int = 15
) -> ReliabilityAccumulator:
    """A :class:`ReliabilityAccumulator` of ``bins`` bins fed with every point of probabilities
    ``forecast`` for binary ``observed``, one Dask block at a time where they are chunked."""
    accumulator = ReliabilityAccumulator.init(bins)
    for block_forecast, block_observed in _blocks(forecast, observed):
        accumulator = accumulator.accumulate(block_forecast, block_observed)
    return accumulator


def _blocks(forecast: xr.DataArray, observed: xr.DataArray):
    """Matching numpy blocks of two arrays: Dask chunks one at a time, else the whole array."""
    forecast, observed = xr.broadcast(forecast, observed)
    if forecast.chunks is None and observed.chunks is None:
        yield forecast.values, observed.values
        return
    import dask.array as da

    forecast_data = da.asarray(forecast.data)
    observed_data = da.asarray(observed.data).rechunk(forecast_data.chunks)
    for block_forecast, block_observed in zip(
        forecast_data.to_delayed().ravel(), observed_data.to_delayed().ravel()
    ):
        yield block_forecast.compute(), block_observed.compute()
