"""The tiling of a frame: one spec (:class:`GridTiling`) and the tiles, halo windows and extended
tiles it defines.

A ``(ny, nx)`` grid is cut into square tiles of ``tile_pixels``, row-major (:func:`grid_tiles`;
the tiles at the bottom and right edges are cut short). A tile's contexts come from its halo
window, the tile grown by ``halo_pixels`` on every side within the grid (:func:`halo_window`);
where tiles are blended, each tile is predicted on its extended tile, the tile grown by
``blend_pixels`` (:func:`extended_tile`), whose own halo window then gives its contexts.

Every caller that tiles a frame takes a :class:`GridTiling`: :func:`weatherunc.fill`,
:func:`weatherunc.gridding.predict_grid` and :func:`~weatherunc.gridding.predict_grid_to_zarr`,
:func:`weatherunc.blending.predict_blended` and the batch jobs (whose YAML ``tiling`` section,
:class:`weatherunc.pipelines.job_config.TilingOptions`, converts to one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class GridTiling:
    """How a frame is tiled: tile size, halo and context cap [pixels]; ``targets``: "unobserved"
    pixels or "all"; ``seed`` of each tile's random context subset (drawn with the tile's number,
    so a recomputed tile is identical); ``blend_pixels``: how far tiles reach into their
    neighbours to be blended with them (:mod:`weatherunc.blending`; 0: not blended, at most half
    a tile). ``contexts``: where a tile has more than ``max_context`` observed pixels in its halo
    window, which it keeps: "random", a random subset; "nearest", the half of ``max_context``
    nearest to its targets and a random subset of the others (local kriging's nearest-neighbour
    search, with the far field kept for the covariance structure:
    :func:`weatherunc.tile_prediction.tile_task`)."""

    tile_pixels: int = 64
    halo_pixels: int = 32
    max_context: int = 2000
    targets: Literal["unobserved", "all"] = "unobserved"
    seed: int = 0
    blend_pixels: int = 0
    contexts: Literal["random", "nearest"] = "random"

    def __post_init__(self) -> None:
        if self.tile_pixels < 1 or self.halo_pixels < 0 or self.max_context < 1:
            raise ValueError(f"tile_pixels >= 1, halo_pixels >= 0 and max_context >= 1 required, got {self}")
        check_blend_pixels(self.tile_pixels, self.blend_pixels)
        if self.contexts not in ("random", "nearest"):
            raise ValueError(f"contexts must be 'random' or 'nearest', got {self.contexts!r}")

    def pixels_to_predict(self, values: np.ndarray, target_mask: np.ndarray | None = None) -> np.ndarray:
        """Which pixels of ``values`` ``[ny, nx]`` (NaN = unobserved) to predict, bool ``[ny, nx]``:
        ``target_mask`` where given, else the unobserved pixels or all of them (``targets``)."""
        if target_mask is not None:
            return target_mask
        return ~np.isfinite(values) if self.targets == "unobserved" else np.ones(values.shape, dtype=bool)

    def tiles(self, shape: tuple[int, int]) -> list[Tile]:
        """The tiles covering a ``(ny, nx)`` grid (:func:`grid_tiles`)."""
        return grid_tiles(shape, self.tile_pixels)

    def context_window(self, tile: Tile, shape: tuple[int, int]) -> Tile:
        """The pixels a tile's contexts come from: ``tile`` grown by ``halo_pixels`` (:func:`halo_window`)."""
        return halo_window(tile, shape, self.halo_pixels)

    def extended(self, tile: Tile, shape: tuple[int, int]) -> Tile:
        """The region a blended tile is predicted on: ``tile`` grown by ``blend_pixels``
        (:func:`extended_tile`)."""
        return extended_tile(tile, shape, self.blend_pixels)


def check_blend_pixels(tile_pixels: int, blend_pixels: int) -> None:
    """``ValueError`` unless ``0 <= blend_pixels <= tile_pixels // 2`` (so that at most a tile and
    its neighbours overlap at any pixel)."""
    if not 0 <= blend_pixels <= tile_pixels // 2:
        raise ValueError(
            f"blend_pixels must be from 0 to half of tile_pixels={tile_pixels}, got {blend_pixels}"
        )


#: The default tiling: the defaults every caller and the job YAML share.
DEFAULT_TILING = GridTiling()


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


def halo_window(tile: Tile, shape: tuple[int, int], halo_pixels: int) -> Tile:
    """``tile`` (same number) grown by ``halo_pixels`` on every side, within the ``(ny, nx)`` grid."""
    ny, nx = shape
    return Tile(
        tile.number,
        slice(max(0, tile.rows.start - halo_pixels), min(ny, tile.rows.stop + halo_pixels)),
        slice(max(0, tile.columns.start - halo_pixels), min(nx, tile.columns.stop + halo_pixels)),
    )


def extended_tile(tile: Tile, shape: tuple[int, int], blend_pixels: int) -> Tile:
    """``tile`` grown by ``blend_pixels`` on every side, within the ``(ny, nx)`` grid: the region a
    blended tile is predicted on."""
    return halo_window(tile, shape, blend_pixels)


def overlapping_tiles(tile: Tile, shape: tuple[int, int], tiling: GridTiling) -> list[Tile]:
    """The tiles of ``tiling`` whose extended tiles cover some pixel of ``tile``: the tile itself
    and, with ``blend_pixels`` > 0, those of its (up to 8) neighbours that reach it, in
    :func:`grid_tiles`' order. With ``blend_pixels`` at most half a tile no other tile reaches it."""
    size = tiling.tile_pixels
    tile_rows, tile_columns = -(-shape[0] // size), -(-shape[1] // size)
    row, column = tile.rows.start // size, tile.columns.start // size
    found = []
    for other_row in range(max(0, row - 1), min(tile_rows, row + 2)):
        for other_column in range(max(0, column - 1), min(tile_columns, column + 2)):
            top, left = other_row * size, other_column * size
            other = Tile(
                other_row * tile_columns + other_column,
                slice(top, min(top + size, shape[0])),
                slice(left, min(left + size, shape[1])),
            )
            reach = tiling.extended(other, shape)
            if _overlap(reach.rows, tile.rows) and _overlap(reach.columns, tile.columns):
                found.append(other)
    return found


def _overlap(first: slice, second: slice) -> bool:
    return first.start < second.stop and second.start < first.stop
