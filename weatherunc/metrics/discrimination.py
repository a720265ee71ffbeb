"""How well a score tells two groups apart."""

from __future__ import annotations

import numpy as np
from scipy import stats


def area_under_roc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of a score that should be higher for ``positive`` ``[n]`` than for
    ``negative`` ``[m]``: the probability that a random positive scores above a random negative,
    ties counting half (the Mann-Whitney U statistic divided by ``n m``; Hanley & McNeil 1982,
    Radiology 143). NaN when either group is empty."""
    positive, negative = np.ravel(positive).astype(float), np.ravel(negative).astype(float)
    if positive.size == 0 or negative.size == 0:
        return float("nan")
    ranks = stats.rankdata(np.concatenate([positive, negative]))
    statistic = ranks[: positive.size].sum() - positive.size * (positive.size + 1) / 2
    return float(statistic / (positive.size * negative.size))
