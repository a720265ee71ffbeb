"""Cross-validation tasks over a station set ``precipitation(station)``: random and spatially
blocked folds, each holding out some stations as targets and keeping the others as contexts."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.geolocation import crs_of
from weatherunc.tasks.geometry import planar_kilometres, tile_groups
from weatherunc.tasks.task import Task


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
