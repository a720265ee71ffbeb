"""Probabilities over precipitation-rate bins, for every model.

Neural processes predict them with a softmax head; for Gaussian-in-transformed-space models
(GP, kriging...) they follow from the predictive distribution ``Y = max(g^-1(Z), 0)``
(:func:`~weatherunc.prediction.gaussian_bin_probabilities`, computed by
:meth:`weatherunc.prediction.Prediction.with_derived_bins`). Exceedance ("rain") probabilities at
bin edges are sums of bins. Entropy and mutual information (epistemic part) follow
Depeweg et al. (2018) / Gal (2016): ``I = H[E p] - E H[p]`` over latent, dropout or member draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from weatherunc.conventions import BIN, DEFAULT_BIN_EDGES
from weatherunc.prediction import Prediction, gaussian_bin_probabilities

__all__ = [
    "BIN",
    "entropy",
    "entropy_and_mutual_information",
    "gaussian_bin_probabilities",
    "with_bin_probabilities",
]


def with_bin_probabilities(prediction: xr.Dataset, edges: Sequence[float] = DEFAULT_BIN_EDGES) -> xr.Dataset:
    """Add ``bin_probability`` (derived from the Gaussian) unless the model predicted it, and
    ``rain_probability`` (recomputed from the bins)."""
    predicted = Prediction.from_dataset(prediction)
    if predicted.bins is None:
        return predicted.with_derived_bins(edges).to_dataset()
    return predicted.with_bin_probability(predicted.bins.probability).to_dataset()


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy [nats] over the last axis."""
    probabilities = np.clip(probabilities, 1e-12, 1.0)
    return -(probabilities * np.log(probabilities)).sum(-1)


def entropy_and_mutual_information(sample_probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictive entropy ``H[E p]`` and mutual information ``H[E p] - E H[p]`` from draws
    ``[samples, ..., bins]``."""
    mean = sample_probabilities.mean(0)
    total = entropy(mean)
    return total, np.maximum(total - entropy(sample_probabilities).mean(0), 0.0)
