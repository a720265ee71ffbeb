"""CF NetCDF files: one frame per file (BoM Rainfields) or a time series in one file.

Reference: CF Conventions 1.10; decoding (``_FillValue``, ``scale_factor``) by xarray.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5netcdf
import numpy as np
import pandas as pd
import pyproj
import xarray as xr

from weatherunc import conventions
from weatherunc.errors import InputDataError
from weatherunc.geolocation import crs_from_grid_mapping, grid_mapping_name
from weatherunc.readers.base import FrameReference, GridGeometry, frame_time
from weatherunc.readers.netcdf_classic import check_classic_complete, is_classic

if TYPE_CHECKING:
    from weatherunc.catalog import CatalogEntry

_LENGTH_SCALE = {"m": 1.0, "metre": 1.0, "meter": 1.0, "km": 1000.0}
_ANGLE_UNITS = {"degrees_north", "degrees_east", "degree_north", "degree_east", "degrees", "degree"}


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def open_netcdf(path: Path) -> xr.Dataset:
    """Open with h5netcdf for NetCDF-4 (HDF5) files: h5py serialises access, so Dask
    threads may read concurrently; classic NetCDF goes through xarray's default engine,
    once its length has been checked against its header (the netCDF library reads the
    missing end of a truncated classic file as zeros)."""
    hdf5 = _is_hdf5(path)
    if not hdf5 and is_classic(path):
        check_classic_complete(path)
    engine = "h5netcdf" if hdf5 else None
    return xr.open_dataset(path, engine=engine, mask_and_scale=True, decode_times=True, cache=False)


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == _HDF5_SIGNATURE


def _has_time(dims: tuple[str, ...]) -> bool:
    return any(conventions.DIMENSION_ALIASES.get(str(dim).lower()) == conventions.TIME for dim in dims)


def _time_step(variable_dims: tuple[str, ...], index: int, path: Path, name: str) -> int | None:
    """``index`` when the variable has a time dimension (which must come first), else ``None``."""
    if not _has_time(variable_dims):
        return None
    if conventions.DIMENSION_ALIASES.get(str(variable_dims[0]).lower()) != conventions.TIME:
        raise InputDataError(
            source=path,
            variable=name,
            check="known dimensions",
            detail=f"time must be the first dimension, not in {variable_dims}",
        )
    return index


def _read_decoded(path: Path, name: str, index: int) -> xr.Variable:
    """Variable ``name`` at time step ``index`` (ignored without a time dimension), CF-decoded
    by xarray, from one opening of the file.

    NetCDF-4 files are read with h5netcdf directly: opening them through
    ``xr.open_dataset`` costs tens of milliseconds of per-variable set-up per file.
    """
    if not _is_hdf5(path):
        with open_netcdf(path) as dataset:
            variable = dataset[name].variable
            step = _time_step(tuple(str(dim) for dim in variable.dims), index, path, name)
            return (variable if step is None else variable[step]).load()
    with h5netcdf.File(path, "r") as handle:
        if name not in handle.variables:
            raise InputDataError(
                source=path,
                variable=name,
                check="variable present",
                detail=f"file has {sorted(handle.variables)}",
            )
        stored = handle.variables[name]
        dims = tuple(stored.dimensions)
        step = _time_step(dims, index, path, name)
        raw = stored[...] if step is None else stored[step]
        encoded = xr.Variable(dims if step is None else dims[1:], raw, dict(stored.attrs))
    return xr.conventions.decode_cf_variable(name, encoded)


def _variable_dims(path: Path, name: str) -> tuple[str, ...]:
    """The dimension names of ``name`` without reading data."""
    if _is_hdf5(path):
        with h5netcdf.File(path, "r") as handle:
            if name not in handle.variables:
                raise InputDataError(
                    source=path,
                    variable=name,
                    check="variable present",
                    detail=f"file has {sorted(handle.variables)}",
                )
            return tuple(handle.variables[name].dimensions)
    with open_netcdf(path) as dataset:
        return tuple(str(dim) for dim in dataset[name].dims)


def _canonical_dims(variable: xr.DataArray, path: Path, name: str) -> dict[str, str]:
    renames = {}
    for dim in variable.dims:
        canonical = conventions.DIMENSION_ALIASES.get(str(dim).lower())
        if canonical is None:
            raise InputDataError(
                source=path,
                variable=name,
                check="known dimensions",
                detail=f"unknown dimension {dim!r} in {variable.dims}",
            )
        renames[str(dim)] = canonical
    if sorted(renames.values()) not in (
        sorted([conventions.Y, conventions.X]),
        sorted([conventions.TIME, conventions.Y, conventions.X]),
    ):
        raise InputDataError(
            source=path,
            variable=name,
            check="known dimensions",
            detail=f"dimensions {variable.dims} are not (time,) y, x",
        )
    return renames


def _coordinate(dataset: xr.Dataset, dim: str, path: Path, name: str) -> np.ndarray:
    if dim not in dataset.variables:
        raise InputDataError(
            source=path,
            variable=name,
            check="coordinates present",
            detail=f"no coordinate variable for dimension {dim!r}",
        )
    coordinate = dataset[dim]
    values = np.asarray(coordinate.values, dtype=np.float64)
    units = coordinate.attrs.get("units", "m")
    if units in _ANGLE_UNITS:
        if "north" in units and np.nanmax(np.abs(values)) > 90.0:
            raise InputDataError(
                source=path,
                variable=dim,
                check="latitude within ±90",
                detail=f"latitude reaches {np.nanmax(np.abs(values)):.3f}",
            )
        scale = 1.0
    elif units in _LENGTH_SCALE:
        scale = _LENGTH_SCALE[units]
    else:
        raise InputDataError(
            source=path, variable=dim, check="coordinate units", detail=f"unknown units {units!r}"
        )
    if not np.all(np.isfinite(values)):
        raise InputDataError(
            source=path,
            variable=dim,
            check="finite coordinates",
            detail="coordinate has NaN or infinite values",
        )
    return values * scale


def file_crs(dataset: xr.Dataset, variable: xr.DataArray, path: Path, name: str) -> str | None:
    """The WKT of the CF grid mapping that ``variable`` names, or ``None`` when it names none;
    :class:`InputDataError` when the named variable is absent or describes no CRS (CF 1.10 §5.6)."""
    mapping = grid_mapping_name(variable)
    if not mapping:
        return None
    if mapping not in dataset.variables:
        raise InputDataError(
            source=path,
            variable=name,
            check="CRS present",
            detail=f"grid_mapping {mapping!r} names no variable in the file",
        )
    try:
        return crs_from_grid_mapping(dict(dataset[mapping].attrs)).to_wkt()
    except (ValueError, pyproj.exceptions.CRSError) as error:
        raise InputDataError(source=path, variable=mapping, check="CRS readable", detail=str(error)) from None


@dataclass(frozen=True)
class NetCDFReader:
    """CF NetCDF with the entry's ``variable`` on dims ``(time,) y, x`` (aliases accepted)."""

    def geometry(self, path: Path, entry: CatalogEntry) -> GridGeometry:
        """Coordinates from the file, scaled to metres; units as the file declares them."""
        with open_netcdf(path) as dataset:
            if entry.variable not in dataset:
                raise InputDataError(
                    source=path,
                    variable=entry.variable,
                    check="variable present",
                    detail=f"file has {sorted(dataset.data_vars)}",
                )
            variable = dataset[entry.variable]
            renames = _canonical_dims(variable, path, entry.variable)
            by_canonical = {canonical: original for original, canonical in renames.items()}
            x = _coordinate(dataset, by_canonical[conventions.X], path, entry.variable)
            y = _coordinate(dataset, by_canonical[conventions.Y], path, entry.variable)
            units = variable.attrs.get("units")
            crs = file_crs(dataset, variable, path, entry.variable)
        return GridGeometry(x=x, y=y, units=units, crs=crs)

    def frames(self, path: Path, entry: CatalogEntry) -> list[FrameReference]:
        """Every time step of the file; a one-frame file is timed by its name or ``valid_time``."""
        if not _has_time(_variable_dims(path, entry.variable)) and entry.time_from_filename is not None:
            return [FrameReference(path=path, index=0, time=frame_time(path, entry))]
        with open_netcdf(path) as dataset:
            variable = dataset[entry.variable]
            renames = _canonical_dims(variable, path, entry.variable)
            time_dims = [dim for dim, canonical in renames.items() if canonical == conventions.TIME]
            if time_dims:
                if time_dims[0] not in dataset.variables:
                    raise InputDataError(
                        source=path,
                        variable=entry.variable,
                        check="coordinates present",
                        detail="no time coordinate",
                    )
                times = pd.to_datetime(dataset[time_dims[0]].values)
                return [
                    FrameReference(path=path, index=index, time=time.to_pydatetime())
                    for index, time in enumerate(times)
                ]
            if "valid_time" in dataset.variables:
                return [
                    FrameReference(
                        path=path, index=0, time=pd.Timestamp(dataset["valid_time"].values).to_pydatetime()
                    )
                ]
        raise InputDataError(
            source=path,
            variable=entry.variable,
            check="coordinates present",
            detail="no time coordinate, valid_time or time_from_filename",
        )

    def read_frame(self, frame: FrameReference, entry: CatalogEntry) -> np.ndarray:
        """The decoded field ``[ny, nx]``; NaN where the file's ``_FillValue`` was."""
        variable = _read_decoded(frame.path, entry.variable, frame.index)
        canonical = tuple(
            conventions.DIMENSION_ALIASES.get(str(dim).lower(), str(dim)) for dim in variable.dims
        )
        if sorted(canonical) != sorted((conventions.Y, conventions.X)):
            raise InputDataError(
                source=frame.path,
                variable=entry.variable,
                check="known dimensions",
                detail=f"dimensions {variable.dims} are not y, x",
            )
        variable = xr.Variable(canonical, variable.data)
        return np.asarray(variable.transpose(conventions.Y, conventions.X).values, dtype=np.float64)
