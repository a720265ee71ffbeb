"""Planar kilometre coordinates of grids and stations, and square tiles of points.

Coordinates are planar kilometres in the dataset's CRS (geographic grids: a local
equirectangular projection about the frame's centre).
"""

from __future__ import annotations

import numpy as np
import pyproj

EARTH_RADIUS_KM = 6371.0088


def planar_kilometres(x: np.ndarray, y: np.ndarray, crs: pyproj.CRS) -> tuple[np.ndarray, np.ndarray]:
    """Planar (x, y) in km: projected metres / 1000, or degrees on a local equirectangular plane.

    Longitudes are first taken to within 180 degrees of their circular mean, so that 0-360
    longitudes and points on both sides of the antimeridian lie where they are on the globe
    (179.9 and -179.9 degrees are 0.2 degrees apart, not 359.8); longitudes within 180 degrees of
    that mean are used as they are, and all of them where they spread over most of the globe (mean
    resultant length below 0.5, Mardia & Jupp 2000), where no local plane holds.
    """
    if crs.is_geographic:
        x = np.asarray(x, dtype=np.float64)
        radians = np.deg2rad(x[np.isfinite(x)])
        sine, cosine = (np.sin(radians).mean(), np.cos(radians).mean()) if radians.size else (0.0, 0.0)
        if np.hypot(sine, cosine) >= 0.5:
            mean = np.rad2deg(np.arctan2(sine, cosine))
            x = np.where(np.abs(x - mean) > 180.0, x - 360.0 * np.round((x - mean) / 360.0), x)
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
