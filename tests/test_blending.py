"""Blending overlapping tiles: weights that sum to one, the mixture's outputs in closed form and
by bisection, no change without blending, and maps without seams."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import xarray as xr
from scipy import stats

import weatherunc
from weatherunc import conventions
from weatherunc.blending import TileBlender, predict_blended, ramp_weights, tile_slot
from weatherunc.gridding import predict_grid, seam_ratio
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.models.gp import GaussianProcessConfig
from weatherunc.models.predictive import prediction_dataset
from weatherunc.models.registry import get_model
from weatherunc.prediction import epistemic_share
from weatherunc.tasks import Task
from weatherunc.tiling import GridTiling, Tile, extended_tile, grid_tiles
from weatherunc.transforms import PrecipitationTransform

CRS = pyproj.CRS.from_epsg(3035)


@pytest.mark.parametrize(
    ("shape", "tile_pixels", "blend_pixels"), [((50, 70), 16, 8), ((33, 40), 12, 3), ((20, 20), 8, 0)]
)
def test_ramp_weights_of_all_tiles_sum_to_one(shape, tile_pixels: int, blend_pixels: int) -> None:
    total = np.zeros(shape)
    slots = np.zeros((4, *shape))
    for tile in grid_tiles(shape, tile_pixels):
        extended = extended_tile(tile, shape, blend_pixels)
        weights = ramp_weights(tile, shape, blend_pixels)
        assert weights.shape == (
            extended.rows.stop - extended.rows.start,
            extended.columns.stop - extended.columns.start,
        )
        assert np.all(weights[tile.rows.start - extended.rows.start, :] >= 0)
        total[extended.rows, extended.columns] += weights
        slots[tile_slot(tile, tile_pixels), extended.rows, extended.columns] += weights > 0
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    assert slots.max() == 1  # neighbouring tiles never share a slot


def _block(
    rows: slice, columns: slice, mean: float, std: float, offset: float, shape: tuple[int, int]
) -> xr.Dataset:
    """A prediction of ``N(mean, std)`` in log(rate + offset) space on a region, as a model gives."""
    height, width = rows.stop - rows.start, columns.stop - columns.start
    targets = np.stack(np.meshgrid(np.arange(height), np.arange(width), indexing="ij"), -1).reshape(-1, 2)
    task = Task(np.array([[0.0, 0.0]]), np.array([1.0]), targets.astype(float), np.full(len(targets), np.nan))
    transform = PrecipitationTransform(kind="log", offset=offset)
    prediction = with_bin_probabilities(
        prediction_dataset(
            task,
            transformed_mean=np.full(len(targets), mean),
            latent_variance=np.zeros(len(targets)),
            noise_variance=np.full(len(targets), std**2),
            transform=transform,
            model="constant",
        )
    )
    return xr.Dataset(
        {
            name: (
                (conventions.Y, conventions.X, *variable.dims[1:]),
                variable.values.reshape(height, width, *variable.shape[1:]),
                variable.attrs,
            )
            for name, variable in prediction.data_vars.items()
        },
        coords={name: prediction[name] for name in prediction.coords if name not in ("row", "column")},
        attrs=prediction.attrs,
    )


def test_the_mixture_of_two_tiles_is_their_weighted_pool() -> None:
    shape, tile_pixels, blend = (8, 16), 8, 4
    left, right = Tile(0, slice(0, 8), slice(0, 8)), Tile(1, slice(0, 8), slice(8, 16))
    blender = TileBlender(shape, tile_pixels, blend)
    parts = {}
    for tile, (mean, std, offset) in ((left, (0.2, 0.5, 1.0)), (right, (1.5, 0.9, 0.3))):
        extended = extended_tile(tile, shape, blend)
        parts[tile.number] = _block(extended.rows, extended.columns, mean, std, offset, shape)
        blender.add(tile, parts[tile.number])
    result = blender.result()
    # column 8 is right of the edge: the left tile's weight there is (8 + 4 - 8.5) / 8
    weight = (12 - 8.5) / 8
    first, second = parts[0].isel(y=0, x=8), parts[1].isel(y=0, x=4)
    mean = weight * first.precipitation_mean.item() + (1 - weight) * second.precipitation_mean.item()
    assert result[conventions.PRECIPITATION_MEAN][0, 8] == pytest.approx(mean)
    second_moment = weight * (first.precipitation_std.item() ** 2 + first.precipitation_mean.item() ** 2) + (
        1 - weight
    ) * (second.precipitation_std.item() ** 2 + second.precipitation_mean.item() ** 2)
    assert result[conventions.PRECIPITATION_STD][0, 8] == pytest.approx(np.sqrt(second_moment - mean**2))
    np.testing.assert_allclose(
        result[conventions.BIN_PROBABILITY][0, 8],
        weight * first.bin_probability.values + (1 - weight) * second.bin_probability.values,
    )
    levels = parts[0]["quantile"].values
    quantiles = result[conventions.PRECIPITATION_QUANTILE][0, 8]
    cdf = weight * stats.norm.cdf((np.log(quantiles + 1.0) - 0.2) / 0.5) + (1 - weight) * stats.norm.cdf(
        (np.log(quantiles + 0.3) - 1.5) / 0.9
    )
    wet = quantiles > 0
    np.testing.assert_allclose(cdf[wet], levels[wet], atol=1e-9)
    # far from the edge, one tile: its own outputs exactly
    for name in (
        conventions.PRECIPITATION_MEAN,
        conventions.PRECIPITATION_STD,
        conventions.PRECIPITATION_QUANTILE,
    ):
        np.testing.assert_array_equal(result[name][:, :4], parts[0][name].values[:, :4])


def _field(ny: int = 48, nx: int = 48, seed: int = 3) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    values = np.maximum(
        2.0 + 2.0 * np.sin(xx / 7.0) + 1.5 * np.cos(yy / 5.0) + rng.normal(0, 0.3, (ny, nx)), 0.0
    )
    values[12:36, 12:36] = np.nan  # a gap across the edges of 24-pixel tiles
    return xr.DataArray(
        values,
        dims=("y", "x"),
        coords={"y": 4e6 - 1000.0 * np.arange(ny), "x": 3e6 + 1000.0 * np.arange(nx)},
        attrs={"units": "mm h-1"},
    )


def test_without_blending_the_tiles_are_unchanged() -> None:
    frame = _field()
    tiling = GridTiling(tile_pixels=24, halo_pixels=12)
    outputs, _ = predict_blended(get_model("idw"), frame, crs=CRS, tiling=tiling, progress=False)
    reference = with_bin_probabilities(
        predict_grid(get_model("idw"), frame, crs=CRS, tiling=tiling, progress=False)
    )
    share = epistemic_share(
        reference[conventions.LATENT_VARIANCE].values, reference[conventions.NOISE_VARIANCE].values
    )
    assert outputs.keys() >= {conventions.EPISTEMIC_SHARE, conventions.PRECIPITATION_MEAN}
    for name, values in outputs.items():
        expected = share if name == conventions.EPISTEMIC_SHARE else reference[name].values
        np.testing.assert_array_equal(values, expected, err_msg=name)


@pytest.mark.parametrize("model", ["kriging", "gp"])
def test_blended_fills_have_no_seams(model: str) -> None:
    frame = _field()
    options = {"config": GaussianProcessConfig(fit_iterations=10)} if model == "gp" else {}
    interpolator = get_model(model, **options)
    ratios = {}
    for blend in (0, 8):
        tiling = GridTiling(tile_pixels=24, halo_pixels=12, max_context=200, blend_pixels=blend)
        filled = weatherunc.fill(frame, model=interpolator, crs=CRS, tiling=tiling, progress=False)
        ratios[blend] = seam_ratio(filled.precipitation_mean.values, 24, slice(12, 36), slice(12, 36))[0]
    # the halo does not reach across the gap, so the tiles disagree strongly inside it; blending
    # over 16 pixels spreads the disagreement (benchmarks/fill.py measures the realistic case)
    assert ratios[8] < 0.5 * ratios[0] and ratios[8] < 1.6, ratios


def test_blend_pixels_are_checked() -> None:
    with pytest.raises(ValueError, match="blend_pixels must be from 0 to half of tile_pixels=16"):
        GridTiling(tile_pixels=16, blend_pixels=9)
    with pytest.raises(ValueError, match="blend_pixels must be from 0 to half of tile_pixels=16"):
        TileBlender((32, 32), 16, 9)


def test_the_epistemic_share_is_pooled_across_tile_edges() -> None:
    """Where tiles overlap the share is the blend-weighted mean of theirs, within [0, 1]; where one
    tile covers the pixel, that tile's own."""
    frame = _field()
    tiling = GridTiling(tile_pixels=24, halo_pixels=12, max_context=200, blend_pixels=8)
    outputs, _ = predict_blended(get_model("kriging"), frame, crs=CRS, tiling=tiling, progress=False)
    share, predicted = (
        outputs[conventions.EPISTEMIC_SHARE],
        np.isfinite(outputs[conventions.PRECIPITATION_MEAN]),
    )
    assert predicted.any() and np.isfinite(share[predicted]).all()
    assert ((share[predicted] >= 0) & (share[predicted] <= 1)).all() and share[predicted].std() > 0
    np.testing.assert_array_equal(np.isnan(share), ~predicted)
    alone, _ = predict_blended(
        get_model("kriging"),
        frame,
        crs=CRS,
        tiling=GridTiling(tile_pixels=24, halo_pixels=12, max_context=200),
        progress=False,
    )
    core = (slice(4, 20), slice(4, 20))  # inside the first tile, away from its blended edges
    assert np.isfinite(share[core]).sum() > 10
    np.testing.assert_allclose(share[core], alone[conventions.EPISTEMIC_SHARE][core], equal_nan=True)
