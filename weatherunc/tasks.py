"""Interpolation tasks: context points to condition on, target points to predict and score.

A :class:`Task` holds numpy arrays only; samplers build tasks from a gridded frame
``precipitation(y, x)`` or a station set ``precipitation(station)``. Every sampler is
seeded and reproducible, and targets carry the withheld truth so every task can be scored.
Coordinates are planar kilometres in the dataset's CRS (geographic grids: a local
equirectangular projection about the frame's centre).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyproj
import xarray as xr

from weatherunc import conventions
from weatherunc.geolocation import crs_of

EARTH_RADIUS_KM = 6371.0088
#: Rate above which a pixel counts as wet [mm/h].
WET_THRESHOLD = 0.1


@dataclass(frozen=True)
class Task:
    """Context and target points of one interpolation problem.

    context_coordinates: ``[n_context, 2]`` (x, y) in km.
    context_values: ``[n_context]`` rate in mm/h.
    target_coordinates: ``[n_target, 2]`` in km.
    target_values: ``[n_target]`` withheld truth in mm/h (NaN where unknown).
    context_covariates / target_covariates: ``[n, n_covariates]`` or ``None``.
    target_dim: name of the output dimension ("target" or "station").
    target_coords: coordinates of the targets for the output dataset, each ``[n_target]``.

    Construction refuses (``ValueError`` naming the variable and the check): coordinates or
    covariates that are not finite, context values that are not finite, negative or above
    :data:`~weatherunc.conventions.MAXIMUM_RATE_MM_PER_HOUR`, and two contexts at exactly
    the same point (merge them first, e.g. by averaging).
    """

    context_coordinates: np.ndarray
    context_values: np.ndarray
    target_coordinates: np.ndarray
    target_values: np.ndarray
    context_covariates: np.ndarray | None = None
    target_covariates: np.ndarray | None = None
    target_dim: str = "target"
    target_coords: dict[str, np.ndarray] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        n_context, n_target = len(self.context_values), len(self.target_values)
        if self.context_coordinates.shape != (n_context, 2) or self.target_coordinates.shape != (n_target, 2):
            raise ValueError(
                f"coordinates must be [n, 2]: context {self.context_coordinates.shape}, target "
                f"{self.target_coordinates.shape}"
            )
        if n_context == 0:
            raise ValueError("a task needs at least one context point")
        if (self.context_covariates is None) != (self.target_covariates is None):
            raise ValueError("give covariates for both context and targets, or for neither")
        for name in ("context_coordinates", "target_coordinates", "context_covariates", "target_covariates"):
            array = getattr(self, name)
            if array is not None and not np.all(np.isfinite(array)):
                count = int(np.count_nonzero(~np.all(np.isfinite(array), axis=-1)))
                raise ValueError(f"{name} must be finite: {count} point(s) with NaN or infinite entries")
        values = self.context_values
        if not np.all(np.isfinite(values)):
            count = int(np.count_nonzero(~np.isfinite(values)))
            raise ValueError(
                f"context_values must be finite and >= 0 (observed rates in mm/h): {count} NaN or infinite "
                "value(s)"
            )
        if np.any(values < 0):
            raise ValueError(
                "context_values must be finite and >= 0 (rates in mm/h): "
                f"{int(np.count_nonzero(values < 0))} negative value(s), "
                f"the lowest {float(values.min()):g}"
            )
        bound = conventions.MAXIMUM_RATE_MM_PER_HOUR
        if np.any(values > bound):
            raise ValueError(
                f"context_values must not exceed the plausibility bound of {bound:g} mm/h: "
                f"{int(np.count_nonzero(values > bound))} value(s) above it, the highest "
                f"{float(values.max()):g}"
            )
        duplicates = n_context - len(np.unique(self.context_coordinates, axis=0))
        if duplicates:
            raise ValueError(
                f"context_coordinates has {duplicates} duplicated point(s) (contexts at exactly the same "
                "point as another); "
                "merge them first, e.g. by averaging their values"
            )

    @property
    def n_context(self) -> int:
        """Number of context points."""
        return len(self.context_values)

    @property
    def n_target(self) -> int:
        """Number of target points."""
        return len(self.target_values)

    def observed_truth(self) -> xr.DataArray:
        """The withheld truth as ``precipitation(target)`` with the target coordinates."""
        return xr.DataArray(
            self.target_values,
            dims=self.target_dim,
            name=conventions.PRECIPITATION,
            coords={name: (self.target_dim, values) for name, values in self.target_coords.items()},
            attrs={"units": conventions.PRECIPITATION_UNITS},
        )


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


def _grid_points(
    frame: xr.DataArray, crs: pyproj.CRS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flattened values ``[ny*nx]``, km coordinates ``[ny*nx, 2]``, and row/column indices."""
    if frame.dims != (conventions.Y, conventions.X):
        raise ValueError(f"frame must have dims (y, x), got {frame.dims}")
    ny, nx = frame.shape
    rows, columns = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    x_km, y_km = planar_kilometres(frame[conventions.X].values, frame[conventions.Y].values, crs)
    coordinates = np.stack([x_km[columns.ravel()], y_km[rows.ravel()]], axis=1)
    return np.asarray(frame.values, dtype=np.float64).ravel(), coordinates, rows.ravel(), columns.ravel()


