"""Whole-frame prediction tile by tile, with a halo of context around each tile, streamed to zarr.

A frame ``precipitation(y, x)`` is cut into square tiles of ``tile_pixels``. Each tile is one
:class:`~weatherunc.tasks.Task`: its targets are the tile's pixels (the unobserved ones, or
all), its contexts the observed pixels in the tile and a halo of ``halo_pixels`` around it, at
most ``max_context`` (a random subset drawn with a seed derived from the frame seed and the
tile, so a recomputed tile is identical). Any registered model predicts the task; the tile's
output is written into its region of the zarr store, whose chunks are the tiles, so memory
stays bounded by one tile whatever the frame size.

:func:`seam_ratio` measures how much a tiled map jumps where its tiles meet.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyproj
import xarray as xr
from tqdm import tqdm

from weatherunc import conventions
from weatherunc.geolocation import grid_mapping
from weatherunc.models.registry import Interpolator
from weatherunc.store import COMPLETE_ATTRIBUTE
from weatherunc.tasks import Task, planar_kilometres


@dataclass(frozen=True)
class GridTiling:
    """Tile size, halo and context cap [pixels]; ``targets``: "unobserved" pixels or "all";
    ``blend_pixels``: how far tiles reach into their neighbours to be blended with them where
    the caller blends (:mod:`weatherunc.blending`; at most half a tile)."""

    tile_pixels: int = 64
    halo_pixels: int = 32
    max_context: int = 2000
    targets: Literal["unobserved", "all"] = "unobserved"
    seed: int = 0
    blend_pixels: int = 0

    def __post_init__(self) -> None:
        if self.tile_pixels < 1 or self.halo_pixels < 0 or self.max_context < 1:
            raise ValueError(f"tile_pixels >= 1, halo_pixels >= 0 and max_context >= 1 required, got {self}")
        if not 0 <= self.blend_pixels <= self.tile_pixels // 2:
            raise ValueError(
                f"blend_pixels must be from 0 to half of tile_pixels={self.tile_pixels}, got "
                f"{self.blend_pixels}"
            )


@dataclass(frozen=True)
class Tile:
    """One tile: its number, row and column ranges."""

    number: int
    rows: slice
    columns: slice


def grid_tiles(shape: tuple[int, int], tile_pixels: int) -> list[Tile]:
    """Tiles covering a ``(ny, nx)`` grid, row-major."""
    ny, nx = shape
    tiles = []
    for top in range(0, ny, tile_pixels):
        for left in range(0, nx, tile_pixels):
            tiles.append(
                Tile(
                    len(tiles),
                    slice(top, min(top + tile_pixels, ny)),
                    slice(left, min(left + tile_pixels, nx)),
                )
            )
    return tiles


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
    ``[ny, nx]``) names the pixels to predict, else ``tiling.targets`` decides.
    """
    ny, nx = values.shape
    top, bottom = max(0, tile.rows.start - tiling.halo_pixels), min(ny, tile.rows.stop + tiling.halo_pixels)
    left, right = (
        max(0, tile.columns.start - tiling.halo_pixels),
        min(nx, tile.columns.stop + tiling.halo_pixels),
    )
    region = values[top:bottom, left:right]
    context_rows, context_columns = np.nonzero(np.isfinite(region))
    if context_rows.size == 0:
        return None
    if context_rows.size > tiling.max_context:
        rng = np.random.default_rng([tiling.seed, tile.number])
        keep = np.sort(rng.choice(context_rows.size, tiling.max_context, replace=False))
        context_rows, context_columns = context_rows[keep], context_columns[keep]
    context_rows, context_columns = context_rows + top, context_columns + left
    block = values[tile.rows, tile.columns]
    if target_mask is not None:
        wanted = target_mask[tile.rows, tile.columns]
    else:
        wanted = ~np.isfinite(block) if tiling.targets == "unobserved" else np.ones(block.shape, dtype=bool)
    target_rows, target_columns = np.nonzero(wanted)
    if target_rows.size == 0:
        return None
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
    predict."""
    task = tile_task(values, x_km, y_km, tile, tiling, target_mask)
    if task is None:
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


def seam_ratio(mean: np.ndarray, tile_pixels: int, rows: slice, columns: slice) -> tuple[float, float, float]:
    """How much a tiled map jumps where tiles meet: ``(ratio, jump, step)`` inside the region
    ``mean[rows, columns]`` of a ``[ny, nx]`` map tiled by :func:`grid_tiles`, where ``jump`` is
    the mean absolute difference between neighbouring pixels on either side of a tile edge and
    ``step`` the mean absolute difference between the other neighbouring pixels; ``ratio`` is
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
    """Every tile and its prediction (None where there is nothing to predict), in order."""
    values, x_km, y_km = frame_axes(frame, crs)
    for tile in tqdm(
        grid_tiles(values.shape, tiling.tile_pixels), desc="tiles", disable=not progress, leave=False
    ):
        yield tile, predict_tile(model, values, x_km, y_km, tile, tiling, target_mask)


def predict_grid(
    model: Interpolator,
    frame: xr.DataArray,
    *,
    crs: pyproj.CRS | str,
    tiling: GridTiling = GridTiling(),
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
    tiling: GridTiling = GridTiling(),
    target_mask: np.ndarray | None = None,
    progress: bool = True,
) -> Path:
    """Predict a whole frame tile by tile and stream each tile into its zarr region.

    Written to ``STORE.partial`` and renamed to ``store`` once every tile is in, with the root
    attribute ``weatherunc_complete`` set last; a crash leaves no ``store`` behind.
    Chunks are the tiles, so no two tiles write the same chunk.
    """
    store = Path(store)
    partial = store.with_name(store.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if target_mask is not None:
        frame, _ = mask_frame(frame, target_mask)
    values, x_km, y_km = frame_axes(frame, crs)
    created = False
    for tile in tqdm(
        grid_tiles(values.shape, tiling.tile_pixels), desc="tiles", disable=not progress, leave=False
    ):
        block = predict_tile(model, values, x_km, y_km, tile, tiling, target_mask)
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
