"""Censored contexts of a Gaussian field: Gibbs sampling of the values hidden below a bound.

A dry context of a censored model (``rate = max(g^-1(z), 0)``) does not say ``z = g(0)``; it
says ``z <= g(0)``. Conditioning a Gaussian process on that inequality has no closed form, so
the censored values are drawn from their joint conditional distribution given every other
context (a multivariate normal truncated above at the bound) by single-site Gibbs sampling:
each censored ``z_i`` in turn from its full conditional ``N(mu_i, 1 / Q_ii)`` truncated to
``(-inf, bound]``, ``mu_i = z_i - (Q z)_i / Q_ii`` with ``Q`` the precision (inverse
covariance) of the contexts. References: Geweke (1991), "Efficient simulation from the
multivariate normal and Student-t distributions subject to linear constraints", Computing
Science and Statistics 23, 571; De Oliveira (2005), "Bayesian inference and prediction of
Gaussian random fields based on censored data", J. Comput. Graph. Stat. 14, 95; for rainfall,
Baxevani & Lennartsson (2015), Water Resour. Res. 51, 4338 (censored latent Gaussian field).
"""

from __future__ import annotations

import numpy as np
from scipy import special

#: Smallest probability of the truncated region sampled by inversion; below it the draw is the bound.
SMALLEST_TAIL = 1e-300


def sample_censored(
    precision: np.ndarray,
    values: np.ndarray,
    censored: np.ndarray,
    bound: float,
    *,
    samples: int,
    burn_in: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draws of a zero-mean Gaussian vector with its ``censored`` entries resampled below ``bound``.

    precision: ``[n, n]`` inverse covariance of the vector (symmetric positive definite).
    values: ``[n]`` the vector; censored entries start from their given value (at or below
    ``bound``), the others are kept as observed.
    censored: ``[n]`` bool, the entries known only to lie at or below ``bound``.
    samples, burn_in: sweeps kept and sweeps discarded first (one sweep visits every censored
    entry once, in index order). Returns ``[n, samples]``; uncensored rows repeat ``values``.
    Each draw is exact in distribution given the others (inversion of the truncated normal's
    distribution function), so the chain targets the truncated joint distribution; seeded by
    ``rng``. Cost: ``O(n_censored * n_censored)`` per sweep.
    """
    values = np.asarray(values, dtype=np.float64)
    censored = np.asarray(censored, dtype=bool)
    n = len(values)
    if precision.shape != (n, n) or censored.shape != (n,):
        raise ValueError(
            f"precision must be [n, n] and censored [n] for n = {n}: got {precision.shape} and "
            f"{censored.shape}"
        )
    if samples < 1 or burn_in < 0:
        raise ValueError(f"samples must be >= 1 and burn_in >= 0, got {samples} and {burn_in}")
    if np.any(values[censored] > bound):
        raise ValueError("censored values must start at or below the bound")
    state = values.copy()
    out = np.repeat(state[:, None], samples, axis=1)
    hidden = np.flatnonzero(censored)
    if hidden.size == 0:
        return out
    block = precision[
        np.ix_(hidden, hidden)
    ]  # [m, m] couplings among the censored entries (a C-ordered copy)
    diagonal = block.diagonal().tolist()
    spread = (1.0 / np.sqrt(block.diagonal())).tolist()
    # (Q z) restricted to the censored entries; only they change, so only they are tracked.
    pulled = (precision @ state)[hidden]  # [m], without copying the [m, n] rows
    current = state[hidden].tolist()
    uniforms = rng.uniform(size=(burn_in + samples, hidden.size)).tolist()
    scratch = np.empty(hidden.size)
    ndtr, ndtri = special.ndtr, special.ndtri
    for sweep in range(burn_in + samples):
        row = uniforms[sweep]
        for position in range(hidden.size):
            value = current[position]
            centre = value - float(pulled[position]) / diagonal[position]
            tail = float(ndtr((bound - centre) / spread[position]))
            draw = (
                min(centre + spread[position] * float(ndtri(row[position] * tail)), bound)
                if tail > SMALLEST_TAIL
                else bound
            )
            change = draw - value
            if change != 0.0:
                # The block is symmetric: its row is the column, and rows are contiguous.
                np.multiply(block[position], change, out=scratch)
                pulled += scratch
                current[position] = draw
        if sweep >= burn_in:
            out[hidden, sweep - burn_in] = current
    return out
