"""Interpolation tasks: context points to condition on, target points to predict and score.

A :class:`Task` holds numpy arrays only; samplers build tasks from a gridded frame
``precipitation(y, x)`` (:mod:`~weatherunc.tasks.grid_samplers`) or a station set
``precipitation(station)`` (:mod:`~weatherunc.tasks.station_samplers`). Every sampler is seeded and
reproducible, and targets carry the withheld truth so every task can be scored. Coordinates are
planar kilometres in the dataset's CRS (:mod:`~weatherunc.tasks.geometry`; geographic grids: a
local equirectangular projection about the frame's centre).
"""

from weatherunc.tasks.geometry import EARTH_RADIUS_KM, planar_kilometres, tile_groups
from weatherunc.tasks.grid_samplers import (
    WET_THRESHOLD,
    gauge_network,
    masked_blocks,
    random_pixels,
    wettest_window,
)
from weatherunc.tasks.station_samplers import blocked_station_folds, station_folds
from weatherunc.tasks.task import Task

__all__ = [
    "EARTH_RADIUS_KM",
    "WET_THRESHOLD",
    "Task",
    "blocked_station_folds",
    "gauge_network",
    "masked_blocks",
    "planar_kilometres",
    "random_pixels",
    "station_folds",
    "tile_groups",
    "wettest_window",
]
