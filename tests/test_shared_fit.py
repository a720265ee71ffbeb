"""One fit per frame: the frame task, the GP's shared fit (identical to its own fit on the task it
was made on, the same options in every tile), and a GP fill that uses it: close to the withheld
truth, surer near observations, no seams, observed pixels kept, the gap filled."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyproj
import pytest
import xarray as xr

import weatherunc
from weatherunc.blending import predict_blended
from weatherunc.filling import FILLED, OBSERVED
from weatherunc.gridding import seam_ratio
from weatherunc.models.gp import (
    GaussianProcessConfig,
    GaussianProcessInterpolator,
    SharedFitGaussianProcess,
    VarianceEvidence,
    predict_with_fit,
)
from weatherunc.models.interface import SharesFit
from weatherunc.models.registry import get_model
from weatherunc.shared_fit import frame_task, shared_model
from weatherunc.tasks import Task
from weatherunc.tile_prediction import frame_axes, tile_task
from weatherunc.tiling import GridTiling, grid_tiles

CRS = pyproj.CRS.from_epsg(3035)
#: Few contexts and iterations keep the GP to seconds on one core.
CONFIG = GaussianProcessConfig(fit_iterations=10, selection_points=300, composite_points=300)
TILING = GridTiling(tile_pixels=24, halo_pixels=12, max_context=300, blend_pixels=8)
GAP = (slice(14, 34), slice(14, 34))  # 20 x 20 px across the edges of 24-pixel tiles


def _truth(ny: int = 48, nx: int = 48) -> np.ndarray:
    """Smooth rain [mm/h] ``[ny, nx]``, wet everywhere, with a little pixel noise."""
    rng = np.random.default_rng(5)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    return 3.0 + 1.5 * np.sin(xx / 8.0) + 1.0 * np.cos(yy / 11.0) + rng.normal(0.0, 0.05, (ny, nx))


def _frame(gap: tuple[slice, slice] = GAP) -> xr.DataArray:
    values = _truth()
    values[gap] = np.nan
    ny, nx = values.shape
    return xr.DataArray(
        values,
        dims=("y", "x"),
        coords={"y": 4e6 - 1000.0 * np.arange(ny), "x": 3e6 + 1000.0 * np.arange(nx)},
        name="rain",
        attrs={"units": "mm h-1"},
    )


def test_frame_task_holds_the_contexts_near_the_targets() -> None:
    values, x_km, y_km = frame_axes(_frame(), CRS)
    tiling = GridTiling(halo_pixels=3, max_context=10_000)
    task = frame_task(values, x_km, y_km, tiling)
    rows, columns = np.nonzero(np.isnan(values))
    assert task.n_target == rows.size == 400
    # every observed pixel within 3 px (Chebyshev) of the 20 x 20 gap, and no other
    assert task.n_context == 26 * 26 - 400
    distance_x = np.abs(task.context_coordinates[:, 0][:, None] - task.target_coordinates[:, 0][None])
    distance_y = np.abs(task.context_coordinates[:, 1][:, None] - task.target_coordinates[:, 1][None])
    assert np.maximum(distance_x, distance_y).min(1).max() <= 3.0 + 1e-9  # 1 km pixels
    capped = frame_task(values, x_km, y_km, GridTiling(halo_pixels=3, max_context=50))
    again = frame_task(values, x_km, y_km, GridTiling(halo_pixels=3, max_context=50))
    assert capped.n_context == 50
    np.testing.assert_array_equal(capped.context_coordinates, again.context_coordinates)
    observed = np.isfinite(values)
    assert frame_task(values, x_km, y_km, tiling, target_mask=np.zeros_like(observed)) is None
    far = np.full_like(values, np.nan)
    far[0, 0] = 1.0
    far_mask = np.zeros_like(observed)
    far_mask[40:, 40:] = True
    assert frame_task(far, x_km, y_km, tiling, target_mask=far_mask) is None


def test_only_models_that_fit_per_task_are_fitted_once() -> None:
    values, x_km, y_km = frame_axes(_frame(), CRS)
    gp = GaussianProcessInterpolator(CONFIG)
    assert isinstance(gp, SharesFit)
    shared = shared_model(gp, values, x_km, y_km, TILING)
    assert isinstance(shared, SharedFitGaussianProcess) and not isinstance(shared, SharesFit)
    idw = get_model("idw")
    assert shared_model(idw, values, x_km, y_km, TILING) is idw


def test_a_shared_fit_predicts_its_own_task_as_the_gp_does() -> None:
    values, x_km, y_km = frame_axes(_frame(), CRS)
    task = frame_task(values, x_km, y_km, TILING)
    gp = GaussianProcessInterpolator(CONFIG)
    own, shared = gp.predict(task), gp.shared_fit(task).predict(task)
    for name in own.data_vars:
        np.testing.assert_array_equal(shared[name].values, own[name].values, err_msg=str(name))
    assert own.attrs["hyperparameters"] == "per task"
    assert shared.attrs["hyperparameters"].startswith("shared, fitted once on the frame's 300 contexts")


def test_every_tile_uses_the_frame_fit() -> None:
    values, x_km, y_km = frame_axes(_frame(), CRS)
    shared = shared_model(GaussianProcessInterpolator(CONFIG), values, x_km, y_km, TILING)
    tasks = [tile_task(values, x_km, y_km, tile, TILING) for tile in grid_tiles(values.shape, 24)]
    predictions = [shared.predict(task) for task in tasks if task is not None]
    assert len(predictions) == 4
    for key in ("kernel", "transform_offset", "lengthscales_km", "fitted_noise_variance", "local_variance"):
        assert all(
            prediction.attrs.get(key) == predictions[0].attrs.get(key) for prediction in predictions
        ), key


def test_gp_fill_with_a_shared_fit_is_honest_and_seam_free() -> None:
    data = _frame()
    gap = data.isnull().values
    filled = weatherunc.fill(
        data, model=GaussianProcessInterpolator(CONFIG), crs=CRS, tiling=TILING, progress=False
    )
    mean, std = filled["precipitation_mean"].values, filled["precipitation_std"].values
    # the gap is filled, observed pixels keep their value with std 0
    np.testing.assert_array_equal(filled["observation"].values, np.where(gap, FILLED, OBSERVED))
    assert np.isfinite(mean[gap]).all() and (std[gap] > 0).all()
    np.testing.assert_array_equal(mean[~gap], data.values[~gap])
    np.testing.assert_array_equal(std[~gap], 0.0)
    # the mean is close to the withheld truth, and the truth mostly inside the 90 % interval
    truth = _truth()[gap]
    assert np.abs(mean[gap] - truth).mean() < 0.25
    quantiles = filled["precipitation_quantile"].sel(quantile=[0.05, 0.95]).values[gap]
    assert 0.8 <= np.mean((truth >= quantiles[:, 0]) & (truth <= quantiles[:, 1])) <= 1.0
    # surer near the observations than in the middle of the gap
    centre, border = (
        std[20:28, 20:28].mean(),
        np.r_[std[14, 14:34], std[33, 14:34], std[14:34, 14], std[14:34, 33]],
    )
    assert centre > 1.2 * border.mean()
    # no seams where the 24-pixel tiles meet inside the gap, in the mean or the std
    assert seam_ratio(mean, 24, *GAP)[0] <= 1.5
    assert seam_ratio(std, 24, *GAP)[0] <= 1.5


@pytest.mark.parametrize("share_fit", [True, False])
def test_predict_blended_with_or_without_a_shared_fit(share_fit: bool) -> None:
    outputs, _ = predict_blended(
        GaussianProcessInterpolator(CONFIG),
        _frame(),
        crs=CRS,
        tiling=TILING,
        share_fit=share_fit,
        progress=False,
    )
    gap = np.isnan(_frame().values)
    assert np.isfinite(outputs["precipitation_mean"][gap]).all()
    assert np.isnan(outputs["precipitation_mean"][~gap]).all()


def _dry_half_frame() -> tuple[xr.DataArray, tuple[slice, slice], tuple[slice, slice]]:
    """Rain on the left half, dry ground with five isolated wet pixels on the right; a gap in each half
    (the dry one, then the wet one)."""
    values = _truth()
    values[:, 24:] = 0.0
    rng = np.random.default_rng(0)
    spikes = rng.integers(26, 47, size=(5, 2))
    values[spikes[:, 0], spikes[:, 1]] = rng.uniform(5.0, 15.0, 5)
    dry_gap, wet_gap = (slice(4, 14), slice(28, 40)), (slice(30, 44), slice(6, 18))
    values[dry_gap] = np.nan
    values[wet_gap] = np.nan
    frame = _frame(gap=(slice(0, 0), slice(0, 0))).copy(data=values)
    return frame, dry_gap, wet_gap


def test_a_shared_fit_keeps_the_frame_variance_in_a_nearly_dry_tile() -> None:
    frame, dry_gap, wet_gap = _dry_half_frame()
    filled = weatherunc.fill(
        frame, model=GaussianProcessInterpolator(CONFIG), crs=CRS, tiling=TILING, progress=False
    )
    # the dry gap is filled dry and narrow, not by a log-rate distribution wide enough to make rain
    assert filled["precipitation_mean"].values[dry_gap].max() < 0.1
    assert filled["precipitation_std"].values[dry_gap].max() < 0.5
    truth = _truth()[wet_gap]
    assert np.abs(filled["precipitation_mean"].values[wet_gap] - truth).mean() < 0.5
    # every tile says where its variance was estimated: on the frame's contexts
    values, x_km, y_km = frame_axes(frame, CRS)
    shared = shared_model(GaussianProcessInterpolator(CONFIG), values, x_km, y_km, TILING)
    tasks = [tile_task(values, x_km, y_km, tile, TILING) for tile in grid_tiles(values.shape, 24)]
    sources = {shared.predict(task).attrs["variance_estimated_on"] for task in tasks if task is not None}
    assert len(sources) == 1 and sources.pop().startswith("the frame's 300 contexts")


def test_a_shared_fit_leaves_the_pixels_it_predicts_out_of_its_variance_field() -> None:
    values, x_km, y_km = frame_axes(_frame(), CRS)
    frame = frame_task(values, x_km, y_km, TILING)
    shared = GaussianProcessInterpolator(CONFIG).shared_fit(frame)
    evidence = shared.fit.evidence
    assert evidence.without(frame.target_coordinates) is evidence  # unobserved targets: no site
    # a pseudo-task, as self-calibration makes: 30 of the frame's contexts hidden and predicted
    pseudo = Task(
        context_coordinates=frame.context_coordinates[30:],
        context_values=frame.context_values[30:],
        target_coordinates=frame.context_coordinates[:30],
        target_values=frame.context_values[:30],
    )
    kept = np.ones(len(evidence.sites), dtype=bool)
    kept[:30] = False
    by_hand = VarianceEvidence(evidence.scale, evidence.sites[kept], evidence.squared_residuals[kept])
    assert len(evidence.without(pseudo.target_coordinates).sites) == len(evidence.sites) - 30
    predicted = shared.predict(pseudo)
    expected = SharedFitGaussianProcess(replace(shared.fit, evidence=by_hand)).predict(pseudo)
    leaking = predict_with_fit(
        pseudo, replace(shared.fit, evidence=_Unfiltered(evidence)), name="gp", shared=True
    )
    np.testing.assert_array_equal(predicted.transformed_std.values, expected.transformed_std.values)
    assert not np.allclose(predicted.transformed_std.values, leaking.transformed_std.values)


class _Unfiltered(VarianceEvidence):
    """Evidence that keeps every site, hidden or not (the variance field with the leak)."""

    def __init__(self, evidence: VarianceEvidence) -> None:
        super().__init__(evidence.scale, evidence.sites, evidence.squared_residuals)

    def without(self, points: np.ndarray) -> VarianceEvidence:
        return self
