"""Radar composites read with pysteps' importers (KNMI HDF5, MeteoSwiss GIF, FMI PGM, MRMS GRIB2).

Reference: Pulkkinen et al. 2019, "Pysteps: an open-source Python library for
probabilistic precipitation nowcasting (v1.0)", Geosci. Model Dev. 12, 4185-4219;
``pysteps.io.importers``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from weatherunc.readers.base import FrameReference, GridGeometry, centres, frame_time

if TYPE_CHECKING:
    from weatherunc.catalog import CatalogEntry

_CARTESIAN_SCALE = {"m": 1.0, "km": 1000.0, "degrees": 1.0}


@dataclass(frozen=True)
class PystepsReader:
    """One file per frame, decoded by ``pysteps.io.<importer>``.

    The catalog entry's ``reader_options`` are passed to the importer as keywords.
    """

    importer: str

    def _import(self, path: Path, entry: CatalogEntry) -> tuple[np.ndarray, dict[str, Any]]:
        module = importlib.import_module("pysteps.io")
        function = getattr(module, self.importer)
        field, _quality, metadata = function(str(path), **entry.reader_options)
        return np.asarray(field, dtype=np.float64), metadata

    def geometry(self, path: Path, entry: CatalogEntry) -> GridGeometry:
        """Cell centres from the importer's corner coordinates and pixel sizes."""
        field, metadata = self._import(path, entry)
        scale = _CARTESIAN_SCALE[metadata.get("cartesian_unit", "m")]
        ny, nx = field.shape
        x_size = (metadata["x2"] - metadata["x1"]) / nx
        y_size = (metadata["y2"] - metadata["y1"]) / ny
        x = centres(metadata["x1"], x_size, nx) * scale
        if metadata.get("yorigin", "upper") == "upper":
            y = centres(metadata["y2"], -y_size, ny) * scale
        else:
            y = centres(metadata["y1"], y_size, ny) * scale
        return GridGeometry(x=x, y=y, units=metadata.get("unit"), crs=metadata.get("projection") or None)

    def frames(self, path: Path, entry: CatalogEntry) -> list[FrameReference]:
        """One frame, timed by the file name."""
        return [FrameReference(path=path, index=0, time=frame_time(path, entry))]

    def read_frame(self, frame: FrameReference, entry: CatalogEntry) -> np.ndarray:
        """The field ``[ny, nx]`` in the importer's units, NaN where there was no coverage."""
        field, _metadata = self._import(frame.path, entry)
        return field
