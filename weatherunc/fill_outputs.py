"""The output of :func:`weatherunc.fill`: a CF Dataset with observed pixels as point masses.

:func:`assemble` writes the observed field, the filled mean, its standard deviation, quantiles,
exceedance and bin probabilities, the epistemic share of the variance and the ``observation``
flag per pixel on the input's dims and coordinates, every variable described by CF attributes
(``standard_name``, ``long_name``, ``units``, ``grid_mapping``; CF conventions 1.11, sections 3
and 5.6, and its flag attributes, section 3.5). At an observed pixel the predictive distribution
is the point mass at the observation: mean = observed value, std 0, every quantile the observed
value, probabilities 0 or 1.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.conventions import FILLED, OBSERVED, UNFILLED, WITHHELD
from weatherunc.fill_inputs import CheckedGrid
from weatherunc.models.interface import Interpolator
from weatherunc.tiling import GridTiling
from weatherunc.version import __version__

#: The ``observation`` flag's attributes (:data:`weatherunc.conventions.OBSERVATION_FLAG_MEANINGS`): a
#: fill's pixel was filled by the model, observed, or left NaN because no observed pixel lies within
#: reach (its tile and ``tiling.halo_pixels``); ``WITHHELD`` is a batch job's (observed, hidden from
#: the model).
OBSERVATION_ATTRS = {
    "standard_name": "lwe_precipitation_rate status_flag",
    "long_name": "observation mask",
    "flag_values": np.array([FILLED, OBSERVED, UNFILLED, WITHHELD], dtype=np.int8),
    "flag_meanings": conventions.OBSERVATION_FLAG_MEANINGS,
}
#: The model outputs kept, each ``[..., y, x, extra]`` on the grid (the epistemic share where the
#: tiles' predictions have a latent and a noise variance).
PREDICTED_VARIABLES = (
    conventions.PRECIPITATION_MEAN,
    conventions.PRECIPITATION_STD,
    conventions.PRECIPITATION_QUANTILE,
    conventions.EXCEEDANCE_PROBABILITY,
    conventions.BIN_PROBABILITY,
    conventions.EPISTEMIC_SHARE,
)
RATE = {"units": conventions.PRECIPITATION_UNITS}
OUTPUT_ATTRS: dict[str, dict[str, str]] = {
    conventions.PRECIPITATION: {
        **RATE,
        "standard_name": "lwe_precipitation_rate",
        "long_name": "observed precipitation rate (NaN: unobserved)",
    },
    conventions.PRECIPITATION_MEAN: {
        **RATE,
        "standard_name": "lwe_precipitation_rate",
        "long_name": "filled precipitation rate: the observed value where observed, else the predictive mean",
        "ancillary_variables": "precipitation_std observation",
    },
    conventions.PRECIPITATION_STD: {
        **RATE,
        "standard_name": "lwe_precipitation_rate standard_error",
        "long_name": "predictive standard deviation of precipitation rate (0 where observed)",
    },
    conventions.PRECIPITATION_QUANTILE: {
        **RATE,
        "standard_name": "lwe_precipitation_rate",
        "long_name": "predictive quantiles of precipitation rate (the observed value where observed)",
    },
    # CF defines no standard name for a probability; the thresholds and bin edges carry the rate's.
    conventions.EXCEEDANCE_PROBABILITY: {
        "units": "1",
        "long_name": "P(precipitation rate > threshold) (0 or 1 where observed)",
    },
    conventions.BIN_PROBABILITY: {
        "units": "1",
        "long_name": (
            "probability of the precipitation-rate bin [bin_lower, bin_upper) (0 or 1 where observed)"
        ),
    },
    conventions.EPISTEMIC_SHARE: {
        "units": "1",
        "long_name": (
            "epistemic share of the predictive variance of the transformed rate, latent / (latent + "
            "noise), pooled over the tiles that reach a pixel (NaN where observed)"
        ),
    },
}


def assemble(
    data: xr.DataArray,
    grid: CheckedGrid,
    predicted: dict[str, np.ndarray],
    coordinates: dict[str, xr.DataArray],
    *,
    mapping: Hashable,
    name: str,
    model: Interpolator,
    tiling: GridTiling,
    shared_fit: bool = False,
) -> xr.Dataset:
    """The output Dataset: observed pixels as point masses, the model's prediction elsewhere."""
    rates = grid.rates
    observed = np.isfinite(rates)
    thresholds = coordinates[conventions.THRESHOLD].values
    lower, upper = coordinates[conventions.BIN_LOWER].values, coordinates[conventions.BIN_UPPER].values
    point = rates[..., None]
    fields = {
        conventions.PRECIPITATION: rates,
        conventions.PRECIPITATION_MEAN: np.where(observed, rates, predicted[conventions.PRECIPITATION_MEAN]),
        conventions.PRECIPITATION_STD: np.where(observed, 0.0, predicted[conventions.PRECIPITATION_STD]),
        conventions.PRECIPITATION_QUANTILE: np.where(
            observed[..., None], point, predicted[conventions.PRECIPITATION_QUANTILE]
        ),
        conventions.EXCEEDANCE_PROBABILITY: np.where(
            observed[..., None], point > thresholds, predicted[conventions.EXCEEDANCE_PROBABILITY]
        ),
        conventions.BIN_PROBABILITY: np.where(
            observed[..., None], (point >= lower) & (point < upper), predicted[conventions.BIN_PROBABILITY]
        ),
        **(
            {conventions.EPISTEMIC_SHARE: np.where(observed, np.nan, predicted[conventions.EPISTEMIC_SHARE])}
            if conventions.EPISTEMIC_SHARE in predicted
            else {}
        ),
        "observation": np.where(
            observed,
            OBSERVED,
            np.where(np.isfinite(predicted[conventions.PRECIPITATION_MEAN]), FILLED, UNFILLED),
        ).astype(np.int8),
    }
    spatial = (grid.y_dim, grid.x_dim) if grid.time_dim is None else (grid.time_dim, grid.y_dim, grid.x_dim)
    extra = {
        conventions.PRECIPITATION_QUANTILE: (conventions.QUANTILE,),
        conventions.EXCEEDANCE_PROBABILITY: (conventions.THRESHOLD,),
        conventions.BIN_PROBABILITY: (conventions.BIN,),
    }
    variables = {}
    for variable, values in fields.items():
        values = values if grid.time_dim is not None else values[0]
        attributes = OBSERVATION_ATTRS if variable == "observation" else OUTPUT_ATTRS[variable]
        variables[variable] = (
            (*spatial, *extra.get(variable, ())),
            values,
            {**attributes, "grid_mapping": str(mapping)},
        )
    variables[conventions.PRECIPITATION][2].update(source_variable=name, source_units=grid.units)
    for key in (conventions.THRESHOLD, conventions.BIN_LOWER, conventions.BIN_UPPER):
        coordinates[key] = coordinates[key].assign_attrs(standard_name="lwe_precipitation_rate")
    model_name = getattr(model, "name", type(model).__name__)
    attributes = {
        "Conventions": conventions.CF_CONVENTIONS,
        "title": f"precipitation rate filled by weatherunc ({model_name})",
        "source": (
            f"weatherunc {__version__} fill, model {model_name!r}, tiles of {tiling.tile_pixels} px, halo "
            f"{tiling.halo_pixels} px, at most {tiling.max_context} contexts, blended over "
            f"{2 * tiling.blend_pixels} px across tile edges"
            + (", one fit per frame shared by its tiles" if shared_fit else "")
        ),
        "comment": (
            "observed pixels keep their value (std 0); precipitation_std and the probabilities describe the "
            "filled pixels"
        ),
        "model": model_name,
    }
    return xr.Dataset(variables, coords=data.coords, attrs=attributes).assign_coords(coordinates)
