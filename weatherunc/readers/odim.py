"""ODIM_H5 Cartesian products (composites and images): the HDF5 format of EUMETNET OPERA and most
European weather services.

A file holds ``/what`` (``object``, nominal ``date`` and ``time``), ``/where`` (``projdef``,
``xsize``, ``ysize``, ``xscale``, ``yscale`` and the corners ``LL_lon``, ``LL_lat``, ...) and
``/datasetN/dataM/data``, a 2-D array whose first row is the northernmost, with
``quantity``, ``gain``, ``offset``, ``nodata`` and ``undetect`` in the nearest ``what`` group
(``dataM``, then ``datasetN``, then the root). Physical values are ``raw * gain + offset``;
``nodata`` (not scanned) becomes NaN; ``undetect`` (scanned, no echo) is dry: 0 for rates and
accumulations, -inf dBZ (Z = 0, so 0 mm/h through any Z-R law) for reflectivity.

Reference: Michelson et al., "EUMETNET OPERA weather radar information model for implementation
with the HDF5 file format" (ODIM_H5), version 2.4; quantities and attributes as named there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pyproj

from weatherunc.errors import InputDataError
from weatherunc.readers.base import FrameReference, GridGeometry, centres, frame_time

if TYPE_CHECKING:
    from weatherunc.catalog import CatalogEntry

#: ODIM quantities this reader serves and their catalog units (ODIM_H5 quantity names).
QUANTITY_UNITS = {
    "DBZH": "dBZ",
    "DBZV": "dBZ",
    "TH": "dBZ",
    "TV": "dBZ",
    "RATE": "mm h-1",
    "ACRR": "mm",
}
#: ``/what/object`` of the Cartesian products this reader serves.
CARTESIAN_OBJECTS = frozenset({"COMP", "IMAGE", "CVOL"})
ODIM_CONVENTIONS_PREFIX = "ODIM_H5"


def text(value: Any) -> str:
    """An HDF5 attribute as ``str`` (ODIM strings are stored as fixed-length bytes)."""
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value.tolist()
    return value.decode("ascii").rstrip("\x00") if isinstance(value, bytes) else str(value)


def is_odim(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file whose root ``Conventions`` attribute says ODIM_H5."""
    try:
        with h5py.File(path, "r") as handle:
            return text(handle.attrs.get("Conventions", "")).startswith(ODIM_CONVENTIONS_PREFIX)
    except OSError:
        return False


def attributes(handle: h5py.File, group: str) -> dict[str, Any]:
    """The attributes of ``group`` (e.g. ``"what"``, ``"dataset1/what"``), empty when it is absent."""
    return dict(handle[group].attrs) if group in handle else {}


def data_groups(handle: h5py.File) -> list[tuple[str, dict[str, Any]]]:
    """Every ``datasetN/dataM`` group in numeric order with its ``what`` attributes, each looked up
    in ``dataM/what``, then ``datasetN/what``, then ``/what``."""
    groups = []
    for dataset in sorted((name for name in handle if name.startswith("dataset")), key=_group_number):
        for data in sorted((name for name in handle[dataset] if name.startswith("data")), key=_group_number):
            what = {
                **attributes(handle, "what"),
                **attributes(handle, f"{dataset}/what"),
                **attributes(handle, f"{dataset}/{data}/what"),
            }
            groups.append((f"{dataset}/{data}", what))
    return groups


def _find_quantity(handle: h5py.File, quantity: str, path: Path) -> tuple[str, dict[str, Any]]:
    """The first ``datasetN/dataM`` holding ``quantity``, with its ``what`` attributes."""
    found: list[str] = []
    for group, what in data_groups(handle):
        name = text(what.get("quantity", ""))
        found.append(name)
        if name == quantity:
            return group, what
    raise InputDataError(
        source=path,
        variable=quantity,
        check="variable present",
        detail=f"no datasetN/dataM has quantity {quantity!r}; the file has {sorted(set(found))}",
    )


def _group_number(name: str) -> int:
    digits = name.lstrip("abcdefghijklmnopqrstuvwxyz")
    return int(digits) if digits.isdigit() else 0


def _check_cartesian(handle: h5py.File, path: Path, quantity: str) -> None:
    kind = text(attributes(handle, "what").get("object", ""))
    if kind not in CARTESIAN_OBJECTS:
        raise InputDataError(
            source=path,
            variable=quantity,
            check="Cartesian product",
            detail=f"/what/object is {kind!r}; readable: {', '.join(sorted(CARTESIAN_OBJECTS))}",
        )


def nominal_time(handle: h5py.File) -> datetime:
    """The product's nominal time from ``/what`` ``date`` (YYYYMMDD) and ``time`` (HHMMSS)."""
    what = attributes(handle, "what")
    return datetime.strptime(text(what["date"]) + text(what["time"]), "%Y%m%d%H%M%S")


