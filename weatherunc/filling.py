"""One call to fill the unobserved pixels of a scientist's own precipitation map.

:func:`fill` takes an ``xr.DataArray`` of precipitation rate with NaN where nothing was observed,
dims ``(y, x)``, ``(lat, lon)`` or ``(latitude, longitude)``, optionally after a leading ``time``,
and returns a CF ``xr.Dataset`` with the observed field, the filled mean, its standard deviation,
quantiles, exceedance and bin probabilities, and an ``observation`` flag per pixel. Each frame is
predicted tile by tile, only at its unobserved pixels, each tile reaching ``tiling.blend_pixels``
into its neighbours and blended with them so that the map has no seams
(:func:`weatherunc.blending.predict_blended`).

Observed pixels keep their value: there the predictive distribution is the point mass at the
observation (mean = observed value, std 0, every quantile the observed value, probabilities 0 or 1).
The output is in mm/h whatever the input's rate units, on the input's coordinates and CRS.

The CRS is, in order: the ``crs`` argument; the CF grid mapping that the data's ``grid_mapping``
attribute names (a coordinate with ``crs_wkt``, ``spatial_ref`` or CF parameters); rioxarray's
``spatial_ref`` coordinate; EPSG:4326 for ``(lat, lon)`` or ``(latitude, longitude)`` dims.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import pyproj
import xarray as xr
from tqdm import tqdm

from weatherunc import conventions, validation
from weatherunc.blending import predict_blended
from weatherunc.errors import InputDataError
from weatherunc.geolocation import grid_mapping, grid_mapping_name, grid_mapping_of
from weatherunc.gridding import GridTiling
from weatherunc.models.registry import MODELS, Interpolator, get_model
from weatherunc.units import rate_factor_to_mm_per_hour
from weatherunc.version import __version__

SOURCE = "weatherunc.fill"
TIME = conventions.TIME
#: Spatial dims accepted, as (y, x) pairs; the geographic ones imply EPSG:4326 without a CRS.
PROJECTED_DIMS = (conventions.Y, conventions.X)
#: How far the default tiling's tiles reach into their neighbours to be blended [pixels].
DEFAULT_BLEND_PIXELS = 16
GEOGRAPHIC_DIMS = (("lat", "lon"), (conventions.LATITUDE, conventions.LONGITUDE))
GEOGRAPHIC_CRS = "EPSG:4326"

#: ``observation`` flags: the pixel was filled by the model, observed, or left NaN because no
#: observed pixel lies within reach (its tile and ``tiling.halo_pixels``).
FILLED, OBSERVED, UNFILLED = 0, 1, 2
OBSERVATION_ATTRS = {
    "standard_name": "lwe_precipitation_rate status_flag",
    "long_name": "observation mask",
    "flag_values": np.array([FILLED, OBSERVED, UNFILLED], dtype=np.int8),
    "flag_meanings": "filled observed unfilled",
}
#: The model outputs kept, each ``[..., y, x, extra]`` on the grid.
PREDICTED_VARIABLES = (
    conventions.PRECIPITATION_MEAN,
    conventions.PRECIPITATION_STD,
    conventions.PRECIPITATION_QUANTILE,
    conventions.EXCEEDANCE_PROBABILITY,
    conventions.BIN_PROBABILITY,
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
}


@dataclass(frozen=True)
class _Grid:
    """The checked layout of the input: its dims, its declared units and the rates ``[frames, ny, nx]`` in
    mm/h."""

    time_dim: Hashable | None
    y_dim: Hashable
    x_dim: Hashable
    units: str
    rates: np.ndarray


def fill(
    data: xr.DataArray,
    *,
    model: str | Interpolator = "gp",
    crs: pyproj.CRS | str | int | None = None,
    tiling: GridTiling | None = None,
    units: str | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Fill the NaN pixels of ``data`` and say how sure each filled value is.

    Parameters
    ----------
    data: precipitation rate ``[y, x]``, ``[lat, lon]`` or ``[latitude, longitude]``, optionally
        ``[time, ...]`` (each time filled on its own), NaN where unobserved, with a ``units``
        attribute convertible to mm/h (:data:`weatherunc.conventions.RATE_UNIT_FACTORS`).
    model: a registered model name (:func:`weatherunc.models.registry.get_model`) or a model instance.
    crs: the grid's CRS, anything ``pyproj.CRS.from_user_input`` reads (``"EPSG:3035"``); by default
        the data's CF grid mapping, rioxarray's ``spatial_ref``, or EPSG:4326 for lat/lon dims.
    tiling: tile size, halo, context cap and blending (:class:`weatherunc.gridding.GridTiling`; its
        ``targets`` must be ``"unobserved"``); by default 64-pixel tiles blended over 32 pixels
        across each edge, or one tile for a model that sees the whole frame (the ConvNP).
    units: the data's units when it has no ``units`` attribute (e.g. ``"mm h-1"``).
    progress: show progress bars over frames and tiles.

    Returns
    -------
    A Dataset on ``data``'s coordinates (and dims), rates in mm/h: ``precipitation`` (observed,
    NaN unobserved), ``precipitation_mean`` and ``precipitation_std`` ``[..., y, x]``,
    ``precipitation_quantile`` ``[..., y, x, quantile]``, ``exceedance_probability``
    ``[..., y, x, threshold]``, ``bin_probability`` ``[..., y, x, bin]`` and ``observation``
    (0 filled, 1 observed, 2 unfilled) ``[..., y, x]``, with the CRS as grid mapping. At observed
    pixels the mean is the observation, the std 0 and every quantile the observation.

    Raises
    ------
    TypeError: ``data`` is not a DataArray, or ``model`` is neither a name nor a model.
    ValueError (:class:`weatherunc.InputDataError` for the data): wrong dims, missing coordinates,
    missing or unknown units, negative, infinite, implausible or all-NaN values, nothing to fill,
    or no CRS to be found.
    """
    name = _variable_name(data)
    grid = _checked_grid(data, name, units)
    resolved, mapping = _resolve_crs(data, grid, name, crs)
    validation.check_grid(
        data[grid.x_dim].values,
        data[grid.y_dim].values,
        resolved,
        source=f"{SOURCE} (coordinates of {name!r})",
        variable=name,
    )
    interpolator = _interpolator(model)
    tiling = _checked_tiling(tiling, interpolator, data.shape)
    predicted, coordinates = _predict(interpolator, grid, data, resolved, tiling, progress)
    if mapping is None:
        mapping = conventions.CRS_VARIABLE
        coordinates[mapping] = grid_mapping(resolved)
    filled = _assemble(
        data, grid, predicted, coordinates, mapping=mapping, name=name, model=interpolator, tiling=tiling
    )
    unfilled = int((filled["observation"] == UNFILLED).sum())
    if unfilled:
        warnings.warn(
            f"{SOURCE}: {unfilled} unobserved pixels of {name!r} have no observed pixel within reach and "
            "stay NaN "
            f"(observation == {UNFILLED}); a larger tiling.halo_pixels reaches further",
            UserWarning,
            stacklevel=2,
        )
    return filled


