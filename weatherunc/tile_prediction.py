"""One tile of a frame as a task, and its prediction on the tile's ``(y, x)`` block.

A tile (:class:`~weatherunc.tiling.Tile`) of a frame ``precipitation(y, x)`` becomes one
:class:`~weatherunc.tasks.Task` (:func:`tile_task`): its targets are the tile's pixels (the
unobserved ones, those a target mask names, or all), its contexts the observed pixels in the
tile's halo window (:meth:`~weatherunc.tiling.GridTiling.context_window`), at most
``max_context`` (chosen at random, or the nearest to the targets and a random far field:
:func:`context_subset`; the random draws are seeded by the tiling's seed and the tile's number,
so a recomputed tile is identical). :func:`predict_tile` puts any registered model's
prediction of that task back on the tile's block. Callers: :mod:`weatherunc.gridding` (whole
frames), :mod:`weatherunc.blending` (extended tiles, blended) and the batch jobs.
"""

from __future__ import annotations

import numpy as np
import pyproj
import xarray as xr
from scipy import ndimage

from weatherunc import conventions
from weatherunc.models.interface import minimum_contexts
from weatherunc.models.registry import Interpolator
from weatherunc.tasks import Task, planar_kilometres
from weatherunc.tiling import GridTiling, Tile


def tile_task(
    values: np.ndarray,
    x_km: np.ndarray,
    y_km: np.ndarray,
    tile: Tile,
    tiling: GridTiling,
    target_mask: np.ndarray | None = None,
) -> Task | None:
    """The task of one tile (None when it has no target or no observed context).

    values ``[ny, nx]`` (NaN = unobserved), x_km ``[nx]``, y_km ``[ny]``; ``target_mask`` (bool
    ``[ny, nx]``) names the pixels to predict, else ``tiling.targets`` decides. Contexts: the
    observed pixels of the tile's halo window, at most ``tiling.max_context`` of them, chosen as
    ``tiling.contexts`` says (:func:`context_subset`).
    """
    wanted = tiling.pixels_to_predict(
        values[tile.rows, tile.columns], None if target_mask is None else target_mask[tile.rows, tile.columns]
    )
    target_rows, target_columns = np.nonzero(wanted)
    window = tiling.context_window(tile, values.shape)
    top, left = window.rows.start, window.columns.start
    region = values[window.rows, window.columns]
    context_rows, context_columns = np.nonzero(np.isfinite(region))
    if context_rows.size == 0 or target_rows.size == 0:
        return None
    if context_rows.size > tiling.max_context:
        keep = context_subset(
            context_rows,
            context_columns,
            target_rows + tile.rows.start - top,
            target_columns + tile.columns.start - left,
            tiling,
            np.random.default_rng([tiling.seed, tile.number]),
        )
        context_rows, context_columns = context_rows[keep], context_columns[keep]
    context_rows, context_columns = context_rows + top, context_columns + left
    target_rows, target_columns = target_rows + tile.rows.start, target_columns + tile.columns.start
    return Task(
        context_coordinates=np.stack([x_km[context_columns], y_km[context_rows]], axis=1),
        context_values=values[context_rows, context_columns].astype(np.float64),
        target_coordinates=np.stack([x_km[target_columns], y_km[target_rows]], axis=1),
        target_values=values[target_rows, target_columns].astype(np.float64),
        target_coords={"row": target_rows, "column": target_columns},
        description=(
            f"tile {tile.number} (rows {tile.rows.start}-{tile.rows.stop}, columns "
            f"{tile.columns.start}-{tile.columns.stop}), halo {tiling.halo_pixels} px"
        ),
    )


def context_subset(
    context_rows: np.ndarray,
    context_columns: np.ndarray,
    target_rows: np.ndarray,
    target_columns: np.ndarray,
    tiling: GridTiling,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sorted indices of the ``tiling.max_context`` contexts kept out of ``[n]`` (row, column) pixels
    (``n`` larger than the cap), for targets at ``[m]`` (row, column) pixels of the same grid.

    "random": a random subset. "nearest": the ``max_context // 2`` contexts nearest to a target
    (Euclidean distance in pixels, ties in pixel order), then a random subset of the others: the
    nearest-neighbour search of local kriging (Cressie 1993, "Statistics for Spatial Data",
    section 3.2.1), which keeps the pixels that determine a gap's edges, with the far field kept
    so that the contexts still show the covariance at longer range.
    """
    if tiling.contexts == "random":
        return np.sort(rng.choice(context_rows.size, tiling.max_context, replace=False))
    shape = (
        int(max(context_rows.max(), target_rows.max())) + 1,
        int(max(context_columns.max(), target_columns.max())) + 1,
    )
    free = np.ones(shape, dtype=bool)
    free[target_rows, target_columns] = False
    distance = ndimage.distance_transform_edt(free)[context_rows, context_columns]  # [n]
    nearest = np.argsort(distance, kind="stable")[: tiling.max_context // 2]
    others = np.setdiff1d(np.arange(context_rows.size), nearest)
    drawn = rng.choice(others, tiling.max_context - nearest.size, replace=False)
    return np.sort(np.concatenate([nearest, drawn]))


def frame_axes(frame: xr.DataArray, crs: pyproj.CRS | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``(y, x)`` frame's values ``[ny, nx]`` (float64) and its axes ``x_km`` ``[nx]``, ``y_km``
    ``[ny]`` in planar kilometres."""
    if frame.dims != (conventions.Y, conventions.X):
        raise ValueError(f"frame must have dims (y, x), got {frame.dims}")
    x_km, y_km = planar_kilometres(
        frame[conventions.X].values, frame[conventions.Y].values, pyproj.CRS.from_user_input(crs)
    )
    return np.asarray(frame.values, dtype=np.float64), x_km, y_km


def predict_tile(
    model: Interpolator,
    values: np.ndarray,
    x_km: np.ndarray,
    y_km: np.ndarray,
    tile: Tile,
    tiling: GridTiling,
    target_mask: np.ndarray | None = None,
) -> xr.Dataset | None:
    """The model's prediction for one tile on the tile's (y, x) block; None when there is nothing to
    predict, or fewer contexts than the model needs
    (:func:`~weatherunc.models.interface.minimum_contexts`)."""
    task = tile_task(values, x_km, y_km, tile, tiling, target_mask)
    if task is None or task.n_context < minimum_contexts(model):
        return None
    prediction = model.predict(task)
    height, width = tile.rows.stop - tile.rows.start, tile.columns.stop - tile.columns.start
    rows, columns = (
        task.target_coords["row"] - tile.rows.start,
        task.target_coords["column"] - tile.columns.start,
    )
    out = {}
    for name, variable in prediction.data_vars.items():
        extra = [dim for dim in variable.dims if dim != "target"]
        block = np.full((height, width, *[prediction.sizes[dim] for dim in extra]), np.nan)
        block[rows, columns] = variable.transpose("target", *extra).values
        out[name] = ((conventions.Y, conventions.X, *extra), block, variable.attrs)
    coords = {dim: prediction[dim] for dim in prediction.dims if dim != "target"}
    coords.update(
        {
            name: prediction[name]
            for name in (conventions.BIN_LOWER, conventions.BIN_UPPER)
            if name in prediction.coords
        }
    )
    return xr.Dataset(out, coords=coords, attrs=prediction.attrs)
