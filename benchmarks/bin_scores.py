"""The benchmarks' one reading of rain-bin probabilities pooled over tasks: the bin each truth fell
in, and the top-label ECE (Guo et al. 2017) over :data:`ECE_BINS` confidence bins."""

from __future__ import annotations

import numpy as np
import xarray as xr

from weatherunc import conventions, metrics

#: Confidence bins of every benchmark's top-label ECE.
ECE_BINS = 15


def probability_and_observed(pooled: xr.Dataset, truth: np.ndarray) -> tuple[xr.DataArray, xr.DataArray]:
    """The bin probabilities ``[target, bin]`` of predictions pooled over tasks
    (:func:`weatherunc.heads.fitting.pool_predictions`) without their bin coordinates, and the bin
    each truth ``[target]`` (mm/h) falls in."""
    observed = metrics.observed_bins(xr.DataArray(truth, dims="target"), pooled[conventions.BIN_LOWER].values)
    probability = pooled[conventions.BIN_PROBABILITY].drop_vars(
        [conventions.BIN_LOWER, conventions.BIN_UPPER], errors="ignore"
    )
    return probability, observed


def pooled_ece(pooled: xr.Dataset, truth: np.ndarray) -> float:
    """Top-label ECE of predictions pooled over tasks against their truths ``[target]``."""
    return float(metrics.top_label_ece(*probability_and_observed(pooled, truth), bins=ECE_BINS))
