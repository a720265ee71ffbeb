"""Planar kilometre coordinates of grids and stations, and square tiles of points.

Coordinates are planar kilometres in the dataset's CRS (geographic grids: a local
equirectangular projection about the frame's centre).
"""

from __future__ import annotations

import numpy as np
import pyproj

EARTH_RADIUS_KM = 6371.0088


def planar_kilometres(x: np.ndarray, y: np.ndarray, crs: pyproj.CRS) -> tuple[np.ndarray, np.ndarray]:
    """Planar (x, y) in km: projected metres / 1000, or degrees on a local equirectangular plane."""
    if crs.is_geographic:
        latitude_centre = np.deg2rad(0.5 * (np.nanmin(y) + np.nanmax(y)))
        longitude_centre = 0.5 * (np.nanmin(x) + np.nanmax(x))
        return (
            np.deg2rad(x - longitude_centre) * EARTH_RADIUS_KM * np.cos(latitude_centre),
            np.deg2rad(y) * EARTH_RADIUS_KM,
        )
    return x / 1000.0, y / 1000.0


def tile_groups(points: np.ndarray, tile_km: float) -> dict[tuple[int, int], np.ndarray]:
    """Indices of ``points`` ``[n, >=2]`` (km) grouped by square tiles of ``tile_km``, keyed by tile
    (column, row)."""
    keys = np.floor(points[:, :2] / tile_km).astype(np.int64)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    groups: dict[tuple[int, int], np.ndarray] = {}
    unique, starts = np.unique(keys[order], axis=0, return_index=True)
    for key, members in zip(unique, np.split(order, starts[1:])):
        groups[(int(key[0]), int(key[1]))] = members
    return groups
