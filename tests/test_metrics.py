"""Verification scores against properscoring and closed forms."""

from __future__ import annotations

import dask.array as da
import numpy as np
import properscoring
import pytest
import xarray as xr
from scipy import stats

from weatherunc import metrics
from weatherunc.metrics import kernels


def _gaussian_case(seed: int = 0, shape: tuple[int, int] = (40, 50)):
    rng = np.random.default_rng(seed)
    mean = rng.normal(2.0, 1.0, shape)
    std = rng.uniform(0.3, 2.0, shape)
    observed = mean + std * rng.normal(size=shape)
    dims = ("y", "x")
    forecast = xr.Dataset({"precipitation_mean": (dims, mean), "precipitation_std": (dims, std)})
    return forecast, xr.DataArray(observed, dims=dims), mean, std, observed


def test_crps_gaussian_matches_properscoring() -> None:
    forecast, observed, mean, std, values = _gaussian_case()
    expected = properscoring.crps_gaussian(values, mean, std)
    np.testing.assert_allclose(kernels.crps_gaussian(mean, std, values), expected, rtol=1e-10)
    assert float(metrics.crps_gaussian(forecast, observed)) == pytest.approx(expected.mean(), rel=1e-10)
    np.testing.assert_allclose(
        metrics.crps_gaussian(forecast, observed, preserve_dims="x").values, expected.mean(axis=0), rtol=1e-10
    )


def test_crps_gaussian_at_the_mean_is_closed_form() -> None:
    # CRPS(N(0, s^2), 0) = s (2 phi(0) - 1/sqrt(pi)) = s (sqrt(2) - 1) / sqrt(pi)
    assert kernels.crps_gaussian(0.0, 2.0, 0.0) == pytest.approx(2.0 * (np.sqrt(2) - 1) / np.sqrt(np.pi))


def test_crps_ensemble_matches_properscoring_and_converges_to_gaussian() -> None:
    rng = np.random.default_rng(1)
    samples = rng.normal(1.0, 0.5, size=(30, 25))
    observed = rng.normal(1.0, 0.5, size=30)
    np.testing.assert_allclose(
        kernels.crps_ensemble(samples, observed), properscoring.crps_ensemble(observed, samples), rtol=1e-10
    )
    large = rng.normal(0.0, 1.0, size=20000)
    assert kernels.crps_ensemble(large, np.array(0.3)) == pytest.approx(
        kernels.crps_gaussian(0.0, 1.0, 0.3), abs=0.01
    )
    ensemble = xr.DataArray(samples, dims=("station", "sample"))
    score = metrics.crps_ensemble(ensemble, xr.DataArray(observed, dims="station"))
    assert float(score) == pytest.approx(properscoring.crps_ensemble(observed, samples).mean(), rel=1e-10)


def test_nlpd_matches_scipy() -> None:
    forecast, observed, mean, std, values = _gaussian_case(2)
    expected = -stats.norm.logpdf(values, mean, std).mean()
    assert float(metrics.negative_log_predictive_density(forecast, observed)) == pytest.approx(
        expected, rel=1e-10
    )


def test_deterministic_scores() -> None:
    forecast = xr.DataArray([1.0, 2.0, 4.0, np.nan], dims="station")
    observed = xr.DataArray([0.0, 2.0, 1.0, 5.0], dims="station")
    assert float(metrics.root_mean_squared_error(forecast, observed)) == pytest.approx(np.sqrt(10 / 3))
    assert float(metrics.mean_absolute_error(forecast, observed)) == pytest.approx(4 / 3)
    assert float(metrics.bias(forecast, observed)) == pytest.approx(4 / 3)
    weights = xr.DataArray([1.0, 0.0, 0.0, 1.0], dims="station")
    assert float(metrics.mean_absolute_error(forecast, observed, weights=weights)) == pytest.approx(1.0)


