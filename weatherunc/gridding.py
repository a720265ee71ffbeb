"""Whole-frame prediction tile by tile, with a halo of context around each tile, streamed to zarr.

A frame ``precipitation(y, x)`` is cut into the square tiles of a
:class:`~weatherunc.tiling.GridTiling` (:mod:`weatherunc.tiling`). Each tile is one
:class:`~weatherunc.tasks.Task` (:func:`weatherunc.tile_prediction.tile_task`): its targets are
the tile's pixels (the unobserved ones, or all), its contexts the observed pixels in the tile and
a halo of ``halo_pixels`` around it, at most ``max_context`` (a random subset drawn with a seed
derived from the tiling's seed and the tile, so a recomputed tile is identical). Any registered
model predicts the task; with ``blend_pixels`` > 0 each tile is blended with its neighbours
(:func:`weatherunc.blending.predict_blended_tile`). The tile's output is written into its region
of the zarr store, whose chunks are the tiles, so memory stays bounded by one tile whatever the
frame size.

:func:`seam_ratio` measures how much a tiled map jumps where its tiles meet.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyproj
import xarray as xr
from tqdm import tqdm

from weatherunc import conventions
from weatherunc.blending import predict_blended_tile
from weatherunc.geolocation import grid_mapping
from weatherunc.models.registry import Interpolator
from weatherunc.store import COMPLETE_ATTRIBUTE
from weatherunc.tile_prediction import frame_axes
from weatherunc.tiling import DEFAULT_TILING, GridTiling, Tile


def seam_ratio(mean: np.ndarray, tile_pixels: int, rows: slice, columns: slice) -> tuple[float, float, float]:
    """How much a tiled map jumps where tiles meet: ``(ratio, jump, step)`` inside the region
    ``mean[rows, columns]`` of a ``[ny, nx]`` map tiled by :func:`~weatherunc.tiling.grid_tiles`,
    where ``jump`` is the mean absolute difference between neighbouring pixels on either side of
    a tile edge and ``step`` the mean absolute difference between the other neighbouring pixels; ``ratio`` is
    ``jump / step`` (about 1 for a map without seams). ``ValueError`` when no tile edge crosses
    the region."""
    block = np.asarray(mean, dtype=np.float64)[rows, columns]
    row_steps, column_steps = np.abs(np.diff(block, axis=0)), np.abs(np.diff(block, axis=1))
    # the step between block rows i and i + 1 crosses an edge when row start + i + 1 starts a tile
    row_edges = (rows.start + 1 + np.arange(row_steps.shape[0])) % tile_pixels == 0
    column_edges = (columns.start + 1 + np.arange(column_steps.shape[1])) % tile_pixels == 0
    if not row_edges.any() and not column_edges.any():
        raise ValueError(
            f"seam_ratio: no edge of {tile_pixels}-pixel tiles crosses rows {rows}, columns {columns}"
        )
    across = np.concatenate([row_steps[row_edges].ravel(), column_steps[:, column_edges].ravel()])
    elsewhere = np.concatenate([row_steps[~row_edges].ravel(), column_steps[:, ~column_edges].ravel()])
    jump, step = float(np.nanmean(across)), float(np.nanmean(elsewhere))
    return jump / step, jump, step


def iterate_tiles(
    model: Interpolator,
    frame: xr.DataArray,
    *,
    crs: pyproj.CRS | str,
    tiling: GridTiling,
    target_mask: np.ndarray | None = None,
    progress: bool = True,
) -> Iterator[tuple[Tile, xr.Dataset | None]]:
    """Every tile and its prediction (None where there is nothing to predict), in order; with
    ``tiling.blend_pixels`` > 0 blended with its neighbours'
    (:func:`~weatherunc.blending.predict_blended_tile`)."""
    values, x_km, y_km = frame_axes(frame, crs)
    for tile in tqdm(tiling.tiles(values.shape), desc="tiles", disable=not progress, leave=False):
        yield tile, predict_blended_tile(model, values, x_km, y_km, tile, tiling, target_mask)


def predict_grid(
    model: Interpolator,
    frame: xr.DataArray,
    *,
    crs: pyproj.CRS | str,
    tiling: GridTiling = DEFAULT_TILING,
    target_mask: np.ndarray | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Predict a whole frame in memory, tile by tile; pixels without a prediction are NaN.

    With ``target_mask`` (bool ``[ny, nx]``) exactly those pixels are hidden from the model and
    predicted, and their truth is kept as ``withheld_precipitation``. The result also holds the
    ``precipitation`` the model saw (NaN = unobserved) and the ``crs`` grid mapping.
    ``crs``: a ``pyproj.CRS`` or anything ``pyproj.CRS.from_user_input`` reads (``"EPSG:3035"``).
    """
    withheld = None
    if target_mask is not None:
        frame, withheld = mask_frame(frame, target_mask)
    blocks = [
        (tile, block)
        for tile, block in iterate_tiles(
            model, frame, crs=crs, tiling=tiling, target_mask=target_mask, progress=progress
        )
        if block is not None
    ]
    if not blocks:
        raise ValueError("no tile has both targets and observed contexts: nothing to predict")
    prediction = with_observation(_assemble(frame, blocks), frame, crs)
    if withheld is not None:
        truth = withheld.drop_vars([name for name in withheld.coords if name not in frame.dims])
        prediction["withheld_precipitation"] = truth.assign_attrs(
            units=conventions.PRECIPITATION_UNITS,
            long_name="withheld observed rate (truth of the masked pixels)",
            grid_mapping=conventions.CRS_VARIABLE,
        )
    return prediction


