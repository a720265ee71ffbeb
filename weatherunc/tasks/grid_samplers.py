"""Samplers of tasks from a gridded frame ``precipitation(y, x)``: random pixels, masked blocks
(radar gaps) and gauge-like networks as contexts, other observed pixels as targets.

Every sampler is seeded and reproducible, and targets carry the withheld truth so every task
can be scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyproj
import xarray as xr

from weatherunc import conventions
from weatherunc.tasks.blocks import BlockRules, cover, place_blocks
from weatherunc.tasks.geometry import planar_kilometres
from weatherunc.tasks.task import Task

#: Rate above which a pixel counts as wet [mm/h].
WET_THRESHOLD = 0.1


@dataclass(frozen=True)
class _GridPoints:
    """The pixels of a frame ``(y, x)`` flattened: values ``[ny*nx]`` (mm/h), km coordinates
    ``[ny*nx, 2]`` and row and column indices ``[ny*nx]``."""

    frame: xr.DataArray
    values: np.ndarray
    coordinates: np.ndarray
    rows: np.ndarray
    columns: np.ndarray

    @classmethod
    def of(cls, frame: xr.DataArray, crs: pyproj.CRS) -> _GridPoints:
        """The pixels of ``frame`` with planar km coordinates in ``crs``."""
        if frame.dims != (conventions.Y, conventions.X):
            raise ValueError(f"frame must have dims (y, x), got {frame.dims}")
        ny, nx = frame.shape
        rows, columns = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        x_km, y_km = planar_kilometres(frame[conventions.X].values, frame[conventions.Y].values, crs)
        coordinates = np.stack([x_km[columns.ravel()], y_km[rows.ravel()]], axis=1)
        values = np.asarray(frame.values, dtype=np.float64).ravel()
        return cls(frame, values, coordinates, rows.ravel(), columns.ravel())

    def task(self, context: np.ndarray, target: np.ndarray, description: str) -> Task:
        """The task with the pixels ``context`` and ``target`` (flat indices) as its points."""
        frame = self.frame
        return Task(
            context_coordinates=self.coordinates[context],
            context_values=self.values[context],
            target_coordinates=self.coordinates[target],
            target_values=self.values[target],
            target_coords={
                conventions.Y: frame[conventions.Y].values[self.rows[target]],
                conventions.X: frame[conventions.X].values[self.columns[target]],
                "row": self.rows[target],
                "column": self.columns[target],
            },
            description=description,
        )


def wettest_window(frame: xr.DataArray, size: int) -> xr.DataArray:
    """The ``size`` x ``size`` window of ``frame`` (y, x) with the most wet pixels."""
    ny, nx = frame.shape
    if size > min(ny, nx):
        raise ValueError(f"window {size} does not fit a {ny}x{nx} frame")
    wet = np.nan_to_num(np.asarray(frame.values, dtype=np.float64)) > WET_THRESHOLD
    summed = np.pad(wet.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    counts = summed[size:, size:] - summed[:-size, size:] - summed[size:, :-size] + summed[:-size, :-size]
    top, left = np.unravel_index(np.argmax(counts), counts.shape)
    return frame.isel({conventions.Y: slice(top, top + size), conventions.X: slice(left, left + size)})


def _limit(indices: np.ndarray, maximum: int | None, rng: np.random.Generator) -> np.ndarray:
    if maximum is None or indices.size <= maximum:
        return np.sort(indices)
    return np.sort(rng.choice(indices, size=maximum, replace=False))


def random_pixels(
    frame: xr.DataArray,
    *,
    context_fraction: float = 0.05,
    max_target: int | None = 10_000,
    seed: int = 0,
    crs: pyproj.CRS,
) -> Task:
    """Context: a random ``context_fraction`` of observed pixels; targets: other observed pixels."""
    rng = np.random.default_rng(seed)
    points = _GridPoints.of(frame, crs)
    values = points.values
    observed = np.flatnonzero(np.isfinite(values))
    shuffled = rng.permutation(observed)
    n_context = max(1, int(round(context_fraction * observed.size)))
    context, rest = np.sort(shuffled[:n_context]), shuffled[n_context:]
    return points.task(
        context,
        _limit(rest, max_target, rng),
        f"random pixels {context_fraction:.1%}, seed {seed}",
    )


def masked_blocks(
    frame: xr.DataArray,
    *,
    block_pixels: int = 32,
    count: int = 3,
    halo_pixels: int | None = None,
    max_context: int | None = 2000,
    max_target: int | None = 10_000,
    min_wet_fraction: float = 0.0,
    seed: int = 0,
    crs: pyproj.CRS,
) -> Task:
    """Hide ``count`` square blocks (radar gaps); predict them from a ring of ``halo_pixels`` around.

    Blocks are placed at random (:func:`~weatherunc.tasks.blocks.place_blocks`, at most
    ``200 * count`` attempts, never touching the last row or column) where at least half the
    block was observed, at least ``min_wet_fraction`` of its observed pixels exceed 0.1 mm/h and
    no earlier block overlaps it. Context: observed pixels within the halo of a block but outside
    every block, subsampled to ``max_context``; targets: observed pixels inside a block,
    subsampled to ``max_target``.
    """
    rng = np.random.default_rng(seed)
    points = _GridPoints.of(frame, crs)
    values = points.values
    ny, nx = frame.shape
    if not 1 <= block_pixels < min(ny, nx):
        raise ValueError(f"block_pixels={block_pixels} does not fit a {ny}x{nx} frame")
    halo = block_pixels if halo_pixels is None else halo_pixels
    observed_grid = np.isfinite(values).reshape(ny, nx)
    rules = BlockRules(
        attempts=200 * count,
        touch_far_edge=False,
        spacing=0,
        min_observed_fraction=0.5,
        min_wet_fraction=min_wet_fraction,
    )
    wet = np.nan_to_num(values.reshape(ny, nx)) > WET_THRESHOLD
    blocks = place_blocks((ny, nx), count, block_pixels, rules, rng, observed=observed_grid, wet=wet)
    placed = len(blocks)
    inside, near = cover((ny, nx), blocks), cover((ny, nx), blocks, halo)
    if placed == 0:
        raise ValueError("no block with at least half of its pixels observed fits the frame")
    context = np.flatnonzero((near & ~inside & observed_grid).ravel())
    target = np.flatnonzero((inside & observed_grid).ravel())
    return points.task(
        _limit(context, max_context, rng),
        _limit(target, max_target, rng),
        f"{placed} masked blocks of {block_pixels} px, halo {halo} px, seed {seed}",
    )


def gauge_network(
    frame: xr.DataArray,
    *,
    fraction: float = 0.005,
    clustered: bool = False,
    clusters: int = 8,
    max_target: int | None = 10_000,
    seed: int = 0,
    crs: pyproj.CRS,
) -> Task:
    """A sparse gauge-like network (``fraction`` of observed pixels) as context; other pixels as targets.

    ``clustered=True`` draws sites around ``clusters`` random centres (gauges cluster in valleys
    and towns), with a spread of a tenth of the frame's size.
    """
    rng = np.random.default_rng(seed)
    points = _GridPoints.of(frame, crs)
    values, rows, columns = points.values, points.rows, points.columns
    observed = np.flatnonzero(np.isfinite(values))
    n_sites = max(3, int(round(fraction * observed.size)))
    if not clustered:
        context = rng.choice(observed, size=n_sites, replace=False)
    else:
        ny, nx = frame.shape
        centres = rng.choice(observed, size=clusters, replace=False)
        spread = 0.1 * min(ny, nx)
        chosen: set[int] = set()
        observed_set = set(observed.tolist())
        for _attempt in range(100 * n_sites):
            if len(chosen) == n_sites:
                break
            centre = centres[rng.integers(clusters)]
            row = int(round(rows[centre] + rng.normal(0, spread)))
            column = int(round(columns[centre] + rng.normal(0, spread)))
            if 0 <= row < ny and 0 <= column < nx and (flat := row * nx + column) in observed_set:
                chosen.add(flat)
        context = np.array(sorted(chosen))
    rest = np.setdiff1d(observed, context)
    kind = "clustered" if clustered else "uniform"
    return points.task(
        np.sort(context),
        _limit(rest, max_target, rng),
        f"{kind} gauge network {fraction:.2%}, seed {seed}",
    )
