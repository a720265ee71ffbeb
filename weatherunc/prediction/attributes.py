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


#: CF standard names (with CF modifiers) of the stored variables that have one. CF's table holds no
#: name for a probability or for the transformed rate, so those variables carry none (a made-up
#: name would fail CF checkers); their ``long_name`` and ``units`` describe them.
STANDARD_NAMES: dict[str, str] = {
    conventions.PRECIPITATION: "lwe_precipitation_rate",
    conventions.PRECIPITATION_MEAN: "lwe_precipitation_rate",
    conventions.PRECIPITATION_STD: "lwe_precipitation_rate standard_error",
    conventions.PRECIPITATION_QUANTILE: "lwe_precipitation_rate",
    "withheld_precipitation": "lwe_precipitation_rate",
    "observation": "lwe_precipitation_rate status_flag",
}
#: Attributes of the coordinates of a stored prediction.
COORDINATE_ATTRS: dict[str, dict[str, Any]] = {
    conventions.TIME: conventions.TIME_ATTRS,
    conventions.QUANTILE: {"long_name": "probability level of the quantile", "units": "1"},
    conventions.THRESHOLD: {**ATTRS[conventions.THRESHOLD], "standard_name": "lwe_precipitation_rate"},
    conventions.BIN: {**ATTRS[conventions.BIN], "units": "1"},
    conventions.BIN_LOWER: {
        **_RATE,
        "standard_name": "lwe_precipitation_rate",
        "long_name": "lower edge of the precipitation-rate bin",
    },
    conventions.BIN_UPPER: {
        **_RATE,
        "standard_name": "lwe_precipitation_rate",
        "long_name": "upper edge of the precipitation-rate bin",
    },
}


def stored_attrs(name: str, attrs: dict[str, Any], cell_methods: str) -> dict[str, Any]:
    """CF attributes of the stored variable ``name``: ``attrs``, its CF standard name where CF has one
    (:data:`STANDARD_NAMES`), the ``cell_methods`` of the observed rate it is predicted from, and
    ``units`` "1" where ``attrs`` give none (flag variables, which CF leaves without units, excepted)."""
    out = {**attrs, "cell_methods": cell_methods}
    if name in STANDARD_NAMES:
        out["standard_name"] = STANDARD_NAMES[name]
    if "units" not in out and "flag_values" not in out:
        out["units"] = "1"
    return out
