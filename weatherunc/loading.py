"""Open a catalog entry as a lazy, Dask-chunked CF dataset of precipitation rate [mm/h].

One path for data: catalog entry -> reader (native units) -> conversion to mm/h ->
validation -> ``xr.Dataset`` with ``precipitation(time, y, x)`` (grids) or
``precipitation(station)`` (station sets), a CF grid mapping and 2-D latitude/longitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pyproj
import xarray as xr

from weatherunc import conventions
from weatherunc.catalog import Catalog, CatalogEntry
from weatherunc.errors import InputDataError
from weatherunc.geolocation import grid_mapping, latitude_longitude
from weatherunc.readers import FrameReference, GridGeometry, get_reader
from weatherunc.units import ZRRelation, to_rate_mm_per_hour
from weatherunc.validation import check_fill_values, check_frame, check_grid, check_times, check_units


def _unreadable(path: Path, entry: CatalogEntry, error: Exception) -> InputDataError:
    return InputDataError(
        source=path, variable=entry.variable, check="readable file", detail=f"{type(error).__name__}: {error}"
    )


@dataclass(frozen=True)
class GridSource:
    """Every frame of one gridded catalog entry, with the grid they share. Picklable.

    ``load_frame(i)`` is the single place where a frame is read, converted to mm/h and
    checked; the lazy dataset and the zarr ingest both call it.
    """

    entry: CatalogEntry
    frames: tuple[FrameReference, ...]
    geometry: GridGeometry

    @classmethod
    def from_catalog(cls, catalog: Catalog, name: str) -> GridSource:
        """Resolve files, read the grid of the first, list and check every frame's time."""
        entry = catalog.get(name)
        if entry.kind != "grid":
            raise ValueError(f"catalog entry {name!r} is a {entry.kind} set, not a grid")
        reader = get_reader(entry.reader, "grid")
        files = catalog.resolve_files(entry)
        try:
            geometry = reader.geometry(files[0], entry)
        except InputDataError:
            raise
        except Exception as error:  # noqa: BLE001 - any decoder failure is an unreadable file
            raise _unreadable(files[0], entry, error) from error
        check_units(geometry.units, entry.units, source=files[0], variable=entry.variable)
        if entry.crs is None and geometry.crs is None:
            raise InputDataError(
                source=files[0],
                variable=entry.variable,
                check="CRS present",
                detail="the file carries no grid mapping: set crs in the catalog entry",
            )
        check_grid(
            geometry.x,
            geometry.y,
            pyproj.CRS.from_user_input(entry.crs or geometry.crs),
            source=files[0],
        )
        frames: list[FrameReference] = []
        for path in files:
            try:
                frames.extend(reader.frames(path, entry))
            except InputDataError:
                raise
            except Exception as error:  # noqa: BLE001
                raise _unreadable(path, entry, error) from error
        if len(files) > 1:  # one frame per file: order by time, then require uniqueness
            frames.sort(key=lambda frame: frame.time)
        check_times(
            [frame.time for frame in frames],
            source=files[0] if len(files) == 1 else catalog.root_of(entry) / entry.files,
            variable="time",
        )
        return cls(entry=entry, frames=tuple(frames), geometry=geometry)

    @property
    def crs(self) -> pyproj.CRS:
        """The entry's coordinate reference system, else the one its files carry."""
        return pyproj.CRS.from_user_input(self.entry.crs or self.geometry.crs)

    @property
    def times(self) -> np.ndarray:
        """``[time]`` valid times as ``datetime64[ns]``."""
        return np.array([frame.time for frame in self.frames], dtype="datetime64[ns]")

    def load_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as ``[ny, nx]`` float32 mm/h, NaN unobserved, checked."""
        frame = self.frames[index]
        entry = self.entry
        reader = get_reader(entry.reader, "grid")
        try:
            native = reader.read_frame(frame, entry)
        except InputDataError:
            raise
        except Exception as error:  # noqa: BLE001
            raise _unreadable(frame.path, entry, error) from error
        if native.shape != self.geometry.shape:
            raise InputDataError(
                source=frame.path,
                variable=entry.variable,
                check="grid shape",
                detail=f"shape {native.shape}, expected {self.geometry.shape}",
            )
        check_fill_values(native, source=frame.path, variable=entry.variable, time=frame.time)
        if entry.negative_tolerance > 0:
            native = np.where((native < 0) & (native >= -entry.negative_tolerance), 0.0, native)
        zr = ZRRelation(entry.zr_relation.a, entry.zr_relation.b) if entry.zr_relation else None
        rate = to_rate_mm_per_hour(
            native,
            units=entry.units,
            accumulation_minutes=entry.accumulation_minutes,
            zr_relation=zr,
            no_echo_dbz=entry.no_echo_dbz,
        )
        check_frame(rate, source=frame.path, variable=entry.variable, time=frame.time)
        return rate.astype(np.float32)

    def empty_dataset(self) -> xr.Dataset:
        """The dataset's coordinates, CRS and attributes, without ``precipitation``."""
        x_attrs, y_attrs = (
            (conventions.GEOGRAPHIC_X_ATTRS, conventions.GEOGRAPHIC_Y_ATTRS)
            if self.crs.is_geographic
            else (conventions.PROJECTED_X_ATTRS, conventions.PROJECTED_Y_ATTRS)
        )
        latitude, longitude = latitude_longitude(self.geometry.x, self.geometry.y, self.crs)
        dims = (conventions.Y, conventions.X)
        dataset = xr.Dataset(
            coords={
                conventions.TIME: (conventions.TIME, self.times, conventions.TIME_ATTRS),
                conventions.Y: (conventions.Y, self.geometry.y, y_attrs),
                conventions.X: (conventions.X, self.geometry.x, x_attrs),
                conventions.LATITUDE: (dims, latitude, conventions.LATITUDE_ATTRS),
                conventions.LONGITUDE: (dims, longitude, conventions.LONGITUDE_ATTRS),
            },
            attrs=dataset_attributes(self.entry),
        )
        dataset[conventions.CRS_VARIABLE] = grid_mapping(self.crs)
        return dataset

    def to_dataset(self) -> xr.Dataset:
        """Lazy dataset, one Dask chunk per frame ``(1, ny, nx)``."""
        ny, nx = self.geometry.shape
        frames = [
            da.from_delayed(
                dask.delayed(self.load_frame, pure=True)(
                    index, dask_key_name=f"load-{self.entry.name}-{index}"
                ),
                shape=(ny, nx),
                dtype=np.float32,
            )
            for index in range(len(self.frames))
        ]
        data = da.stack(frames)  # [time, y, x]
        dataset = self.empty_dataset()
        attrs = dict(
            conventions.PRECIPITATION_ATTRS,
            cell_methods=cell_methods(self.entry),
            source_variable=self.entry.variable,
            source_units=self.entry.units,
        )
        if self.entry.negative_tolerance > 0:
            attrs["comment"] = (
                f"source values in [-{self.entry.negative_tolerance:g}, 0) {self.entry.units} were set to 0"
            )
        dataset[conventions.PRECIPITATION] = ((conventions.TIME, conventions.Y, conventions.X), data, attrs)
        return dataset