def _variable_name(data: object) -> str:
    if not isinstance(data, xr.DataArray):
        hint = ": pass one variable, e.g. dataset['precipitation']" if isinstance(data, xr.Dataset) else ""
        raise TypeError(
            f"{SOURCE}: data must be an xarray.DataArray (check 'DataArray input'), got "
            f"{type(data).__name__}{hint}"
        )
    return str(data.name) if data.name is not None else "data"


def _failure(name: str, check: str, detail: str) -> InputDataError:
    return InputDataError(source=SOURCE, variable=name, check=check, detail=detail)


def _checked_grid(data: xr.DataArray, name: str, units: str | None) -> _Grid:
    """The dims and the rates in mm/h of ``data``, every frame checked."""
    dims = data.dims
    time_dim = TIME if len(dims) == 3 and dims[0] == TIME else None
    spatial = dims[1:] if time_dim is not None else dims
    if spatial not in (PROJECTED_DIMS, *GEOGRAPHIC_DIMS):
        raise _failure(
            name,
            "dimensions",
            f"dims {dims}; expected ([time,] y, x), ([time,] lat, lon) or ([time,] latitude, longitude)",
        )
    y_dim, x_dim = spatial
    missing = [str(dim) for dim in spatial if dim not in data.coords]
    if missing:
        raise _failure(name, "coordinates present", f"no coordinate values for {missing}")
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise _failure(name, "numeric values", f"dtype {data.dtype}")
    attribute = data.attrs.get("units")
    if units is None and attribute is None:
        raise _failure(
            name, "units present", "no units attribute; pass units='mm h-1' if the values are rates in mm/h"
        )
    if (
        units is not None
        and attribute is not None
        and " ".join(str(units).split()) != " ".join(str(attribute).split())
    ):
        raise _failure(name, "units agree", f"units={units!r} but the units attribute says {attribute!r}")
    declared = units if units is not None else str(attribute)
    try:
        factor = rate_factor_to_mm_per_hour(declared)
    except ValueError as error:
        raise _failure(name, "units convertible to mm/h", str(error)) from error
    rates = np.asarray(data.values, dtype=np.float64) * factor
    rates = rates if time_dim is not None else rates[None]
    times = (
        np.atleast_1d(data[TIME].values)
        if TIME in data.coords and data[TIME].size == len(rates)
        else ["n/a"] * len(rates)
    )
    for rate, time in zip(rates, times):
        validation.check_frame(rate, source=SOURCE, variable=name, time=str(time))
    if np.isfinite(rates).all():
        raise _failure(
            name, "unobserved pixels present", "no NaN pixel, nothing to fill; unobserved pixels must be NaN"
        )
    return _Grid(time_dim, y_dim, x_dim, declared, rates)


