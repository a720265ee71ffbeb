"""The checks and the layout of :func:`weatherunc.fill`'s input: its dims, units and CRS.

:func:`checked_grid` reads a DataArray of precipitation rate ``[y, x]``, ``[lat, lon]`` or
``[latitude, longitude]``, optionally after a leading ``time``, checks every frame
(:mod:`weatherunc.validation`) and converts its rates to mm/h (:mod:`weatherunc.units`);
:func:`resolve_crs` finds its CRS: the ``crs`` argument; the CF grid mapping that the data's
``grid_mapping`` attribute names (a coordinate with ``crs_wkt``, ``spatial_ref`` or CF parameters);
rioxarray's ``spatial_ref`` coordinate; the one scalar coordinate with CF grid-mapping parameters
(after arithmetic, which drops the encoding where xarray keeps ``grid_mapping``); EPSG:4326 for
``(lat, lon)`` or ``(latitude, longitude)`` dims (CF conventions 1.11, section 5.6, "Horizontal
coordinate reference systems, grid mappings and projections"). Each failed check raises
:class:`weatherunc.InputDataError` naming the variable and the check.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import pyproj
import xarray as xr

from weatherunc import conventions, validation
from weatherunc.errors import InputDataError
from weatherunc.geolocation import grid_mapping_name, grid_mapping_of
from weatherunc.units import rate_factor_to_mm_per_hour

SOURCE = "weatherunc.fill"
TIME = conventions.TIME
#: Spatial dims accepted, as (y, x) pairs; the geographic ones imply EPSG:4326 without a CRS.
PROJECTED_DIMS = (conventions.Y, conventions.X)
GEOGRAPHIC_DIMS = (("lat", "lon"), (conventions.LATITUDE, conventions.LONGITUDE))
GEOGRAPHIC_CRS = "EPSG:4326"


@dataclass(frozen=True)
class CheckedGrid:
    """The checked layout of the input: its dims, its declared units and the rates ``[frames, ny, nx]`` in
    mm/h."""

    time_dim: Hashable | None
    y_dim: Hashable
    x_dim: Hashable
    units: str
    rates: np.ndarray


def variable_name(data: object) -> str:
    """The name of the DataArray ``data`` for messages (``"data"`` without one); ``TypeError`` for
    anything but a DataArray."""
    if not isinstance(data, xr.DataArray):
        hint = ": pass one variable, e.g. dataset['precipitation']" if isinstance(data, xr.Dataset) else ""
        raise TypeError(
            f"{SOURCE}: data must be an xarray.DataArray (check 'DataArray input'), got "
            f"{type(data).__name__}{hint}"
        )
    return str(data.name) if data.name is not None else "data"


def failure(name: str, check: str, detail: str) -> InputDataError:
    """The error of a failed input check of variable ``name``."""
    return InputDataError(source=SOURCE, variable=name, check=check, detail=detail)


def checked_grid(data: xr.DataArray, name: str, units: str | None) -> CheckedGrid:
    """The dims and the rates in mm/h of ``data``, every frame checked."""
    dims = data.dims
    time_dim = TIME if len(dims) == 3 and dims[0] == TIME else None
    spatial = dims[1:] if time_dim is not None else dims
    if spatial not in (PROJECTED_DIMS, *GEOGRAPHIC_DIMS):
        raise failure(
            name,
            "dimensions",
            f"dims {dims}; expected ([time,] y, x), ([time,] lat, lon) or ([time,] latitude, longitude)",
        )
    y_dim, x_dim = spatial
    missing = [str(dim) for dim in spatial if dim not in data.coords]
    if missing:
        raise failure(name, "coordinates present", f"no coordinate values for {missing}")
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise failure(name, "numeric values", f"dtype {data.dtype}")
    attribute = data.attrs.get("units")
    if units is None and attribute is None:
        raise failure(
            name, "units present", "no units attribute; pass units='mm h-1' if the values are rates in mm/h"
        )
    if (
        units is not None
        and attribute is not None
        and " ".join(str(units).split()) != " ".join(str(attribute).split())
    ):
        raise failure(name, "units agree", f"units={units!r} but the units attribute says {attribute!r}")
    declared = units if units is not None else str(attribute)
    try:
        factor = rate_factor_to_mm_per_hour(declared)
    except ValueError as error:
        raise failure(name, "units convertible to mm/h", str(error)) from error
    rates = np.asarray(data.values, dtype=np.float64) * factor
    rates = rates if time_dim is not None else rates[None]
    times = (
        np.atleast_1d(data[TIME].values)
        if TIME in data.coords and data[TIME].size == len(rates)
        else [None] * len(rates)
    )
    for rate, time in zip(rates, times):
        validation.check_frame(
            rate,
            source=SOURCE,
            variable=name,
            time=None if time is None else str(time),
            negative_hint="; where these are rounding noise (of regridding, say), clip them first, e.g. "
            "data.clip(min=0)",
        )
    if np.isfinite(rates).all():
        raise failure(
            name, "unobserved pixels present", "no NaN pixel, nothing to fill; unobserved pixels must be NaN"
        )
    return CheckedGrid(time_dim, y_dim, x_dim, declared, rates)


def resolve_crs(
    data: xr.DataArray, grid: CheckedGrid, name: str, crs: pyproj.CRS | str | int | None
) -> tuple[pyproj.CRS, Hashable | None]:
    """The CRS and the name of the input coordinate holding it (None: add a ``crs`` grid mapping)."""
    if crs is not None:
        try:
            return pyproj.CRS.from_user_input(crs), None
        except pyproj.exceptions.CRSError as error:
            raise failure(name, "crs readable", f"crs={crs!r}: {error}") from error
    try:
        found = grid_mapping_of(data)
    except (ValueError, pyproj.exceptions.CRSError) as error:
        raise failure(name, "grid mapping readable", f"{error}; pass crs= instead") from error
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
    raise failure(
        name,
        "crs known",
        "no crs argument, CF grid mapping coordinate or spatial_ref coordinate, and dims are not lat/lon: "
        f"pass crs=, e.g. crs='EPSG:3035'{dangling}",
    )
