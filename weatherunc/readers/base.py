"""The interface every gridded reader implements, and the grid it describes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from weatherunc.catalog import CatalogEntry


@dataclass(frozen=True)
class GridGeometry:
    """Cell-centre coordinates of a regular grid in the entry's CRS.

    x: ``[nx]`` in metres (projected CRS) or degrees east (geographic CRS).
    y: ``[ny]`` in metres or degrees north, in the order of the data's rows.
    units: the native units the source itself declares, or ``None`` when it declares none.
    crs: the CRS the source itself declares (WKT or PROJ string, e.g. from a CF grid mapping),
        or ``None``; a catalog entry's ``crs`` takes precedence over it.
    """

    x: np.ndarray
    y: np.ndarray
    units: str | None
    crs: str | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return (self.y.size, self.x.size)


@dataclass(frozen=True)
class FrameReference:
    """Where one time step lives: a file and the index of the frame inside it."""

    path: Path
    index: int
    time: datetime


class GridReader(Protocol):
    """Reads gridded precipitation in native units; one instance serves one format."""

    def geometry(self, path: Path, entry: CatalogEntry) -> GridGeometry:
        """The grid of ``path`` (every file of an entry shares it)."""
        ...

    def frames(self, path: Path, entry: CatalogEntry) -> list[FrameReference]:
        """The time steps stored in ``path``."""
        ...

    def read_frame(self, frame: FrameReference, entry: CatalogEntry) -> np.ndarray:
        """One field ``[ny, nx]`` in native units, float, NaN where nothing was observed."""
        ...


def centres(start: float, pixel_size: float, count: int) -> np.ndarray:
    """``count`` cell centres from the edge ``start`` with signed spacing ``pixel_size``."""
    return start + pixel_size * (np.arange(count, dtype=np.float64) + 0.5)


def frame_time(path: Path, entry: CatalogEntry) -> datetime:
    """The valid time of a one-frame file, read from its name by the entry's pattern."""
    if entry.time_from_filename is None:
        raise ValueError(f"catalog entry {entry.name!r} needs time_from_filename for reader {entry.reader!r}")
    return entry.time_from_filename.parse(path.name)