def test_coverage_of_calibrated_forecast_is_nominal() -> None:
    forecast, observed, *_ = _gaussian_case(3, shape=(400, 500))
    for level in (0.5, 0.8, 0.9, 0.95):
        assert float(metrics.gaussian_interval_coverage(forecast, observed, level=level)) == pytest.approx(
            level, abs=0.005
        )
    overconfident = forecast.assign(precipitation_std=forecast.precipitation_std / 2)
    assert float(metrics.gaussian_interval_coverage(overconfident, observed, level=0.9)) < 0.6
    with pytest.raises(ValueError, match="level"):
        metrics.gaussian_interval_coverage(forecast, observed, level=1.5)


def test_pit_histogram_flat_when_calibrated_and_u_shaped_when_overconfident() -> None:
    forecast, observed, *_ = _gaussian_case(4, shape=(400, 500))
    histogram = metrics.pit_histogram(forecast, observed, bins=10)
    np.testing.assert_allclose(histogram.values, 0.1, atol=0.005)
    assert float(histogram.sum()) == pytest.approx(1.0)
    overconfident = metrics.pit_histogram(
        forecast.assign(precipitation_std=forecast.precipitation_std / 3), observed
    )
    assert overconfident.values[0] > 0.2 and overconfident.values[-1] > 0.2 and overconfident.values[5] < 0.05


def test_brier_matches_properscoring_and_decomposition_adds_up() -> None:
    rng = np.random.default_rng(5)
    probability = np.round(rng.uniform(0, 1, 5000), 1)  # ten distinct values: decomposition is exact
    event = (rng.uniform(0, 1, 5000) < probability).astype(float)
    score = metrics.brier_score(xr.DataArray(probability), xr.DataArray(event))
    assert float(score) == pytest.approx(properscoring.brier_score(event, probability).mean(), rel=1e-12)
    decomposition = metrics.brier_decomposition(probability, event, bins=11)
    assert decomposition.brier_score == pytest.approx(float(score))
    assert decomposition.reliability - decomposition.resolution + decomposition.uncertainty == pytest.approx(
        decomposition.brier_score, abs=1e-12
    )
    assert decomposition.reliability < 0.005


def test_scores_stay_lazy_on_dask() -> None:
    forecast, observed, *_ = _gaussian_case(6)
    lazy = forecast.chunk({"y": 10}), observed.chunk({"y": 10})
    result = metrics.crps_gaussian(*lazy, preserve_dims="y")
    assert isinstance(result.data, da.Array)
    np.testing.assert_allclose(
        result.values, metrics.crps_gaussian(forecast, observed, preserve_dims="y").values
    )


def test_bad_forecasts_are_refused() -> None:
    forecast, observed, *_ = _gaussian_case(7)
    with pytest.raises(ValueError, match="precipitation_std"):
        metrics.crps_gaussian(forecast.drop_vars("precipitation_std"), observed)
    with pytest.raises(ValueError, match="> 0"):
        metrics.crps_gaussian(forecast.assign(precipitation_std=forecast.precipitation_std * 0), observed)
    with pytest.raises(ValueError, match="not both"):
        metrics.crps_gaussian(forecast, observed, reduce_dims="x", preserve_dims="y")
    with pytest.raises(ValueError, match="sample"):
        metrics.crps_ensemble(observed, observed)


def test_reliability_diagram_and_ece_by_hand() -> None:
    probability = xr.DataArray([0.05, 0.05, 0.95, 0.95, 0.55, 0.55, 0.55, 0.55])
    event = xr.DataArray([0, 1, 1, 1, 1, 1, 0, 1])
    diagram = metrics.reliability_diagram(probability, event, bins=10)
    filled = diagram.where(diagram["count"] > 0, drop=True)
    np.testing.assert_allclose(filled.forecast_probability, [0.05, 0.55, 0.95])
    np.testing.assert_allclose(filled.observed_frequency, [0.5, 0.75, 1.0])
    np.testing.assert_array_equal(filled["count"], [2, 4, 2])
    expected = (2 * 0.45 + 4 * 0.2 + 2 * 0.05) / 8
    assert metrics.expected_calibration_error(probability, event, bins=10) == pytest.approx(expected)