def cell_methods(entry: CatalogEntry) -> str:
    """CF ``cell_methods`` for the rate derived from ``entry``."""
    if entry.accumulation_minutes:
        return f"time: mean (interval: {entry.accumulation_minutes:g} minutes)"
    return "time: point"


def dataset_attributes(entry: CatalogEntry) -> dict[str, str]:
    """Global CF attributes: provenance, licence and attribution of the source."""
    attributes = {
        "Conventions": conventions.CF_CONVENTIONS,
        "title": entry.description,
        "source": (
            f"weatherunc catalog entry {entry.name!r} (reader {entry.reader}, variable {entry.variable}, "
            f"native units {entry.units})"
        ),
        "weatherunc_catalog_entry": entry.name,
    }
    if entry.licence is not None:
        attributes["licence"] = entry.licence
    if entry.attribution is not None:
        attributes["attribution"] = entry.attribution
    if entry.zr_relation is not None:
        attributes["zr_relation"] = (
            f"Z = {entry.zr_relation.a:g} R^{entry.zr_relation.b:g} ({entry.zr_relation.reference})"
        )
    return attributes


def open_stations(catalog: Catalog, name: str) -> xr.Dataset:
    """A station set as ``precipitation(station)`` [mm/h] with x/y and covariates."""
    entry = catalog.get(name)
    reader = get_reader(entry.reader, "stations")
    files = catalog.resolve_files(entry)
    if len(files) != 1:
        raise InputDataError(
            source=catalog.root_of(entry) / entry.files,
            variable=entry.variable,
            check="one station file",
            detail=f"{len(files)} files match",
        )
    table = reader.read_stations(files[0], entry)
    check_fill_values(table.values, source=files[0], variable=entry.variable, time="whole set")
    rate = to_rate_mm_per_hour(
        table.values, units=entry.units, accumulation_minutes=entry.accumulation_minutes
    )
    check_frame(rate, source=files[0], variable=entry.variable, time="whole set")
    crs = pyproj.CRS.from_user_input(entry.crs)
    check_grid(
        np.sort(np.unique(table.x)),
        np.sort(np.unique(table.y)),
        crs,
        source=files[0],
    )
    station = conventions.STATION
    coords = {
        station: (station, table.identifier, {"long_name": "station identifier"}),
        conventions.X: (
            station,
            table.x,
            conventions.PROJECTED_X_ATTRS if not crs.is_geographic else conventions.GEOGRAPHIC_X_ATTRS,
        ),
        conventions.Y: (
            station,
            table.y,
            conventions.PROJECTED_Y_ATTRS if not crs.is_geographic else conventions.GEOGRAPHIC_Y_ATTRS,
        ),
    }
    for covariate, values in table.covariates.items():
        coords[covariate] = (
            station,
            values,
            {"long_name": covariate.replace("_", " "), "units": "m" if covariate.endswith("_m") else "1"},
        )
    attrs = dict(
        conventions.PRECIPITATION_ATTRS,
        cell_methods=cell_methods(entry),
        source_variable=entry.variable,
        source_units=entry.units,
    )
    dataset = xr.Dataset(
        {conventions.PRECIPITATION: (station, rate.astype(np.float32), attrs)},
        coords=coords,
        attrs=dataset_attributes(entry),
    )
    dataset[conventions.CRS_VARIABLE] = grid_mapping(crs)
    return dataset.chunk()


def open_dataset(
    name: str,
    *,
    catalog_dirs: list[Path] | None = None,
    data_dir: Path | None = None,
    catalog: Catalog | None = None,
) -> xr.Dataset:
    """Open catalog entry ``name`` lazily as a CF dataset of precipitation rate [mm/h].

    Grids: ``precipitation(time, y, x)``, chunks ``(1, ny, nx)``; values are read and
    checked when computed. Station sets: ``precipitation(station)``.
    """
    catalog = catalog or Catalog.load(catalog_dirs, data_root_dir=data_dir)
    if catalog.get(name).kind == "stations":
        return open_stations(catalog, name)
    return GridSource.from_catalog(catalog, name).to_dataset()
