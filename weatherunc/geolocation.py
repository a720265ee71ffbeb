"""Coordinate reference systems: CF grid mappings and 2-D latitude/longitude.

Reference: CF Conventions 1.10 section 5.6; ``pyproj.CRS.to_cf``.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable

import dask.array as da
import numpy as np
import pyproj
import xarray as xr

from weatherunc import conventions


def grid_mapping(crs: pyproj.CRS) -> xr.DataArray:
    """The scalar CF grid-mapping variable for ``crs`` (attributes plus ``crs_wkt``)."""
    with warnings.catch_warnings():
        # Parameters CF cannot express (e.g. a skew angle) stay exact in ``crs_wkt``.
        warnings.filterwarnings("ignore", message=".*lost in conversion to CF", category=UserWarning)
        attributes = crs.to_cf()
    attributes.setdefault("crs_wkt", crs.to_wkt())
    return xr.DataArray(np.int32(0), attrs=attributes)


def crs_of(dataset: xr.Dataset) -> pyproj.CRS:
    """The CRS stored in ``dataset``'s grid-mapping variable."""
    return pyproj.CRS.from_cf(dataset[conventions.CRS_VARIABLE].attrs)


#: The coordinate in which rioxarray keeps a DataArray's CRS (as ``crs_wkt`` / ``spatial_ref``).
RIOXARRAY_GRID_MAPPING = "spatial_ref"


def crs_from_grid_mapping(attributes: dict) -> pyproj.CRS:
    """The CRS a grid-mapping variable's attributes describe: ``crs_wkt``, GDAL's ``spatial_ref``
    (WKT) or the CF parameters (``grid_mapping_name``...); ``ValueError`` when none is there."""
    for key in ("crs_wkt", "spatial_ref"):
        if attributes.get(key):
            return pyproj.CRS.from_user_input(attributes[key])
    if "grid_mapping_name" in attributes:
        return pyproj.CRS.from_cf(attributes)
    raise ValueError(
        f"a grid mapping needs crs_wkt, spatial_ref or grid_mapping_name; it has {sorted(attributes)}"
    )


def grid_mapping_name(data: xr.DataArray) -> str | None:
    """The grid-mapping variable that ``data``'s ``grid_mapping`` attribute (or encoding, where
    xarray moves it) names; the first of the extended form ``"crs: x y ..."``."""
    named = data.attrs.get("grid_mapping") or data.encoding.get("grid_mapping")
    if not named:
        return None
    first = str(named).split()[0]
    return first.removesuffix(":")


def grid_mapping_of(data: xr.DataArray) -> tuple[pyproj.CRS, Hashable] | None:
    """``data``'s CRS and the coordinate holding it, or None.

    Read from the CF grid mapping that its ``grid_mapping`` attribute names, when that variable is
    one of ``data``'s coordinates, else from rioxarray's ``spatial_ref`` coordinate, else from the
    one scalar coordinate that describes a grid mapping (``grid_mapping_name`` or ``crs_wkt``): the
    ``grid_mapping`` attribute is lost where xarray kept it in the encoding and arithmetic dropped
    that. ``ValueError`` when the coordinate is there but holds no readable CRS.
    """
    for name in (grid_mapping_name(data), RIOXARRAY_GRID_MAPPING):
        if name is not None and name in data.coords:
            return crs_from_grid_mapping(data.coords[name].attrs), name
    described = [
        name
        for name, coordinate in data.coords.items()
        if coordinate.ndim == 0 and {"grid_mapping_name", "crs_wkt"} & set(coordinate.attrs)
    ]
    if len(described) == 1:
        return crs_from_grid_mapping(data.coords[described[0]].attrs), described[0]
    return None


def _latitude_longitude_block(x: np.ndarray, y: np.ndarray, *, wkt: str) -> np.ndarray:
    """``[2, ny, nx]`` latitude and longitude of the cell centres of one block."""
    crs = pyproj.CRS.from_wkt(wkt)
    xx, yy = np.meshgrid(x, y)
    if crs.is_geographic:
        return np.stack([yy, xx])
    transformer = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    longitude, latitude = transformer.transform(xx, yy)
    return np.stack([latitude, longitude])


def latitude_longitude(
    x: np.ndarray, y: np.ndarray, crs: pyproj.CRS, *, chunk: int = 1024
) -> tuple[da.Array, da.Array]:
    """Lazy 2-D latitude and longitude ``[ny, nx]`` (degrees) of a grid in ``crs``."""
    x_chunks = da.from_array(x, chunks=chunk)
    y_chunks = da.from_array(y, chunks=chunk)
    both = da.blockwise(
        _latitude_longitude_block,
        "cyx",
        x_chunks,
        "x",
        y_chunks,
        "y",
        new_axes={"c": 2},
        dtype=np.float64,
        wkt=crs.to_wkt(),
        concatenate=True,
    )
    return both[0], both[1]