def test_ece_of_calibrated_forecasts_is_small_and_streaming_matches() -> None:
    rng = np.random.default_rng(8)
    probability = rng.uniform(size=(200, 300))
    event = (rng.uniform(size=(200, 300)) < probability).astype(float)
    whole = metrics.expected_calibration_error(xr.DataArray(probability), xr.DataArray(event))
    assert whole < 0.01
    chunked = metrics.expected_calibration_error(
        xr.DataArray(probability).chunk(50), xr.DataArray(event).chunk(50)
    )
    assert chunked == pytest.approx(whole, rel=1e-12)
    first = metrics.ReliabilityAccumulator.init().accumulate(probability[:100], event[:100])
    second = metrics.ReliabilityAccumulator.init().accumulate(probability[100:], event[100:])
    assert first.merge(second).expected_calibration_error() == pytest.approx(whole, rel=1e-12)
    overconfident = np.clip((probability - 0.5) * 2 + 0.5, 0, 1)
    assert metrics.expected_calibration_error(xr.DataArray(overconfident), xr.DataArray(event)) > 0.1


def test_reliability_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.ReliabilityAccumulator.init().accumulate(np.array([1.5]), np.array([1.0]))
    with pytest.raises(ValueError, match="merge"):
        metrics.ReliabilityAccumulator.init(10).merge(metrics.ReliabilityAccumulator.init(15))


def test_reliability_accepts_float32_rounding_above_one_but_not_more() -> None:
    rounded = np.float32(1.0) + np.float32(1e-7)  # what a float32 sum of bin probabilities can give
    accumulator = metrics.ReliabilityAccumulator.init(10).accumulate(
        np.array([rounded, 0.05]), np.array([1.0, 0.0])
    )
    assert accumulator.counts[-1] == 1 and accumulator.probability_sums[-1] == 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]; got 1.001"):
        metrics.ReliabilityAccumulator.init().accumulate(np.array([1.001]), np.array([1.0]))


def test_area_under_roc_matches_scikit_learn_and_closed_forms() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    positive, negative = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 200)
    labels = np.r_[np.ones(300), np.zeros(200)]
    assert metrics.area_under_roc(positive, negative) == pytest.approx(
        roc_auc_score(labels, np.r_[positive, negative])
    )
    assert metrics.area_under_roc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert metrics.area_under_roc([0.0], [1.0]) == 0.0
    assert metrics.area_under_roc([1.0, 1.0], [1.0]) == 0.5  # ties count half
    assert np.isnan(metrics.area_under_roc([], [1.0]))


def test_rate_bin_index_closed_form() -> None:
    edges = (0.0, 0.1, 1.0, 10.0)
    rate = np.array([[0.0, 0.05, 0.1, 0.99], [1.0, 9.99, 10.0, 500.0]])
    index = kernels.rate_bin_index(rate, edges)
    assert index.dtype == np.int64 and index.shape == rate.shape
    # an edge value opens its bin; the last bin is open above
    np.testing.assert_array_equal(index, [[0, 0, 1, 1], [2, 2, 3, 3]])
    # below the first edge: the first bin; NaN and +inf sort after every edge: the last bin
    np.testing.assert_array_equal(
        kernels.rate_bin_index(np.array([-1.0, -np.inf, np.inf, np.nan]), np.asarray(edges)), [0, 0, 3, 3]
    )
    # observed_bins replaces NaN before binning and keeps it in its result
    observed = metrics.observed_bins(xr.DataArray([-1.0, 0.1, np.nan, 12.0]), np.asarray(edges))
    np.testing.assert_array_equal(observed.values, [0.0, 1.0, np.nan, 3.0])