def period_minutes(what: dict[str, Any]) -> float | None:
    """Minutes from ``startdate``/``starttime`` to ``enddate``/``endtime``, or ``None`` when absent
    or zero (an accumulation's period)."""
    if not all(key in what for key in ("startdate", "starttime", "enddate", "endtime")):
        return None
    start = datetime.strptime(text(what["startdate"]) + text(what["starttime"]), "%Y%m%d%H%M%S")
    end = datetime.strptime(text(what["enddate"]) + text(what["endtime"]), "%Y%m%d%H%M%S")
    minutes = (end - start).total_seconds() / 60.0
    return minutes if minutes > 0 else None


def decode(raw: np.ndarray, what: dict[str, Any], quantity: str) -> np.ndarray:
    """Physical values from stored ``raw``: ``raw * gain + offset``, ``nodata`` NaN, ``undetect``
    dry (0, or -inf dBZ for reflectivity)."""
    gain = float(np.asarray(what.get("gain", 1.0)))
    offset = float(np.asarray(what.get("offset", 0.0)))
    values = raw.astype(np.float64) * gain + offset
    dry = -np.inf if QUANTITY_UNITS.get(quantity) == "dBZ" else 0.0
    if "undetect" in what:
        values[raw == np.asarray(what["undetect"]).astype(raw.dtype)] = dry
    if "nodata" in what:
        values[raw == np.asarray(what["nodata"]).astype(raw.dtype)] = np.nan
    return values


def odim_geometry(
    handle: h5py.File, shape: tuple[int, int], path: Path
) -> tuple[np.ndarray, np.ndarray, str]:
    """Cell centres ``(x, y)`` (rows north to south) and the ``projdef`` of a Cartesian product,
    from its lower-left corner and ``xscale``/``yscale`` (metres; degrees on a longlat grid)."""
    where = attributes(handle, "where")
    missing = [key for key in ("projdef", "xscale", "yscale", "LL_lon", "LL_lat") if key not in where]
    if missing:
        raise InputDataError(
            source=path, variable="/where", check="grid described", detail=f"missing attributes {missing}"
        )
    projdef = text(where["projdef"]).strip()
    try:
        crs = pyproj.CRS.from_user_input(projdef)
    except pyproj.exceptions.CRSError as error:
        raise InputDataError(
            source=path, variable="/where/projdef", check="CRS readable", detail=str(error)
        ) from None
    longitude, latitude = float(np.asarray(where["LL_lon"])), float(np.asarray(where["LL_lat"]))
    if crs.is_geographic:
        left, bottom = longitude, latitude
    else:
        left, bottom = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(
            longitude, latitude
        )
    ny, nx = shape
    xscale, yscale = float(np.asarray(where["xscale"])), float(np.asarray(where["yscale"]))
    x = centres(left, xscale, nx)
    y = centres(bottom + yscale * ny, -yscale, ny)
    return x, y, projdef


@dataclass(frozen=True)
class OdimReader:
    """ODIM_H5 Cartesian products, one frame per file; the entry's ``variable`` is the ODIM
    ``quantity`` (``DBZH``, ``TH``, ``RATE``, ``ACRR``, ...)."""

    def _open(self, path: Path, entry: CatalogEntry) -> tuple[h5py.File, str, dict[str, Any]]:
        handle = h5py.File(path, "r")
        try:
            if not text(handle.attrs.get("Conventions", "")).startswith(ODIM_CONVENTIONS_PREFIX):
                raise InputDataError(
                    source=path,
                    variable="Conventions",
                    check="ODIM_H5 file",
                    detail=f"root Conventions is {text(handle.attrs.get('Conventions', ''))!r}",
                )
            _check_cartesian(handle, path, entry.variable)
            group, what = _find_quantity(handle, entry.variable, path)
        except Exception:
            handle.close()
            raise
        return handle, group, what

    def geometry(self, path: Path, entry: CatalogEntry) -> GridGeometry:
        """The grid from ``/where``; units from the quantity; the CRS from ``projdef``."""
        handle, group, _what = self._open(path, entry)
        with handle:
            x, y, projdef = odim_geometry(handle, handle[f"{group}/data"].shape, path)
        return GridGeometry(x=x, y=y, units=QUANTITY_UNITS.get(entry.variable), crs=projdef)

    def frames(self, path: Path, entry: CatalogEntry) -> list[FrameReference]:
        """One frame, at the nominal ``/what`` time (or the file name's, with ``time_from_filename``)."""
        if entry.time_from_filename is not None:
            return [FrameReference(path=path, index=0, time=frame_time(path, entry))]
        handle, _group, _what = self._open(path, entry)
        with handle:
            return [FrameReference(path=path, index=0, time=nominal_time(handle))]

    def read_frame(self, frame: FrameReference, entry: CatalogEntry) -> np.ndarray:
        """The decoded field ``[ny, nx]`` in the quantity's units, NaN where not scanned."""
        handle, group, what = self._open(frame.path, entry)
        with handle:
            raw = np.asarray(handle[f"{group}/data"][...])
        return decode(raw, what, entry.variable)
