"""How much evidence pseudo-targets give: the standard error of their coverage with the discs
that hid them as clusters, and the held-out bin NLL of a scaler fitted on the other half of them."""

from __future__ import annotations

import numpy as np


def clustered_coverage(covered: np.ndarray, weights: np.ndarray, discs: np.ndarray) -> tuple[float, float]:
    """Weighted coverage of ``covered`` ``[n]`` and its standard error with the ``discs`` ``[n]`` as
    clusters (the ratio estimator's linearised variance over clusters; Cochran 1977, Sampling
    Techniques, ch. 6): correlated pseudo-targets of one disc count once."""
    totals = np.bincount(discs, weights=weights * covered)
    sizes = np.bincount(discs, weights=weights)
    present = sizes > 0
    totals, sizes = totals[present], sizes[present]
    coverage = float(totals.sum() / max(sizes.sum(), 1e-12))
    clusters = totals.size
    if clusters < 2:
        return coverage, float("inf")
    residuals = totals - coverage * sizes
    return coverage, float(np.sqrt(clusters / (clusters - 1) * np.sum(residuals**2)) / sizes.sum())


def held_out_nll(
    probabilities: np.ndarray, observed: np.ndarray, folds: np.ndarray, fit, weights: np.ndarray | None = None
) -> tuple[float, float] | None:
    """Bin NLL of the pseudo-targets before and after a scaler fitted (``fit(indices)``) on the other
    fold (``folds`` ``[n]``: 0 or 1, by disc), pooled over both folds (with ``weights`` ``[n]``, the
    weighted mean); None if a fold is empty or weighs nothing."""
    weights = np.ones(observed.size) if weights is None else np.asarray(weights, dtype=np.float64)
    if not all(np.sum(weights[folds == fold]) > 0 for fold in (0, 1)):
        return None
    before = after = 0.0
    for fold in (0, 1):
        tested = np.flatnonzero(folds == fold)
        scaler = fit(np.flatnonzero(folds != fold))
        rows = np.arange(tested.size)
        before -= np.sum(
            weights[tested] * np.log(np.maximum(probabilities[tested][rows, observed[tested]], 1e-12))
        )
        after -= np.sum(
            weights[tested]
            * np.log(np.maximum(scaler.apply(probabilities[tested])[rows, observed[tested]], 1e-12))
        )
    total = max(float(np.sum(weights)), 1e-12)
    return before / total, after / total