def mask_frame(frame: xr.DataArray, mask: np.ndarray) -> tuple[xr.DataArray, xr.DataArray]:
    """Hide ``mask`` (bool ``[ny, nx]``) of ``frame``: the frame seen by the model and the withheld truth."""
    if mask.shape != frame.shape or mask.dtype != bool:
        raise ValueError(
            f"target_mask must be a boolean array of the frame's shape {frame.shape}, got {mask.dtype} "
            f"{mask.shape}"
        )
    return frame.where(~mask), frame.where(mask)


def with_observation(prediction: xr.Dataset, frame: xr.DataArray, crs: pyproj.CRS | str) -> xr.Dataset:
    """Add the observed ``precipitation`` (y, x), a ``crs`` grid mapping and ``grid_mapping`` attributes."""
    observed = frame.drop_vars([name for name in frame.coords if name not in (conventions.Y, conventions.X)])
    prediction = prediction.assign(
        {
            conventions.PRECIPITATION: observed.assign_attrs(
                units=conventions.PRECIPITATION_UNITS,
                long_name="observed precipitation rate (NaN: unobserved)",
            )
        }
    )
    prediction[conventions.CRS_VARIABLE] = grid_mapping(pyproj.CRS.from_user_input(crs))
    for variable in prediction.data_vars.values():
        if conventions.Y in variable.dims:
            variable.attrs["grid_mapping"] = conventions.CRS_VARIABLE
    if "time" in frame.coords:
        prediction = prediction.assign_coords(time=frame["time"])
    return prediction


def _assemble(frame: xr.DataArray, blocks: list[tuple[Tile, xr.Dataset]]) -> xr.Dataset:
    ny, nx = frame.shape
    first = blocks[0][1]
    out = {}
    for name, variable in first.data_vars.items():
        grid = np.full((ny, nx, *variable.shape[2:]), np.nan)
        for tile, block in blocks:
            grid[tile.rows, tile.columns] = block[name].values
        out[name] = (variable.dims, grid, variable.attrs)
    coords = {
        conventions.Y: frame[conventions.Y],
        conventions.X: frame[conventions.X],
        **{name: first[name] for name in first.coords},
    }
    attrs = {
        key: value
        for key, value in first.attrs.items()
        if key not in ("task", "fit_seconds", "predict_seconds")
    }
    return xr.Dataset(out, coords=coords, attrs=attrs)


def predict_grid_to_zarr(
    model: Interpolator,
    frame: xr.DataArray,
    store: Path,
    *,
    crs: pyproj.CRS | str,
    tiling: GridTiling = DEFAULT_TILING,
    target_mask: np.ndarray | None = None,
    progress: bool = True,
) -> Path:
    """Predict a whole frame tile by tile and stream each tile into its zarr region.

    Written to ``STORE.partial`` and renamed to ``store`` once every tile is in, with the root
    attribute ``weatherunc_complete`` set last; a crash leaves no ``store`` behind.
    Chunks are the tiles, so no two tiles write the same chunk. With ``tiling.blend_pixels`` > 0
    each tile is blended with its neighbours (:func:`~weatherunc.blending.predict_blended_tile`:
    up to 9 predictions per tile, outputs with bin probabilities added).
    """
    store = Path(store)
    partial = store.with_name(store.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if target_mask is not None:
        frame, _ = mask_frame(frame, target_mask)
    values, x_km, y_km = frame_axes(frame, crs)
    created = False
    for tile in tqdm(tiling.tiles(values.shape), desc="tiles", disable=not progress, leave=False):
        block = predict_blended_tile(model, values, x_km, y_km, tile, tiling, target_mask)
        if block is None:
            continue
        if not created:
            _create_store(partial, frame, block, tiling)
            created = True
        region = {conventions.Y: tile.rows, conventions.X: tile.columns}
        block.drop_vars(list(block.coords)).to_zarr(
            partial, region=region, mode="r+", consolidated=False, zarr_format=3
        )
    if not created:
        raise ValueError("no tile has both targets and observed contexts: nothing to predict")
    import zarr

    observation = with_observation(
        xr.Dataset(coords={conventions.Y: frame[conventions.Y], conventions.X: frame[conventions.X]}),
        frame,
        crs,
    )
    observation.drop_vars(list(observation.coords)).to_zarr(
        partial, mode="a", consolidated=False, zarr_format=3
    )

    root = zarr.open_group(partial, mode="r+", zarr_format=3)
    root.attrs[COMPLETE_ATTRIBUTE] = 1
    if store.exists():
        shutil.rmtree(store)
    os.replace(partial, store)
    return store


def _create_store(path: Path, frame: xr.DataArray, block: xr.Dataset, tiling: GridTiling) -> None:
    import dask.array as da

    ny, nx = frame.shape
    variables = {}
    for name, variable in block.data_vars.items():
        shape = (ny, nx, *variable.shape[2:])
        chunks = (tiling.tile_pixels, tiling.tile_pixels, *variable.shape[2:])
        variables[name] = (variable.dims, da.full(shape, np.nan, chunks=chunks), variable.attrs)
    coords = {conventions.Y: frame[conventions.Y].values, conventions.X: frame[conventions.X].values}
    coords.update({name: block[name] for name in block.coords if name not in (conventions.Y, conventions.X)})
    if "time" in frame.coords:
        coords["time"] = frame["time"]
    template = xr.Dataset(
        variables,
        coords=coords,
        attrs={
            key: value
            for key, value in block.attrs.items()
            if key not in ("task", "fit_seconds", "predict_seconds")
        },
    )
    template[conventions.Y].attrs.update(frame[conventions.Y].attrs)
    template[conventions.X].attrs.update(frame[conventions.X].attrs)
    template.to_zarr(path, compute=False, mode="w", consolidated=False, zarr_format=3)
