"""Rates to the standardised values and context grids the convolutional neural process sees (the
rain-rate bins of its categorical head: :func:`weatherunc.metrics.kernels.rate_bin_index`)."""

from __future__ import annotations

import numpy as np

from weatherunc.models.convnp.config import ConvNPConfig


def standardise(config: ConvNPConfig, rate: np.ndarray) -> np.ndarray:
    """Rate [mm/h] ``[...]`` -> standardised transformed rate ``[...]`` (float32)."""
    return ((config.transform.forward(rate) - config.value_centre) / config.value_scale).astype(np.float32)


def context_grids(
    config: ConvNPConfig, rows: np.ndarray, columns: np.ndarray, rates: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The context grids ``observed``, ``values`` ``[H, W]`` (float32) from contexts at integer
    cells ``rows``, ``columns`` ``[n]`` with rates ``[n]`` mm/h: a cell is observed when it holds a
    context, and its value is the mean standardised transformed rate of its contexts."""
    flat = rows.astype(np.int64) * shape[1] + columns.astype(np.int64)
    size = shape[0] * shape[1]
    counts = np.bincount(flat, minlength=size).astype(np.float64)
    sums = np.bincount(flat, weights=standardise(config, rates).astype(np.float64), minlength=size)
    observed = counts > 0
    values = np.zeros(size)
    values[observed] = sums[observed] / counts[observed]
    return observed.reshape(shape).astype(np.float32), values.reshape(shape).astype(np.float32)
