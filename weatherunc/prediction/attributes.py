"""What a prediction dataset records besides its arrays: the attributes of its variables and
coordinates, the default quantile levels and thresholds, and the transform (root attributes and
the per-target ``transform_offset``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.prediction import distribution
from weatherunc.transforms import PrecipitationTransform

DEFAULT_QUANTILES = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)
DEFAULT_THRESHOLDS = (0.1, 1.0, 5.0, 10.0)
HEAD_SOURCE = "categorical head"
DERIVED_SOURCE = "derived from the predictive distribution"

_RATE = {"units": conventions.PRECIPITATION_UNITS}
#: Attributes of the variables and coordinates a prediction writes, unless it read others.
ATTRS: dict[str, dict[str, Any]] = {
    conventions.PRECIPITATION_MEAN: {**_RATE, "long_name": "predictive mean of precipitation rate"},
    conventions.PRECIPITATION_STD: {
        **_RATE,
        "long_name": "predictive standard deviation of precipitation rate",
    },
    conventions.PRECIPITATION_QUANTILE: {**_RATE, "long_name": "predictive quantiles of precipitation rate"},
    conventions.EXCEEDANCE_PROBABILITY: {"units": "1", "long_name": "P(precipitation rate > threshold)"},
    conventions.TRANSFORMED_MEAN: {"long_name": "predictive mean of the transformed rate"},
    conventions.TRANSFORMED_STD: {
        "long_name": "predictive standard deviation of the transformed rate (latent and noise)"
    },
    conventions.LATENT_VARIANCE: {"long_name": "epistemic (latent) variance of the transformed rate"},
    conventions.NOISE_VARIANCE: {"long_name": "aleatoric (noise) variance of the transformed rate"},
    conventions.TRANSFORM_OFFSET: {
        **_RATE,
        "long_name": "offset of the transform of the rate (models may choose it per task)",
    },
    conventions.BIN_PROBABILITY: {"units": "1", "long_name": "probability of the precipitation-rate bin"},
    conventions.PREDICTIVE_ENTROPY: {"units": "nat", "long_name": "entropy of the mean bin probabilities"},
    conventions.MUTUAL_INFORMATION: {
        "units": "nat",
        "long_name": "mutual information between bin and model draws (epistemic)",
    },
    conventions.RAIN_PROBABILITY: {
        "units": "1",
        "long_name": "P(precipitation rate >= threshold) from the bin probabilities",
    },
    conventions.QUANTILE: {"long_name": "probability level"},
    conventions.THRESHOLD: {**_RATE, "long_name": "precipitation rate threshold"},
    conventions.BIN: {"long_name": "precipitation-rate bin"},
    conventions.BIN_LOWER: {"units": "mm h-1"},
    conventions.BIN_UPPER: {"units": "mm h-1"},
}
#: The rate outputs derived from the Gaussian, each ``[...]`` or ``[..., quantile|threshold]``.
RATE_OUTPUTS = (
    conventions.PRECIPITATION_MEAN,
    conventions.PRECIPITATION_STD,
    conventions.PRECIPITATION_QUANTILE,
    conventions.EXCEEDANCE_PROBABILITY,
)


def read_transform(dataset: xr.Dataset) -> tuple[PrecipitationTransform, np.ndarray | None]:
    """The transform recorded in ``dataset``'s root attributes and its per-target offsets (the
    variable ``transform_offset``, shaped like ``transformed_mean`` where that is present; None
    where there is no such variable)."""
    transform = distribution.transform_from_attrs(dataset.attrs)
    if conventions.TRANSFORM_OFFSET not in dataset.data_vars:
        return transform, None
    offsets = dataset[conventions.TRANSFORM_OFFSET]
    if conventions.TRANSFORMED_MEAN not in dataset:
        return transform, offsets.values
    mean = dataset[conventions.TRANSFORMED_MEAN]
    return transform, np.array(np.broadcast_to(offsets.transpose(*mean.dims).values, mean.shape))