def _grid_task(
    frame: xr.DataArray,
    values: np.ndarray,
    coordinates: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    context: np.ndarray,
    target: np.ndarray,
    description: str,
) -> Task:
    return Task(
        context_coordinates=coordinates[context],
        context_values=values[context],
        target_coordinates=coordinates[target],
        target_values=values[target],
        target_coords={
            conventions.Y: frame[conventions.Y].values[rows[target]],
            conventions.X: frame[conventions.X].values[columns[target]],
            "row": rows[target],
            "column": columns[target],
        },
        description=description,
    )


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
    values, coordinates, rows, columns = _grid_points(frame, crs)
    observed = np.flatnonzero(np.isfinite(values))
    shuffled = rng.permutation(observed)
    n_context = max(1, int(round(context_fraction * observed.size)))
    context, rest = np.sort(shuffled[:n_context]), shuffled[n_context:]
    return _grid_task(
        frame,
        values,
        coordinates,
        rows,
        columns,
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

    Blocks are placed at random where at least half the block was observed and at least
    ``min_wet_fraction`` of its observed pixels exceed 0.1 mm/h. Context: observed pixels
    within the halo of a block but outside every block, subsampled to ``max_context``.
    """
    rng = np.random.default_rng(seed)
    values, coordinates, rows, columns = _grid_points(frame, crs)
    ny, nx = frame.shape
    if block_pixels >= min(ny, nx):
        raise ValueError(f"block_pixels={block_pixels} does not fit a {ny}x{nx} frame")
    halo = block_pixels if halo_pixels is None else halo_pixels
    observed_grid = np.isfinite(values).reshape(ny, nx)
    inside = np.zeros((ny, nx), dtype=bool)
    near = np.zeros((ny, nx), dtype=bool)
    placed = 0
    for _attempt in range(200 * count):
        if placed == count:
            break
        top, left = rng.integers(0, ny - block_pixels), rng.integers(0, nx - block_pixels)
        block = (slice(top, top + block_pixels), slice(left, left + block_pixels))
        if observed_grid[block].mean() < 0.5 or inside[block].any():
            continue
        block_values = values.reshape(ny, nx)[block]
        if np.mean(block_values[np.isfinite(block_values)] > WET_THRESHOLD) < min_wet_fraction:
            continue
        inside[block] = True
        near[
            max(0, top - halo) : top + block_pixels + halo, max(0, left - halo) : left + block_pixels + halo
        ] = True
        placed += 1
    if placed == 0:
        raise ValueError("no block with at least half of its pixels observed fits the frame")
    context = np.flatnonzero((near & ~inside & observed_grid).ravel())
    target = np.flatnonzero((inside & observed_grid).ravel())
    return _grid_task(
        frame,
        values,
        coordinates,
        rows,
        columns,
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
    values, coordinates, rows, columns = _grid_points(frame, crs)
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
    return _grid_task(
        frame,
        values,
        coordinates,
        rows,
        columns,
        np.sort(context),
        _limit(rest, max_target, rng),
        f"{kind} gauge network {fraction:.2%}, seed {seed}",
    )


def _station_points(
    stations: xr.Dataset, covariates: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Values ``[n_station]`` (mm/h), km coordinates ``[n_station, 2]`` and covariates ``[n_station,
    n_covariates]`` (or ``None``)."""
    crs = crs_of(stations)
    values = np.asarray(stations[conventions.PRECIPITATION].values, dtype=np.float64)
    x_km, y_km = planar_kilometres(stations[conventions.X].values, stations[conventions.Y].values, crs)
    coordinates = np.stack([x_km, y_km], axis=1)
    covariate_values = (
        np.stack([stations[name].values for name in covariates], axis=1).astype(np.float64)
        if covariates
        else None
    )
    return values, coordinates, covariate_values


def _station_task(
    stations: xr.Dataset,
    values: np.ndarray,
    coordinates: np.ndarray,
    covariate_values: np.ndarray | None,
    held_out: np.ndarray,
    description: str,
) -> Task:
    """The stations ``held_out`` (sorted indices) as targets, every other station as context."""
    kept = np.setdiff1d(np.arange(values.size), held_out)
    return Task(
        context_coordinates=coordinates[kept],
        context_values=values[kept],
        target_coordinates=coordinates[held_out],
        target_values=values[held_out],
        context_covariates=None if covariate_values is None else covariate_values[kept],
        target_covariates=None if covariate_values is None else covariate_values[held_out],
        target_dim=conventions.STATION,
        target_coords={conventions.STATION: stations[conventions.STATION].values[held_out]},
        description=description,
    )


def station_folds(
    stations: xr.Dataset, *, folds: int | None = None, seed: int = 0, covariates: tuple[str, ...] = ()
) -> Iterator[Task]:
    """k-fold cross-validation tasks over a station set; ``folds=None`` is leave-one-out.

    Folds are drawn at random, so on clustered stations most targets keep a close neighbour
    among the contexts: see :func:`blocked_station_folds` for spatially blocked folds.
    """
    values, coordinates, covariate_values = _station_points(stations, covariates)
    n = values.size
    k = n if folds is None else folds
    if not 2 <= k <= n:
        raise ValueError(f"folds must be between 2 and {n}, got {folds}")
    order = np.random.default_rng(seed).permutation(n)
    for fold, held_out in enumerate(np.array_split(order, k)):
        yield _station_task(
            stations, values, coordinates, covariate_values, np.sort(held_out), f"fold {fold + 1} of {k}"
        )


def blocked_station_folds(
    stations: xr.Dataset,
    *,
    block_km: float,
    folds: int,
    seed: int = 0,
    covariates: tuple[str, ...] = (),
) -> Iterator[Task]:
    """Spatially blocked k-fold cross-validation tasks over a station set.

    Stations are grouped into square blocks of ``block_km`` (planar km, see
    :func:`planar_kilometres`; blocks aligned on multiples of ``block_km``, as in
    :func:`tile_groups`), and whole blocks are assigned to folds: in an order shuffled with
    ``seed``, each block joins the fold with the fewest stations so far (ties broken at random),
    so fold sizes differ by at most the largest block's station count. Each fold yields one Task
    with its stations as targets and every other station as context, so no target shares a
    block with a context: unlike :func:`station_folds` on clustered stations, a target's nearest
    context is at least as far as the edge of its block.

    Raises ``ValueError`` for ``block_km`` not finite and > 0, ``folds`` < 2, or more folds
    than occupied blocks.
    """
    if not (np.isfinite(block_km) and block_km > 0):
        raise ValueError(f"block_km must be finite and > 0, got {block_km}")
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    values, coordinates, covariate_values = _station_points(stations, covariates)
    blocks = list(tile_groups(coordinates, block_km).values())
    if folds > len(blocks):
        raise ValueError(
            f"folds={folds} is more than the {len(blocks)} block(s) of {block_km:g} km holding the "
            f"{values.size} stations; "
            "use fewer folds or smaller blocks"
        )
    rng = np.random.default_rng(seed)
    loads = np.zeros(folds, dtype=np.int64)
    members: list[list[np.ndarray]] = [[] for _ in range(folds)]
    for block in rng.permutation(len(blocks)):
        lightest = np.flatnonzero(loads == loads.min())
        fold = int(rng.choice(lightest))
        members[fold].append(blocks[block])
        loads[fold] += blocks[block].size
    for fold, parts in enumerate(members):
        held_out = np.sort(np.concatenate(parts))
        description = f"fold {fold + 1} of {folds}, {len(parts)} block(s) of {block_km:g} km, seed {seed}"
        yield _station_task(stations, values, coordinates, covariate_values, held_out, description)
