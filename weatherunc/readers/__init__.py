"""Readers registered by name; a catalog entry's ``reader`` picks one.

``get_reader(name)`` follows the registry pattern of ``pysteps.io.interface.get_method``.
"""

from __future__ import annotations

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


def get_reader(name: str) -> GridReader | CSVStationReader:
    """The reader registered as ``name``; ``ValueError`` lists the valid names."""
    readers = {**GRID_READERS, **STATION_READERS}
    if name not in readers:
        raise ValueError(f"unknown reader {name!r}; valid readers: {', '.join(sorted(readers))}")
    return readers[name]


__all__ = [
    "FrameReference",
    "GridGeometry",
    "GridReader",
    "StationTable",
    "get_reader",
    "GRID_READERS",
    "STATION_READERS",
]
