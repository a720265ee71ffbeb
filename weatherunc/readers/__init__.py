"""Readers registered by name; a catalog entry's ``reader`` picks one.

Three kinds of name are valid: the readers built in (:data:`GRID_READERS`,
:data:`STATION_READERS`); ``pysteps:import_NAME``, any importer of ``pysteps.io.importers``
(called with the entry's ``reader_options`` as keywords, one frame per file); and readers other
packages register under the entry-point group ``weatherunc.readers`` (an object with ``geometry``,
``frames`` and ``read_frame`` for grids, or ``read_stations`` for station sets, or a class
building one without arguments). ``get_reader(name)`` follows the registry pattern of
``pysteps.io.interface.get_method``.

Reference: Python Packaging User Guide, "Entry points specification".
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any, Literal

from weatherunc.readers.base import FrameReference, GridGeometry, GridReader
from weatherunc.readers.netcdf import NetCDFReader
from weatherunc.readers.odim import OdimReader
from weatherunc.readers.pysteps_formats import PystepsReader
from weatherunc.readers.stations import CSVStationReader, StationTable

GRID_READERS: dict[str, GridReader] = {
    "knmi_hdf5": PystepsReader("import_knmi_hdf5"),
    "mch_gif": PystepsReader("import_mch_gif"),
    "fmi_pgm": PystepsReader("import_fmi_pgm"),
    "mrms_grib": PystepsReader("import_mrms_grib"),
    "cf_netcdf": NetCDFReader(),
    "odim_hdf5": OdimReader(),
}
STATION_READERS: dict[str, CSVStationReader] = {"station_csv": CSVStationReader()}
#: ``reader: pysteps:import_NAME`` uses that pysteps importer.
PYSTEPS_PREFIX = "pysteps:"
#: The entry-point group under which other packages register readers.
ENTRY_POINT_GROUP = "weatherunc.readers"


def pysteps_reader(name: str) -> PystepsReader:
    """The reader for ``pysteps:import_NAME``; ``ValueError`` lists pysteps' importers."""
    import pysteps.io.importers as importers

    importer = name.removeprefix(PYSTEPS_PREFIX)
    if not importer.startswith("import_") or not callable(getattr(importers, importer, None)):
        valid = sorted(PYSTEPS_PREFIX + item for item in dir(importers) if item.startswith("import_"))
        raise ValueError(f"unknown pysteps importer {importer!r}; valid: {', '.join(valid)}")
    return PystepsReader(importer)


@functools.cache
def entry_point_readers() -> dict[str, Any]:
    """Readers registered under :data:`ENTRY_POINT_GROUP` by installed packages, loaded once, by
    name; a registered class is instantiated without arguments. ``ImportError`` names a reader
    that fails to load. Built-in names take precedence over registered ones."""
    readers = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
            readers[entry_point.name] = loaded() if isinstance(loaded, type) else loaded
        except Exception as error:  # noqa: BLE001 - any failure of a plugin names the plugin
            raise ImportError(
                f"reader {entry_point.name!r} registered under {ENTRY_POINT_GROUP!r} as "
                f"{entry_point.value!r} failed to load: {type(error).__name__}: {error}"
            ) from error
    return readers


def reader_kind(reader: Any) -> Literal["grid", "stations"]:
    """``stations`` for a reader with ``read_stations``, else ``grid``."""
    return "stations" if hasattr(reader, "read_stations") else "grid"


def available_readers(kind: Literal["grid", "stations"] | None = None) -> list[str]:
    """The names of the built-in and entry-point readers (of ``kind`` when given), sorted."""
    readers = {**GRID_READERS, **STATION_READERS, **entry_point_readers()}
    return sorted(name for name, reader in readers.items() if kind is None or reader_kind(reader) == kind)


def get_reader(name: str, kind: Literal["grid", "stations"] | None = None) -> Any:
    """The reader called ``name`` (of ``kind`` when given); ``ValueError`` lists the valid names."""
    reader: Any = {**GRID_READERS, **STATION_READERS}.get(name)
    if reader is None and name.startswith(PYSTEPS_PREFIX):
        reader = pysteps_reader(name)
    elif reader is None:
        reader = entry_point_readers().get(name)
    if reader is None or (kind is not None and reader_kind(reader) != kind):
        label = f"{kind} reader" if kind else "reader"
        valid = available_readers(kind) + ([f"{PYSTEPS_PREFIX}import_NAME"] if kind != "stations" else [])
        raise ValueError(f"unknown {label} {name!r}; valid readers: {', '.join(valid)}")
    return reader


__all__ = [
    "ENTRY_POINT_GROUP",
    "FrameReference",
    "GridGeometry",
    "GridReader",
    "PYSTEPS_PREFIX",
    "StationTable",
    "available_readers",
    "entry_point_readers",
    "get_reader",
    "pysteps_reader",
    "reader_kind",
    "GRID_READERS",
    "STATION_READERS",
]
