"""Probabilities over precipitation-rate bins, for every model.

Neural processes predict them with a softmax head; for Gaussian-in-transformed-space models
(GP, kriging...) they follow from the predictive distribution ``Y = max(g^-1(Z), 0)``:
``P(e_k <= Y < e_k+1) = P(Y >= e_k) - P(Y >= e_k+1)`` with ``P(Y >= 0) = 1`` and
``P(Y >= e) = 1 - Phi((g(e) - mu) / s)`` for ``e > 0``. Exceedance ("rain") probabilities at
bin edges are sums of bins. Entropy and mutual information (epistemic part) follow
Depeweg et al. (2018) / Gal (2016): ``I = H[E p] - E H[p]`` over latent, dropout or member draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy import stats

from weatherunc.conventions import DEFAULT_BIN_EDGES
from weatherunc.transforms import PrecipitationTransform

BIN = "bin"


def gaussian_bin_probabilities(
    transform: PrecipitationTransform,
    mean: np.ndarray,
    std: np.ndarray,
    edges: Sequence[float] = DEFAULT_BIN_EDGES,
) -> np.ndarray:
    """Bin probabilities ``[..., bins]`` of the censored back-transformed Gaussian ``N(mean, std^2)``
    ``[...]``."""
    edges = np.asarray(edges, dtype=np.float64)
    at_least = np.ones((*np.shape(mean), len(edges) + 1))
    positive = edges > 0
    at_least[..., np.flatnonzero(positive)] = stats.norm.sf(
        (transform.forward(edges[positive]) - mean[..., None]) / std[..., None]
    )
    at_least[..., -1] = 0.0
    return np.clip(at_least[..., :-1] - at_least[..., 1:], 0.0, 1.0)


def bin_coordinates(edges: Sequence[float]) -> dict[str, tuple]:
    """Coordinates ``bin``, ``bin_lower``, ``bin_upper`` [mm/h] for a prediction dataset."""
    edges = np.asarray(edges, dtype=np.float64)
    return {
        BIN: (BIN, np.arange(len(edges)), {"long_name": "precipitation-rate bin"}),
        "bin_lower": (BIN, edges, {"units": "mm h-1"}),
        "bin_upper": (BIN, np.append(edges[1:], np.inf), {"units": "mm h-1"}),
    }


def with_bin_probabilities(prediction: xr.Dataset, edges: Sequence[float] = DEFAULT_BIN_EDGES) -> xr.Dataset:
    """Add ``bin_probability`` (derived from the Gaussian) unless the model predicted it, and
    ``rain_probability``."""
    if "bin_probability" not in prediction:
        from weatherunc.evaluation import transform_groups

        mean, std = prediction["transformed_mean"].values, prediction["transformed_std"].values
        probabilities = np.full((*mean.shape, len(edges)), np.nan)
        for transform, members in transform_groups(prediction):  # each target with its own transform
            probabilities[members] = gaussian_bin_probabilities(transform, mean[members], std[members], edges)
        dims = (*prediction["transformed_mean"].dims, BIN)
        prediction = prediction.assign_coords(bin_coordinates(edges))
        prediction["bin_probability"] = (
            dims,
            probabilities,
            {
                "units": "1",
                "long_name": "probability of the precipitation-rate bin",
                "source": "derived from the predictive distribution",
            },
        )
    return with_rain_probability(prediction)


def with_head_probabilities(
    prediction: xr.Dataset,
    probabilities: np.ndarray,
    edges: Sequence[float],
    predictive_entropy: np.ndarray,
    mutual_information: np.ndarray,
) -> xr.Dataset:
    """Add a categorical head's ``bin_probability`` ``[n_target, bins]``, its ``predictive_entropy``
    and ``mutual_information`` ``[n_target]`` (0 for a deterministic model) and ``rain_probability``."""
    dim = prediction["transformed_mean"].dims[0]
    prediction = prediction.assign_coords(bin_coordinates(edges))
    prediction["bin_probability"] = (
        (dim, BIN),
        probabilities,
        {
            "units": "1",
            "long_name": "probability of the precipitation-rate bin",
            "source": "categorical head",
        },
    )
    prediction["predictive_entropy"] = (
        dim,
        predictive_entropy,
        {"units": "nat", "long_name": "entropy of the mean bin probabilities"},
    )
    prediction["mutual_information"] = (
        dim,
        mutual_information,
        {"units": "nat", "long_name": "mutual information between bin and model draws (epistemic)"},
    )
    return with_rain_probability(prediction)


def with_rain_probability(prediction: xr.Dataset) -> xr.Dataset:
    """``rain_probability(threshold)``: ``P(rate >= t)`` from the bins, for thresholds that are bin edges."""
    lower = prediction["bin_lower"].values
    thresholds = np.asarray([t for t in prediction["threshold"].values if np.any(np.isclose(lower, t))])
    variable = prediction["bin_probability"]
    probabilities = variable.transpose(..., BIN).values
    tails = np.cumsum(probabilities[..., ::-1], axis=-1)[..., ::-1]  # [..., bins]: P(bin >= k)
    first = np.array([np.flatnonzero(lower >= t - 1e-12)[0] for t in thresholds], dtype=np.int64)
    dims = [dim for dim in variable.dims if dim != BIN]
    prediction = prediction.drop_vars("rain_probability", errors="ignore")
    prediction["rain_probability"] = xr.DataArray(
        tails[..., first],
        dims=(*dims, "threshold"),
        coords={"threshold": thresholds},
        attrs={"units": "1", "long_name": "P(precipitation rate >= threshold) from the bin probabilities"},
    )
    return prediction


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy [nats] over the last axis."""
    probabilities = np.clip(probabilities, 1e-12, 1.0)
    return -(probabilities * np.log(probabilities)).sum(-1)


def entropy_and_mutual_information(sample_probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictive entropy ``H[E p]`` and mutual information ``H[E p] - E H[p]`` from draws ``[samples, ...,
    bins]``."""
    mean = sample_probabilities.mean(0)
    total = entropy(mean)
    return total, np.maximum(total - entropy(sample_probabilities).mean(0), 0.0)
