"""Scoring a prediction: the quantile CRPS agrees with the closed form for a Gaussian."""

from __future__ import annotations

import numpy as np
import properscoring
import pytest
import xarray as xr

from weatherunc.evaluation import score_prediction, transform_of
from weatherunc.models.predictive import prediction_dataset, to_grid
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform

IDENTITY = PrecipitationTransform("identity", censor_at_zero=False)


def _gaussian_prediction(n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    mean, std = rng.normal(0, 1, n), rng.uniform(0.5, 1.5, n)
    truth = mean + std * rng.normal(size=n)
    task = Task(
        np.zeros((1, 2)),
        np.zeros(1),
        rng.uniform(size=(n, 2)),
        truth,
        target_coords={"row": np.arange(n) // 100, "column": np.arange(n) % 100},
    )
    prediction = prediction_dataset(
        task,
        transformed_mean=mean,
        latent_variance=std**2,
        noise_variance=0.0,
        transform=IDENTITY,
        model="oracle",
    )
    return prediction, task, mean, std, truth


def _calibrated_zero_inflated_prediction(n: int, seed: int):
    """A calibrated forecast of ``log(rate + 0.3)`` with about half its truths dry: truths drawn
    from each target's own censored predictive distribution."""
    transform = PrecipitationTransform("log", offset=0.3)
    rng = np.random.default_rng(seed)
    mean, std = rng.normal(transform.forward(0.0), 1.5, n), rng.uniform(0.3, 1.5, n)
    truth = transform.floor(transform.inverse(mean + std * rng.normal(size=n)))
    task = Task(rng.uniform(0, 50, size=(200, 2)), np.zeros(200), rng.uniform(0, 50, size=(n, 2)), truth)
    prediction = prediction_dataset(
        task,
        transformed_mean=mean,
        latent_variance=std**2,
        noise_variance=0.0,
        transform=transform,
        model="oracle",
    )
    return prediction, task, truth


def test_scores_of_a_calibrated_gaussian() -> None:
    prediction, task, mean, std, truth = _gaussian_prediction()
    scores = score_prediction(prediction, task)
    assert scores["crps"] == pytest.approx(properscoring.crps_gaussian(truth, mean, std).mean(), rel=0.01)
    assert scores["rmse"] == pytest.approx(np.sqrt(np.mean((mean - truth) ** 2)))
    for level in (50, 80, 90, 95):
        assert scores[f"coverage_{level}"] == pytest.approx(level / 100, abs=0.02)
    assert transform_of(prediction) == IDENTITY


def test_unscorable_task() -> None:
    prediction, task, *_ = _gaussian_prediction(10)
    blind = Task(
        task.context_coordinates,
        task.context_values,
        task.target_coordinates,
        np.full(10, np.nan),
        target_coords=task.target_coords,
    )
    with pytest.raises(ValueError, match="no target with known truth"):
        score_prediction(prediction, blind)


def test_to_grid() -> None:
    import xarray as xr

    prediction, *_ = _gaussian_prediction(4000)
    template = xr.DataArray(
        np.zeros((50, 100)), dims=("y", "x"), coords={"y": np.arange(50.0), "x": np.arange(100.0)}
    )
    grid = to_grid(prediction, template)
    assert grid.precipitation_mean.shape == (50, 100)
    assert grid.precipitation_quantile.dims == ("y", "x", "quantile")
    assert float(grid.precipitation_mean[1, 3]) == float(prediction.precipitation_mean[103])
    assert bool(grid.precipitation_mean[45:].isnull().all()), "non-target pixels stay NaN"


def _log_prediction(offset: float, n: int, seed: int):
    rng = np.random.default_rng(seed)
    transform = PrecipitationTransform("log", offset=offset)
    mean, std = rng.normal(0.5, 0.5, n), rng.uniform(0.3, 0.9, n)
    truth = np.maximum(transform.inverse(mean + std * rng.normal(size=n)), 0.0)
    task = Task(np.zeros((1, 2)), np.zeros(1), rng.uniform(size=(n, 2)), truth)
    return prediction_dataset(
        task,
        transformed_mean=mean,
        latent_variance=std**2,
        noise_variance=0.0,
        transform=transform,
        model="oracle",
    ), task


def test_predictions_with_different_offsets_are_scored_each_with_its_own() -> None:
    """Two tasks whose models chose different transform offsets, concatenated: the pooled scores
    equal the target-weighted means of each scored alone (RMSE through its mean square), and no
    single transform is claimed for them."""
    import xarray as xr

    from weatherunc.evaluation import offset_groups, pooled_scores

    (first, first_task), (second, second_task) = _log_prediction(0.1, 300, 1), _log_prediction(3.0, 100, 2)
    alone = [score_prediction(first, first_task), score_prediction(second, second_task)]
    together = xr.concat([first, second], dim="target").assign_attrs(first.attrs)
    task = Task(
        np.zeros((1, 2)),
        np.zeros(1),
        np.vstack([first_task.target_coordinates, second_task.target_coordinates]),
        np.concatenate([first_task.target_values, second_task.target_values]),
    )
    scores = score_prediction(together, task)
    for key in ("crps", "nlpd", "mae", "coverage_90"):
        assert scores[key] == pytest.approx(0.75 * alone[0][key] + 0.25 * alone[1][key], rel=1e-12)
    assert scores["rmse"] == pytest.approx(
        np.sqrt(0.75 * alone[0]["rmse"] ** 2 + 0.25 * alone[1]["rmse"] ** 2), rel=1e-12
    )
    assert pooled_scores([first, second], [first_task, second_task]) == pytest.approx(scores, rel=1e-12)
    assert [transform_of(part).offset for part, _ in offset_groups(together, task)] == [0.1, 3.0]
    with pytest.raises(ValueError, match="transform_offset differs between targets"):
        transform_of(together)
    # Read with the first task's offset for all targets, as before the per-target offset, the scores are
    # wrong:
    assert score_prediction(together.drop_vars("transform_offset"), task)["crps"] != pytest.approx(
        scores["crps"], rel=1e-3
    )


def test_nlpd_is_the_likelihood_of_the_rate() -> None:
    from scipy import stats

    prediction, task = _log_prediction(1.0, 500, 3)
    mean, std, truth = (
        prediction.transformed_mean.values,
        prediction.transformed_std.values,
        task.target_values,
    )
    dry = truth <= 0
    expected = np.where(
        dry,
        stats.norm.logcdf((0.0 - mean) / std),
        stats.norm.logpdf(np.log1p(truth), mean, std) - np.log1p(truth),
    )
    assert score_prediction(prediction, task)["nlpd"] == pytest.approx(-expected.mean(), rel=1e-12)
    assert dry.any() and (~dry).any()


def test_transform_groups_cover_every_target_with_its_own_transform() -> None:
    """Element-wise work on a prediction of two tasks with different offsets (bin probabilities,
    scores by distance, transformed truths) equals doing it on each task's prediction alone."""
    import xarray as xr

    from weatherunc.evaluation import scores_by_distance, transform_groups, transformed_values
    from weatherunc.heads.bins import with_bin_probabilities

    (first, first_task), (second, second_task) = _log_prediction(0.3, 200, 4), _log_prediction(3.0, 100, 5)
    together = xr.concat([first, second], dim="target").assign_attrs(first.attrs)
    groups = transform_groups(together)
    assert [transform.offset for transform, _ in groups] == [0.3, 3.0] and [
        int(mask.sum()) for _, mask in groups
    ] == [200, 100]
    truth = np.concatenate([first_task.target_values, second_task.target_values])
    np.testing.assert_allclose(
        transformed_values(together, truth),
        np.concatenate([np.log(first_task.target_values + 0.3), np.log(second_task.target_values + 3.0)]),
    )
    pooled_bins = with_bin_probabilities(together)["bin_probability"].values
    np.testing.assert_allclose(
        pooled_bins,
        np.concatenate(
            [
                with_bin_probabilities(first)["bin_probability"].values,
                with_bin_probabilities(second)["bin_probability"].values,
            ]
        ),
    )
    task = Task(
        np.zeros((1, 2)),
        np.zeros(1),
        np.vstack([first_task.target_coordinates, second_task.target_coordinates]),
        truth,
    )
    one_bin = (0.0, np.inf)
    combined = scores_by_distance(together, task, edges_km=one_bin)
    expected = score_prediction(together, task)
    assert float(combined.crps[0]) == pytest.approx(expected["crps"], rel=1e-12)
    assert float(combined.coverage_90[0]) == pytest.approx(expected["coverage_90"], rel=1e-12)
    from weatherunc.evaluation import rate_pit_histogram

    np.testing.assert_allclose(
        rate_pit_histogram(together, task).values,
        (2 * rate_pit_histogram(first, first_task).values + rate_pit_histogram(second, second_task).values)
        / 3,
        rtol=1e-12,
    )


def test_coverage_of_a_calibrated_zero_inflated_forecast_is_the_nominal_level() -> None:
    """About half the truths are dry (the censored mass of a log transform): coverage still
    equals the nominal level, at every level and per distance bin."""
    from weatherunc.evaluation import scores_by_distance

    prediction, task, truth = _calibrated_zero_inflated_prediction(40_000, 5)
    scores = score_prediction(prediction, task)
    assert 0.4 < np.mean(truth == 0) < 0.6
    for level in (50, 80, 90, 95):
        assert scores[f"coverage_{level}"] == pytest.approx(level / 100, abs=0.012)
    by_distance = scores_by_distance(prediction, task)
    filled = by_distance["count"].values > 2000
    np.testing.assert_allclose(by_distance["coverage_90"].values[filled], 0.9, atol=0.02)


def test_rate_pit_histogram_of_a_calibrated_zero_inflated_forecast_is_flat() -> None:
    """About half the truths are dry: the rate PIT histogram is flat (each bin 0.1), while the
    Gaussian PIT of the transformed value piles the dry truths into the bins of their F(0)."""
    from weatherunc import metrics
    from weatherunc.evaluation import rate_pit_histogram, transformed_values

    prediction, task, truth = _calibrated_zero_inflated_prediction(40_000, 8)
    histogram = rate_pit_histogram(prediction, task, bins=10)
    assert histogram.dims == ("pit_bin",) and float(histogram.sum()) == pytest.approx(1.0)
    np.testing.assert_allclose(histogram.values, 0.1, atol=0.008)
    gaussian = xr.Dataset(
        {"precipitation_mean": prediction.transformed_mean, "precipitation_std": prediction.transformed_std}
    )
    naive = metrics.pit_histogram(
        gaussian, xr.DataArray(transformed_values(prediction, truth), dims="target"), bins=10
    )
    assert np.abs(naive.values - 0.1).max() > 0.03


def test_rate_pit_histogram_of_an_overconfident_forecast_is_u_shaped_and_ignores_unknown_truth() -> None:
    from weatherunc.evaluation import rate_pit_histogram

    prediction, task, mean, std, truth = _gaussian_prediction()
    narrow = prediction.assign(transformed_std=prediction.transformed_std * 0.5)
    histogram = rate_pit_histogram(narrow, task, bins=5).values
    assert histogram[0] > 0.3 and histogram[-1] > 0.3 and histogram[2] < 0.1
    values = task.target_values.copy()
    values[:100] = np.nan
    partial = Task(
        task.context_coordinates,
        task.context_values,
        task.target_coordinates,
        values,
        target_coords=task.target_coords,
    )
    np.testing.assert_allclose(rate_pit_histogram(prediction, partial).sum(), 1.0)
    with pytest.raises(ValueError, match="bins must be"):
        rate_pit_histogram(prediction, task, bins=0)


def test_interval_coverage_per_target_on_points_mixed_offsets_and_grids() -> None:
    """Its mean is score_prediction's coverage (mixed offsets too); on a grid it keeps the grid, NaN
    off the targets; on a calibrated zero-inflated forecast it is nominal where the share of truths
    between the two quantiles is not."""
    from weatherunc.evaluation import interval_coverage

    (first, first_task), (second, second_task) = _log_prediction(0.3, 200, 4), _log_prediction(3.0, 100, 5)
    together = xr.concat([first, second], dim="target").assign_attrs(first.attrs)
    truth = np.concatenate([first_task.target_values, second_task.target_values])
    task = Task(
        np.zeros((1, 2)),
        np.zeros(1),
        np.vstack([first_task.target_coordinates, second_task.target_coordinates]),
        truth,
    )
    covered = interval_coverage(together, truth, 0.8)
    assert covered.dims == ("target",) and covered.attrs["level"] == 0.8
    assert float(covered.mean()) == pytest.approx(score_prediction(together, task)["coverage_80"], rel=1e-12)

    prediction, task, truth = _calibrated_zero_inflated_prediction(40_000, 9)
    assert float(interval_coverage(prediction, truth, 0.9).mean()) == pytest.approx(0.9, abs=0.012)
    quantile = prediction.precipitation_quantile
    between = (truth >= quantile.sel(quantile=0.05).values) & (truth <= quantile.sel(quantile=0.95).values)
    assert between.mean() > 0.93  # every dry truth counted as covered where the lower quantile is 0

    points, point_task, *_ = _gaussian_prediction(4000)
    template = xr.DataArray(
        np.zeros((50, 100)), dims=("y", "x"), coords={"y": np.arange(50.0), "x": np.arange(100.0)}
    )
    grid = to_grid(points, template)
    truth_grid = np.full((50, 100), np.nan)
    truth_grid.flat[:4000] = point_task.target_values  # target i sits at row i // 100, column i % 100
    on_grid = interval_coverage(grid, xr.DataArray(truth_grid.T, dims=("x", "y")))  # dims in another order
    assert (
        on_grid.dims == ("y", "x")
        and bool(on_grid[40:].isnull().all())
        and bool(on_grid[:40].notnull().all())
    )
    assert float(on_grid.mean()) == pytest.approx(
        score_prediction(points, point_task)["coverage_90"], rel=1e-12
    )
    with pytest.raises(ValueError, match="truth has shape"):
        interval_coverage(grid, truth_grid[:49])
    with pytest.raises(ValueError, match="truth has dims"):
        interval_coverage(grid, xr.DataArray(truth_grid, dims=("row", "x")))
