"""One tiling spec: the tiles, halo windows and neighbours of :mod:`weatherunc.tiling`, the job YAML's
``tiling`` as that spec (defaults and fingerprints unchanged), and blending tile by tile, as
:func:`~weatherunc.gridding.predict_grid_to_zarr` and the jobs do, equal to blending a whole frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyproj
import pytest
import xarray as xr

from weatherunc import conventions
from weatherunc.blending import BLENDED_VARIABLES, predict_blended, predict_blended_tile
from weatherunc.gridding import predict_grid_to_zarr
from weatherunc.models.registry import get_model
from weatherunc.pipelines.job_config import JobConfig, TilingOptions
from weatherunc.tile_prediction import frame_axes, predict_tile, tile_task
from weatherunc.tiling import (
    DEFAULT_TILING,
    GridTiling,
    Tile,
    extended_tile,
    grid_tiles,
    halo_window,
    overlapping_tiles,
)

CRS = pyproj.CRS.from_epsg(3035)


def _field(ny: int = 40, nx: int = 44) -> xr.DataArray:
    """A smooth rain field ``[ny, nx]`` with a gap across tile edges and scattered unobserved pixels."""
    rng = np.random.default_rng(2)
    values = 1.5 + np.sin(np.arange(ny)[:, None] / 6.0) * np.cos(np.arange(nx)[None] / 5.0)
    values = values + rng.gamma(1.0, 0.2, (ny, nx))
    values[10:26, 12:30] = np.nan
    values[rng.random((ny, nx)) < 0.1] = np.nan
    return xr.DataArray(
        values,
        dims=("y", "x"),
        coords={"y": 4e6 - 1000.0 * np.arange(ny), "x": 3e6 + 1000.0 * np.arange(nx)},
        attrs={"units": "mm h-1"},
    )


def test_halo_windows_and_extended_tiles_stay_in_the_grid() -> None:
    shape = (30, 21)
    tiles = grid_tiles(shape, 8)
    assert [tile.number for tile in tiles] == list(range(12)) and tiles[-1] == Tile(
        11, slice(24, 30), slice(16, 21)
    )
    assert halo_window(tiles[4], shape, 3) == Tile(4, slice(5, 19), slice(5, 19))
    assert halo_window(tiles[5], shape, 3) == Tile(5, slice(5, 19), slice(13, 21))
    assert halo_window(tiles[0], shape, 3) == Tile(0, slice(0, 11), slice(0, 11))
    assert extended_tile(tiles[-1], shape, 4) == Tile(11, slice(20, 30), slice(12, 21))
    tiling = GridTiling(tile_pixels=8, halo_pixels=3, blend_pixels=4)
    assert tiling.tiles(shape) == tiles and tiling.context_window(tiles[5], shape) == halo_window(
        tiles[5], shape, 3
    )


@pytest.mark.parametrize(
    ("shape", "tile_pixels", "blend_pixels"), [((30, 21), 8, 0), ((30, 21), 8, 4), ((17, 40), 6, 1)]
)
def test_overlapping_tiles_are_those_whose_extended_tiles_reach_the_tile(
    shape: tuple[int, int], tile_pixels: int, blend_pixels: int
) -> None:
    tiling = GridTiling(tile_pixels=tile_pixels, blend_pixels=blend_pixels)
    tiles = tiling.tiles(shape)
    for tile in tiles:
        reach = np.zeros(shape, dtype=bool)
        reach[tile.rows, tile.columns] = True
        expected = [
            other
            for other in tiles
            if reach[tiling.extended(other, shape).rows, tiling.extended(other, shape).columns].any()
        ]
        assert overlapping_tiles(tile, shape, tiling) == expected
        assert len(expected) == 1 if blend_pixels == 0 else len(expected) >= 1


def test_job_tiling_is_the_grid_tiling_with_unchanged_defaults_and_fingerprints() -> None:
    options = TilingOptions()
    assert (options.halo_pixels, options.max_context, options.blend_pixels) == (
        DEFAULT_TILING.halo_pixels,
        DEFAULT_TILING.max_context,
        DEFAULT_TILING.blend_pixels,
    )
    assert options.tile_pixels == 128  # the jobs' own default: their tiles are the zarr chunks
    assert options.to_tiling(seed=7) == GridTiling(tile_pixels=128, seed=7)
    job = {"name": "j", "dataset": "d", "model": {"name": "idw"}, "tiling": {"tile_pixels": 64}}
    old = JobConfig(**job)
    explicit = JobConfig(**{**job, "tiling": {"tile_pixels": 64, "blend_pixels": 0}})
    assert old.description()["tiling"] == {"tile_pixels": 64, "halo_pixels": 32, "max_context": 2000}
    assert explicit.fingerprint() == old.fingerprint()
    blended = JobConfig(**{**job, "tiling": {"tile_pixels": 64, "blend_pixels": 8}})
    assert blended.description()["tiling"]["blend_pixels"] == 8 and blended.fingerprint() != old.fingerprint()
    assert blended.tiling.to_tiling(seed=1).blend_pixels == 8
    with pytest.raises(ValueError, match="blend_pixels must be from 0 to half of tile_pixels=64"):
        JobConfig(**{**job, "tiling": {"tile_pixels": 64, "blend_pixels": 33}})
    random = JobConfig(**{**job, "tiling": {"tile_pixels": 64, "contexts": "random"}})
    nearest = JobConfig(**{**job, "tiling": {"tile_pixels": 64, "contexts": "nearest"}})
    assert random.fingerprint() == old.fingerprint() and nearest.fingerprint() != old.fingerprint()
    assert nearest.tiling.to_tiling(seed=1).contexts == "nearest"
    with pytest.raises(ValueError, match="contexts"):
        JobConfig(**{**job, "tiling": {"contexts": "closest"}})
    with pytest.raises(ValueError, match="contexts must be 'random' or 'nearest', got 'closest'"):
        GridTiling(contexts="closest")


def test_nearest_contexts_keep_the_pixels_nearest_to_the_targets_and_a_random_far_field() -> None:
    values, x_km, y_km = frame_axes(_field(), CRS)
    tile = Tile(0, slice(8, 28), slice(10, 32))  # around the 16 x 18 px gap
    observed = np.isfinite(values[tile.rows, tile.columns].copy())
    gap = ~observed
    for contexts in ("random", "nearest"):
        tiling = GridTiling(tile_pixels=22, halo_pixels=6, max_context=200, contexts=contexts)
        task = tile_task(values, x_km, y_km, tile, tiling)
        again = tile_task(values, x_km, y_km, tile, tiling)
        np.testing.assert_array_equal(task.context_coordinates, again.context_coordinates)
        assert task.n_context == 200 and task.n_target == gap.sum()
        distances = np.linalg.norm(
            task.context_coordinates[:, None] - task.target_coordinates[None], axis=2
        ).min(1)  # [n] km to the nearest target (1 km pixels here)
        window = tiling.context_window(tile, values.shape)
        rows, columns = np.nonzero(np.isfinite(values[window.rows, window.columns]))
        every = np.linalg.norm(
            np.stack([x_km[columns + window.columns.start], y_km[rows + window.rows.start]], 1)[:, None]
            - task.target_coordinates[None],
            axis=2,
        ).min(1)  # every observed pixel of the window
        if contexts == "nearest":
            # the 100 nearest observed pixels are all kept, and the other 100 reach beyond them
            assert np.sort(distances)[:100].max() <= np.sort(every)[99] + 1e-9
            assert np.sum(distances > np.sort(every)[99] + 1e-9) >= 90
            assert (distances <= 1.0 + 1e-9).sum() == (every <= 1.0 + 1e-9).sum()  # the gap's rim
        else:
            assert (distances <= 1.0 + 1e-9).sum() < (every <= 1.0 + 1e-9).sum()


def test_without_blending_a_tile_is_its_own_prediction() -> None:
    values, x_km, y_km = frame_axes(_field(), CRS)
    tiling = GridTiling(tile_pixels=16, halo_pixels=6)
    model = get_model("idw")
    for tile in tiling.tiles(values.shape):
        own = predict_tile(model, values, x_km, y_km, tile, tiling)
        block = predict_blended_tile(model, values, x_km, y_km, tile, tiling)
        assert (own is None and block is None) or own.equals(block)  # timings in the attributes differ


def test_blending_tile_by_tile_equals_blending_the_frame(tmp_path: Path) -> None:
    frame = _field()
    tiling = GridTiling(tile_pixels=16, halo_pixels=6, blend_pixels=5)
    model = get_model("idw")
    whole, _ = predict_blended(model, frame, crs=CRS, tiling=tiling, share_fit=False, progress=False)
    store = predict_grid_to_zarr(
        model, frame, tmp_path / "blended.zarr", crs=CRS, tiling=tiling, progress=False
    )
    tiled = xr.open_zarr(store, consolidated=False).load()
    for name in BLENDED_VARIABLES:
        np.testing.assert_allclose(tiled[name].values, whole[name], rtol=1e-12, atol=1e-12, err_msg=name)
    observed = np.isfinite(frame.values)
    assert np.isnan(tiled[conventions.PRECIPITATION_MEAN].values[observed]).all()
    # rain probability, pooled like the bins, is still the sum of the bins above each threshold
    bins, lower = tiled[conventions.BIN_PROBABILITY].values, tiled[conventions.BIN_LOWER].values
    for number, threshold in enumerate(tiled[conventions.RAIN_PROBABILITY][conventions.THRESHOLD].values):
        above = bins[..., np.isclose(lower, threshold) | (lower > threshold)].sum(-1)
        np.testing.assert_allclose(tiled[conventions.RAIN_PROBABILITY].values[..., number], above, atol=1e-9)


def test_a_job_blends_its_tiles_when_asked(tmp_path: Path) -> None:
    from weatherunc.pipelines.run_job import run_job

    job = {
        "name": "blended",
        "dataset": "mrms_embedded",
        "frames": {"start": "2019-06-10T00:30", "limit": 1},
        "targets": {"mode": "withheld", "blocks": 3, "block_pixels": 24, "min_wet_fraction": 0.2},
        "model": {"name": "idw"},
        "plots": {"enabled": False},
        "output_dir": str(tmp_path),
    }
    stores = {}
    for blend in (0, 8):
        tiling = {"tile_pixels": 64, "halo_pixels": 16, "max_context": 1000, "blend_pixels": blend}
        config = JobConfig(**{**job, "name": f"blend{blend}", "tiling": tiling})
        stores[blend] = xr.open_zarr(run_job(config, scheduler="synchronous", progress=False).store).load()
    plain, blended = stores[0][conventions.PRECIPITATION_MEAN], stores[8][conventions.PRECIPITATION_MEAN]
    assert np.array_equal(np.isfinite(plain.values), np.isfinite(blended.values))  # the same targets
    assert not np.allclose(plain.values, blended.values, equal_nan=True)  # blended across tile edges
    assert json.loads(stores[8].attrs["job_config"])["tiling"]["blend_pixels"] == 8
