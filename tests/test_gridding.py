"""Whole-frame prediction tile by tile: coverage of tiles, halo contexts, stitching, zarr streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyproj
import pytest
import torch
import xarray as xr

from weatherunc.gridding import predict_grid, predict_grid_to_zarr, seam_ratio
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import NeuralProcessInterpolator, TileOptions
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.models.predictive import to_grid
from weatherunc.models.registry import get_model
from weatherunc.tasks import random_pixels
from weatherunc.tile_prediction import tile_task
from weatherunc.tiling import GridTiling, grid_tiles

CRS = pyproj.CRS.from_epsg(3035)


def _frame(ny: int = 36, nx: int = 44, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    values = np.maximum(3 * np.sin(xx / 6.0) * np.cos(yy / 9.0) + rng.normal(0, 0.2, (ny, nx)), 0.0)
    values[5:15, 8:20] = np.nan  # a radar gap
    return xr.DataArray(
        values,
        dims=("y", "x"),
        coords={"y": 4e6 - 1000.0 * np.arange(ny), "x": 3e6 + 1000.0 * np.arange(nx)},
        name="precipitation",
    )


def test_tiles_cover_the_grid_exactly_once() -> None:
    counts = np.zeros((70, 45), dtype=int)
    for tile in grid_tiles((70, 45), 32):
        counts[tile.rows, tile.columns] += 1
    assert np.all(counts == 1) and len(grid_tiles((70, 45), 32)) == 6


def test_tile_task_takes_halo_contexts_and_unobserved_targets() -> None:
    frame = _frame()
    values = frame.values
    x_km, y_km = frame.x.values / 1000, frame.y.values / 1000
    tile = grid_tiles(values.shape, 16)[0]  # rows 0-16, columns 0-16
    task = tile_task(values, x_km, y_km, tile, GridTiling(tile_pixels=16, halo_pixels=4))
    assert set(zip(task.target_coords["row"], task.target_coords["column"])) == {
        (r, c) for r in range(5, 15) for c in range(8, 16)
    }
    assert task.context_coordinates[:, 0].max() == pytest.approx(x_km[19]) and task.context_coordinates[
        :, 1
    ].min() == pytest.approx(y_km[19])
    capped = tile_task(
        values, x_km, y_km, tile, GridTiling(tile_pixels=16, halo_pixels=4, max_context=50, seed=3)
    )
    again = tile_task(
        values, x_km, y_km, tile, GridTiling(tile_pixels=16, halo_pixels=4, max_context=50, seed=3)
    )
    assert capped.n_context == 50
    np.testing.assert_array_equal(capped.context_coordinates, again.context_coordinates)
    assert (
        tile_task(values, x_km, y_km, grid_tiles(values.shape, 16)[2], GridTiling(tile_pixels=16)) is None
    )  # no gap there


def _neural_process() -> NeuralProcessInterpolator:
    torch.manual_seed(0)
    model = NeuralProcess(
        NeuralProcessConfig(hidden=16, latent_dimension=4, heads=2, self_attention_layers=1)
    )
    return NeuralProcessInterpolator(
        model=model, samples=4, tiles=TileOptions(tile_km=8, halo_km=12, max_context=10_000)
    )


def test_stitched_tiles_equal_untiled_prediction_when_the_halo_covers_the_contexts() -> None:
    frame = _frame()
    model = _neural_process()
    everything = GridTiling(tile_pixels=12, halo_pixels=100, max_context=10_000, targets="all")
    stitched = predict_grid(model, frame, crs=CRS, tiling=everything, progress=False)
    whole = random_pixels(
        frame, context_fraction=1.0, max_target=None, crs=CRS
    )  # every observed pixel as context
    whole = type(whole)(
        whole.context_coordinates,
        whole.context_values,
        *_all_pixels(frame),
        target_coords=_all_pixels_coords(frame),
    )
    untiled = to_grid(model.predict(whole), frame)
    np.testing.assert_allclose(
        stitched.transformed_mean.values, untiled.transformed_mean.values, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        stitched.transformed_std.values, untiled.transformed_std.values, rtol=1e-5, atol=1e-6
    )


def _all_pixels(frame: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    rows, columns = np.meshgrid(np.arange(frame.shape[0]), np.arange(frame.shape[1]), indexing="ij")
    coordinates = np.stack(
        [frame.x.values[columns.ravel()] / 1000, frame.y.values[rows.ravel()] / 1000], axis=1
    )
    return coordinates, frame.values.ravel()


def _all_pixels_coords(frame: xr.DataArray) -> dict[str, np.ndarray]:
    rows, columns = np.meshgrid(np.arange(frame.shape[0]), np.arange(frame.shape[1]), indexing="ij")
    return {"row": rows.ravel(), "column": columns.ravel()}


def test_target_mask_hides_and_keeps_the_truth() -> None:
    frame = _frame().fillna(0.5)
    mask = np.zeros(frame.shape, dtype=bool)
    mask[20:30, 25:40] = True
    prediction = predict_grid(
        get_model("idw"),
        frame,
        crs=CRS,
        tiling=GridTiling(tile_pixels=16, halo_pixels=8),
        target_mask=mask,
        progress=False,
    )
    np.testing.assert_array_equal(prediction.precipitation_mean.notnull().values, mask)
    np.testing.assert_array_equal(prediction.precipitation.isnull().values, mask)
    np.testing.assert_allclose(prediction.withheld_precipitation.values[mask], frame.values[mask])
    assert prediction.crs.attrs["crs_wkt"] and prediction.precipitation_mean.attrs["grid_mapping"] == "crs"
    with pytest.raises(ValueError, match="target_mask must be a boolean array"):
        predict_grid(get_model("idw"), frame, crs=CRS, target_mask=mask[:5])


def test_crs_may_be_a_string() -> None:
    frame = _frame()
    tiling = GridTiling(tile_pixels=16, halo_pixels=8)
    from_string = predict_grid(get_model("idw"), frame, crs="EPSG:3035", tiling=tiling, progress=False)
    from_object = predict_grid(get_model("idw"), frame, crs=CRS, tiling=tiling, progress=False)
    xr.testing.assert_identical(from_string, from_object)
    assert pyproj.CRS.from_wkt(from_string.crs.attrs["crs_wkt"]) == CRS


class _FailingModel:
    name = "failing"

    def __init__(self, fail_at: int) -> None:
        self.calls, self.fail_at = 0, fail_at

    def predict(self, task):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("worker lost")
        return get_model("idw").predict(task)


def test_zarr_stream_equals_memory_and_a_crash_leaves_the_old_store(tmp_path: Path) -> None:
    frame = _frame(60, 60).where(lambda values: ~((values.x > 3.02e6) & (values.y < 3.975e6)))
    tiling = GridTiling(tile_pixels=16, halo_pixels=8)
    store = predict_grid_to_zarr(
        get_model("idw"), frame, tmp_path / "out.zarr", crs=CRS, tiling=tiling, progress=False
    )
    streamed = xr.open_zarr(store, consolidated=False).load()
    assert streamed.attrs["weatherunc_complete"] == 1
    in_memory = predict_grid(get_model("idw"), frame, crs=CRS, tiling=tiling, progress=False)
    xr.testing.assert_allclose(streamed.drop_attrs(), in_memory.drop_attrs())
    with pytest.raises(RuntimeError, match="worker lost"):
        predict_grid_to_zarr(_FailingModel(fail_at=3), frame, store, crs=CRS, tiling=tiling, progress=False)
    xr.testing.assert_identical(xr.open_zarr(store, consolidated=False).load(), streamed)  # untouched


def test_seam_ratio_measures_jumps_at_tile_edges_only() -> None:
    ramp = np.add.outer(np.arange(32.0), np.arange(32.0)) * 0.1  # steps of 0.1 everywhere
    ratio, jump, step = seam_ratio(ramp, 16, slice(8, 24), slice(8, 24))
    assert (ratio, jump, step) == pytest.approx((1.0, 0.1, 0.1))
    seamed = ramp.copy()
    seamed[16:, :] += 1.0  # a jump between rows 15 and 16: a tile edge
    ratio, jump, _ = seam_ratio(seamed, 16, slice(8, 24), slice(8, 24))
    # half the edge pairs (rows) jump by 1.1, the other half (columns) step by 0.1
    assert jump == pytest.approx(0.6) and ratio == pytest.approx(6.0)
    with pytest.raises(ValueError, match="no edge of 16-pixel tiles"):
        seam_ratio(ramp, 16, slice(0, 10), slice(0, 10))