def _resolve_crs(
    data: xr.DataArray, grid: _Grid, name: str, crs: pyproj.CRS | str | int | None
) -> tuple[pyproj.CRS, Hashable | None]:
    """The CRS and the name of the input coordinate holding it (None: add a ``crs`` grid mapping)."""
    if crs is not None:
        try:
            return pyproj.CRS.from_user_input(crs), None
        except pyproj.exceptions.CRSError as error:
            raise _failure(name, "crs readable", f"crs={crs!r}: {error}") from error
    try:
        found = grid_mapping_of(data)
    except (ValueError, pyproj.exceptions.CRSError) as error:
        raise _failure(name, "grid mapping readable", f"{error}; pass crs= instead") from error
    if found is not None:
        return found
    if (grid.y_dim, grid.x_dim) in GEOGRAPHIC_DIMS:
        return pyproj.CRS.from_user_input(GEOGRAPHIC_CRS), None
    named = grid_mapping_name(data)
    dangling = (
        f"; its grid_mapping attribute names {named!r}, which is not one of its coordinates (assign it, "
        f"e.g. data.assign_coords({named}=dataset[{named!r}]))"
        if named
        else ""
    )
    raise _failure(
        name,
        "crs known",
        "no crs argument, CF grid mapping coordinate or spatial_ref coordinate, and dims are not lat/lon: "
        f"pass crs=, e.g. crs='EPSG:3035'{dangling}",
    )


def _interpolator(model: str | Interpolator) -> Interpolator:
    if isinstance(model, str):
        return get_model(model)
    if not callable(getattr(model, "predict", None)):
        raise TypeError(
            f"{SOURCE}: model must be a registered name ({', '.join(sorted(MODELS))}) or have predict(task) "
            f"(check 'model'), got {type(model).__name__}"
        )
    return model


def _checked_tiling(tiling: GridTiling | None, model: Interpolator, shape: tuple[int, ...]) -> GridTiling:
    if tiling is None and getattr(model, "whole_frame", False):  # a model that sees the whole frame at once
        tiling = GridTiling(tile_pixels=max(shape[-2:]), halo_pixels=0, max_context=int(np.prod(shape[-2:])))
    tiling = GridTiling(blend_pixels=DEFAULT_BLEND_PIXELS) if tiling is None else tiling
    if tiling.targets != "unobserved":
        raise ValueError(
            f"{SOURCE}: tiling.targets must be 'unobserved' (check 'tiling'): observed pixels keep their "
            f"value, got {tiling.targets!r}"
        )
    return tiling


def _predict(
    model: Interpolator, grid: _Grid, data: xr.DataArray, crs: pyproj.CRS, tiling: GridTiling, progress: bool
) -> tuple[dict[str, np.ndarray], dict[str, xr.DataArray]]:
    """The model's outputs ``[frames, ny, nx, extra]`` at unobserved pixels (NaN elsewhere) and
    the coordinates of their extra dims (quantile, threshold, bin)."""
    axes = {conventions.Y: data[grid.y_dim].values, conventions.X: data[grid.x_dim].values}
    frames, ny, nx = grid.rates.shape
    predicted: dict[str, np.ndarray] = {}
    coordinates: dict[str, xr.DataArray] = {}
    for number in tqdm(range(frames), desc="frames", disable=not progress or frames == 1):
        if np.isfinite(grid.rates[number]).all():
            continue
        frame = xr.DataArray(grid.rates[number], dims=PROJECTED_DIMS, coords=axes)
        blended = predict_blended(model, frame, crs=crs, tiling=tiling, progress=progress)
        if blended is None:
            continue
        outputs, coordinates = blended
        for variable in PREDICTED_VARIABLES:
            if variable not in predicted:
                predicted[variable] = np.full((frames, ny, nx, *outputs[variable].shape[2:]), np.nan)
            predicted[variable][number] = outputs[variable]
    if not predicted:
        raise ValueError(
            f"{SOURCE}: nothing could be filled (check 'observed pixels within reach'): no unobserved pixel "
            "lies within "
            f"tiling.halo_pixels={tiling.halo_pixels} of its tile from an observed one"
        )
    return predicted, coordinates


def _assemble(
    data: xr.DataArray,
    grid: _Grid,
    predicted: dict[str, np.ndarray],
    coordinates: dict[str, xr.DataArray],
    *,
    mapping: Hashable,
    name: str,
    model: Interpolator,
    tiling: GridTiling,
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
        ),
        "comment": (
            "observed pixels keep their value (std 0); precipitation_std and the probabilities describe the "
            "filled pixels"
        ),
        "model": model_name,
    }
    return xr.Dataset(variables, coords=data.coords, attrs=attributes).assign_coords(coordinates)
