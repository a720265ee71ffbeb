"""NumPy kernels of the verification scores, elementwise over broadcast arrays.

Every kernel takes arrays of any matching shape and returns the per-point score; NaN
propagates. The xarray layer (:mod:`weatherunc.metrics.scores`) reduces them.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

_SQRT_PI = np.sqrt(np.pi)


def crps_gaussian(mean: np.ndarray, std: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """CRPS of N(mean, std^2) at ``observed``, closed form.

    ``std * (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi))`` with ``z = (y - mean) / std``.
    Reference: Gneiting, Raftery, Westveld & Goldman (2005), Mon. Wea. Rev. 133, 1098, eq. 5.
    """
    z = (observed - mean) / std
    return std * (z * (2.0 * stats.norm.cdf(z) - 1.0) + 2.0 * stats.norm.pdf(z) - 1.0 / _SQRT_PI)


def crps_ensemble(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """CRPS of the empirical distribution of ``samples`` (last axis) at ``observed``.

    ``E|X - y| - E|X - X'| / 2`` computed from sorted samples in O(m log m).
    Reference: Gneiting & Raftery (2007), JASA 102, 359, eq. 21; same estimator as
    ``properscoring.crps_ensemble``.
    """
    samples = np.sort(np.asarray(samples, dtype=np.float64), axis=-1)
    observed = np.asarray(observed, dtype=np.float64)
    count = samples.shape[-1]
    absolute_error = np.mean(np.abs(samples - observed[..., None]), axis=-1)
    # sum_{i,j} |x_i - x_j| = 2 sum_i (2 i - m - 1) x_(i) for sorted x, i = 1..m
    weights = 2.0 * np.arange(1, count + 1) - count - 1
    spread = 2.0 * np.sum(weights * samples, axis=-1) / count**2
    return absolute_error - 0.5 * spread


def negative_log_density_gaussian(mean: np.ndarray, std: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """-log N(observed; mean, std^2) [nats]."""
    z = (observed - mean) / std
    return 0.5 * z**2 + np.log(std) + 0.5 * np.log(2.0 * np.pi)


def central_interval_gaussian(
    mean: np.ndarray, std: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the central ``level`` interval of N(mean, std^2)."""
    half_width = std * special.ndtri(0.5 + level / 2.0)
    return mean - half_width, mean + half_width


def probability_integral_transform_gaussian(
    mean: np.ndarray, std: np.ndarray, observed: np.ndarray
) -> np.ndarray:
    """PIT value Phi((y - mean) / std) in [0, 1]. Reference: Dawid (1984), JRSS A 147, 278."""
    return stats.norm.cdf((observed - mean) / std)


def probability_bin_index(probability: np.ndarray, bins: int) -> np.ndarray:
    """Index ``[...]`` of each probability's bin among ``bins`` equal-width bins of [0, 1] (1 in the
    last bin; values outside [0, 1] in the first or last). Reference: Murphy & Winkler (1977), Appl.
    Statist. 26, 41 (binned reliability diagram)."""
    return np.clip((probability * bins).astype(int), 0, bins - 1)


def rate_bin_index(rate: np.ndarray, edges: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """Index ``[...]`` (int64) of each rate's bin among the bins with increasing lower edges
    ``edges`` [mm/h]: ``i`` where ``edges[i] <= rate < edges[i + 1]``, the last bin open above.
    Rates below the first edge (``-inf`` too) fall in the first bin; NaN, which sorts after every
    edge, falls in the last (replace it first where it must not count)."""
    return np.clip(np.searchsorted(np.asarray(edges), rate, side="right") - 1, 0, len(edges) - 1).astype(
        np.int64
    )


def brier(probability: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Brier score ``(p - o)^2`` for binary outcomes. Reference: Brier (1950), Mon. Wea. Rev. 78, 1."""
    return (probability - event) ** 2
