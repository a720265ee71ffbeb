"""Bin probabilities for every model, categorical scores, and calibration (closed forms and references)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import special, stats

from weatherunc.heads.bins import (
    entropy_and_mutual_information,
    gaussian_bin_probabilities,
    with_bin_probabilities,
)
from weatherunc.heads.calibration import (
    Calibration,
    StdScaling,
    TemperatureScaling,
    VectorScaling,
    fit_vector_scaling,
    lowest_ece_temperature,
)
from weatherunc.metrics import (
    categorical_nll,
    consistency_top_label_ece,
    multiclass_brier_score,
    observed_bins,
    ranked_probability_score,
    top_label_ece,
)
from weatherunc.models.registry import get_model
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform, log_density

EDGES = (0.0, 0.1, 1.0, 5.0)


def test_gaussian_bin_probabilities_match_the_censored_distribution() -> None:
    transform = PrecipitationTransform()
    mean, std = np.array([0.2, 1.5]), np.array([0.5, 0.3])
    probabilities = gaussian_bin_probabilities(transform, mean, std, EDGES)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0)
    rng = np.random.default_rng(0)
    draws = np.maximum(np.exp(mean + std * rng.standard_normal((400_000, 2))) - 1, 0)
    empirical = np.stack(
        [((draws >= low) & (draws < high)).mean(0) for low, high in zip(EDGES, (*EDGES[1:], np.inf))], axis=-1
    )
    np.testing.assert_allclose(probabilities, empirical, atol=3e-3)


def test_every_model_gets_bins_and_rain_probability_consistent_with_exceedance() -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 40, size=(90, 2))
    values = np.maximum(np.sin(points[:, 0] / 7) * 4, 0)
    task = Task(points[:70], values[:70], points[70:], values[70:])
    prediction = with_bin_probabilities(get_model("kriging").predict(task))
    np.testing.assert_allclose(prediction.bin_probability.sum("bin"), 1.0)
    # P(rate >= t) from bins equals P(rate > t) of the continuous part at t > 0.
    np.testing.assert_allclose(
        prediction.rain_probability.values, prediction.exceedance_probability.values, atol=1e-10
    )


def test_categorical_scores_closed_forms() -> None:
    forecast = xr.DataArray([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dims=("point", "bin"))
    observed = xr.DataArray([0.0, 1.0], dims="point")
    assert float(categorical_nll(forecast, observed)) == pytest.approx(-(np.log(0.7) + np.log(0.3)) / 2)
    assert float(multiclass_brier_score(forecast, observed)) == pytest.approx(
        ((0.09 + 0.04 + 0.01) + (0.01 + 0.49 + 0.36)) / 2
    )
    # cumulative: [0.7, 0.9, 1] vs [1, 1, 1]; [0.1, 0.4, 1] vs [0, 1, 1]
    assert float(ranked_probability_score(forecast, observed)) == pytest.approx(
        ((0.09 + 0.01) + (0.01 + 0.36)) / 2
    )
    np.testing.assert_array_equal(
        observed_bins(xr.DataArray([0.0, 0.1, 0.99, 7.0, np.nan]), np.array(EDGES)).values,
        [0, 1, 1, 3, np.nan],
    )


def test_top_label_ece_of_a_calibrated_forecast_is_small_and_of_an_overconfident_one_is_not() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(20_000, 4)) * 2
    probabilities = special.softmax(logits, axis=-1)
    observed = np.array([rng.choice(4, p=p) for p in probabilities])
    forecast = xr.DataArray(probabilities, dims=("point", "bin"))
    truth = xr.DataArray(observed.astype(float), dims="point")
    assert top_label_ece(forecast, truth) < 0.015
    sharpened = xr.DataArray(special.softmax(logits * 3, axis=-1), dims=("point", "bin"))
    assert top_label_ece(sharpened, truth) > 0.1


def test_consistency_ece_matches_the_binomial_closed_form_and_the_ece_of_a_calibrated_forecast() -> None:
    # 50 forecasts of one top probability 0.6: one ECE bin, ECE = |k/50 - 0.6| with k ~ Binomial(50, 0.6)
    forecast = xr.DataArray(np.tile([0.6, 0.3, 0.1], (50, 1)), dims=("point", "bin"))
    draws = consistency_top_label_ece(forecast, draws=4000, seed=1)
    k = np.arange(51)
    expected = float(np.sum(stats.binom.pmf(k, 50, 0.6) * np.abs(k / 50 - 0.6)))
    assert draws.shape == (4000,) and draws.mean() == pytest.approx(
        expected, abs=4 * draws.std() / np.sqrt(4000)
    )
    # a calibrated forecast's observed ECE lies within the spread of its consistency draws
    rng = np.random.default_rng(3)
    probabilities = special.softmax(rng.normal(size=(3000, 4)) * 2, axis=-1)
    observed = xr.DataArray(np.array([rng.choice(4, p=p) for p in probabilities]).astype(float), dims="point")
    floor = consistency_top_label_ece(xr.DataArray(probabilities, dims=("point", "bin")), draws=300)
    assert (
        np.quantile(floor, 0.005)
        < top_label_ece(xr.DataArray(probabilities, dims=("point", "bin")), observed)
        < np.quantile(floor, 0.995)
    )
    with pytest.raises(ValueError, match="draws must be >= 1"):
        consistency_top_label_ece(forecast, draws=0)


def test_temperature_scaling_recovers_the_temperature_and_reduces_ece() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(20_000, 5)) * 1.5
    observed = np.array([rng.choice(5, p=p) for p in special.softmax(logits, axis=-1)])
    overconfident = special.softmax(logits * 2.5, axis=-1)  # true temperature 2.5
    scaler = TemperatureScaling.fit(overconfident.astype(np.float32), observed)
    assert scaler.temperature == pytest.approx(2.5, rel=0.05)
    truth = xr.DataArray(observed.astype(float), dims="point")
    before = top_label_ece(xr.DataArray(overconfident, dims=("point", "bin")), truth)
    after = top_label_ece(xr.DataArray(scaler.apply(overconfident), dims=("point", "bin")), truth)
    assert after < 0.02 < before


def test_lowest_ece_temperature_finds_the_miscalibration_and_bounds_every_temperature_tried() -> None:
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(20_000, 5)) * 1.5
    observed = np.array([rng.choice(5, p=p) for p in special.softmax(logits, axis=-1)])
    overconfident = special.softmax(logits * 2.5, axis=-1)  # true temperature 2.5
    temperature, ece = lowest_ece_temperature(overconfident, observed)
    assert temperature == pytest.approx(2.5, rel=0.1)
    truth = xr.DataArray(observed.astype(float), dims="point")

    def ece_at(value: float) -> float:
        return top_label_ece(
            xr.DataArray(TemperatureScaling(temperature=value).apply(overconfident), dims=("point", "bin")),
            truth,
        )

    assert ece == pytest.approx(ece_at(temperature), abs=1e-12) and ece < 0.015 < ece_at(1.0)
    # With the NLL minimiser among the temperatures tried, the search can only match or beat it on ECE.
    fitted = TemperatureScaling.fit(overconfident, observed).temperature
    _, bounded = lowest_ece_temperature(overconfident, observed, temperatures=np.array([1.0, fitted, 4.0]))
    assert bounded <= min(ece_at(1.0), ece_at(fitted), ece_at(4.0)) + 1e-12


def test_probabilities_and_observed_bins_leave_out_unknown_truths_and_index_the_bins() -> None:
    from weatherunc.heads.fitting import probabilities_and_observed_bins

    pooled = xr.Dataset(
        {"bin_probability": (("bin", "target"), np.full((3, 4), 1 / 3))},
        coords={"bin_lower": ("bin", [0.0, 0.1, 1.0])},
    )
    probabilities, observed = probabilities_and_observed_bins(pooled, np.array([0.0, np.nan, 0.5, 7.0]))
    assert probabilities.shape == (3, 3) and observed.tolist() == [0, 1, 2] and observed.dtype == np.int64


def test_scalers_weigh_each_point_by_its_sample_weight() -> None:
    """A weight of 0 leaves a point out and a weight of 2 counts it twice, for both scalers; the
    weighted temperature is the one of the weighted points."""
    rng = np.random.default_rng(12)
    logits = rng.normal(size=(600, 4)) * 2
    probabilities = special.softmax(logits, axis=-1)
    temperatures = np.where(np.arange(600) < 200, 2.0, 0.5)  # the left-out points need another one
    observed = np.array([rng.choice(4, p=special.softmax(row / t)) for row, t in zip(logits, temperatures)])
    weights = np.where(np.arange(600) < 200, 0.0, np.where(np.arange(600) < 400, 1.0, 2.0))
    repeated = np.concatenate([np.arange(200, 600), np.arange(400, 600)])
    for fit in (TemperatureScaling.fit, lambda *args, **kw: VectorScaling.fit(*args, penalty=0.01, **kw)):
        weighted = fit(probabilities, observed, sample_weight=weights)
        duplicated = fit(probabilities[repeated], observed[repeated])
        np.testing.assert_allclose(
            weighted.apply(probabilities[:5]), duplicated.apply(probabilities[:5]), rtol=1e-4, atol=1e-6
        )
        unweighted = fit(probabilities, observed)
        assert not np.allclose(
            unweighted.apply(probabilities[:5]), weighted.apply(probabilities[:5]), atol=1e-3
        )
    assert TemperatureScaling.fit(
        probabilities, observed, sample_weight=weights
    ).temperature == pytest.approx(0.5, rel=0.15)


def test_vector_scaling_does_at_least_as_well_as_temperature() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(5000, 4))
    observed = np.array(
        [rng.choice(4, p=p) for p in special.softmax(logits + np.array([0, 1, 0, -1]), axis=-1)]
    )
    forecast = special.softmax(logits * 2, axis=-1)

    def nll(p):
        return -np.mean(np.log(p[np.arange(len(observed)), observed]))

    temperature, vector = TemperatureScaling.fit(forecast, observed), VectorScaling.fit(forecast, observed)
    assert nll(vector.apply(forecast)) <= nll(temperature.apply(forecast)) + 1e-9 < nll(forecast)


def _shifted_bins(rng: np.random.Generator, n: int, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated forecast ``[n, 4]`` and outcomes drawn from it with its logits shifted by ``shift``
    ``[4]``."""
    logits = rng.normal(size=(n, 4))
    observed = np.array([rng.choice(4, p=p) for p in special.softmax(logits + shift, axis=-1)])
    return special.softmax(logits, axis=-1), observed


def test_penalised_vector_scaling_satisfies_its_stationarity_condition() -> None:
    # d/db [NLL + penalty * |b|^2] = mean(p_scaled - one_hot) + 2 * penalty * b = 0 at the minimum
    forecast, observed = _shifted_bins(np.random.default_rng(11), 4000, np.array([1.0, 0.0, 0.0, -1.0]))
    penalty = 0.05
    scaling = VectorScaling.fit(forecast, observed, penalty=penalty)
    expected = (np.eye(4)[observed] - scaling.apply(forecast)).mean(0) / (2 * penalty)
    np.testing.assert_allclose(scaling.biases, expected, atol=1e-4)
    assert scaling.penalty == penalty
    huge = VectorScaling.fit(forecast, observed, penalty=1e6)
    np.testing.assert_allclose(huge.weights, 1.0, atol=1e-4)
    np.testing.assert_allclose(huge.biases, 0.0, atol=1e-4)
    with pytest.raises(ValueError, match="penalty must be >= 0"):
        VectorScaling.fit(forecast, observed, penalty=-1.0)


def test_unpenalised_vector_scaling_kills_a_bin_the_calibration_set_never_observed() -> None:
    rng = np.random.default_rng(12)
    forecast, observed = _shifted_bins(rng, 3000, np.zeros(4))
    seen = observed != 3  # the calibration events never observed bin 3
    unpenalised = VectorScaling.fit(forecast[seen], observed[seen])
    penalised = VectorScaling.fit(forecast[seen], observed[seen], penalty=0.1)
    assert unpenalised.apply(forecast)[:, 3].mean() < 0.01 < 0.1 < penalised.apply(forecast)[:, 3].mean()


def test_fit_vector_scaling_chooses_the_penalty_by_held_out_groups() -> None:
    rng = np.random.default_rng(13)
    # two events with opposite bin-frequency shifts: whatever one teaches, the other contradicts
    first, second = (
        _shifted_bins(rng, 2000, np.array([1.5, 0.0, 0.0, -1.5])),
        _shifted_bins(rng, 2000, np.array([-1.5, 0.0, 0.0, 1.5])),
    )
    forecast, observed = np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]])
    groups = np.repeat(["first", "second"], 2000)
    shifted, held_out = fit_vector_scaling(forecast, observed, groups)
    assert shifted.penalty == min(held_out, key=held_out.get) > 0 and set(held_out) == {
        0.0,
        1e-4,
        1e-3,
        1e-2,
        3e-2,
        1e-1,
        3e-1,
        1.0,
    }
    # one shift shared by both groups: held out, the unpenalised scaling learns it best
    same = _shifted_bins(rng, 4000, np.array([1.5, 0.0, 0.0, -1.5]))
    shared, held_out = fit_vector_scaling(*same, groups, penalties=(0.0, 1.0))
    assert shared.penalty == 0.0 and held_out[0.0] < held_out[1.0]
    with pytest.raises(ValueError, match="groups: cross-validation needs at least two groups"):
        fit_vector_scaling(forecast, observed, np.repeat("one", 4000))
    with pytest.raises(ValueError, match="groups must have one label per point"):
        fit_vector_scaling(forecast, observed, groups[:10])


def test_std_scaling_is_the_gaussian_nll_minimiser() -> None:
    rng = np.random.default_rng(5)
    mean, std = rng.normal(size=3000), rng.uniform(0.5, 1.5, 3000)
    observed = mean + 1.7 * std * rng.standard_normal(3000)
    factor = StdScaling.fit(mean, std, observed).factor

    def nll(scale):
        return -stats.norm.logpdf(observed, mean, scale * std).mean()

    assert factor == pytest.approx(1.7, rel=0.05)
    assert nll(factor) <= min(nll(factor * 0.98), nll(factor * 1.02))


@pytest.mark.parametrize("centre", [0.0, -0.5])
def test_std_scaling_counts_dry_targets_with_their_mass_below_the_censoring_point(centre: float) -> None:
    """Calibrated forecasts of a censored rate (about 28 % and 50 % dry): the factor is 1, as the censored
    likelihood says; the closed form, which takes each dry target as a value at g(0), is not."""
    rng = np.random.default_rng(7)
    transform = PrecipitationTransform("log", 1.0)
    mean, std = rng.normal(centre, 0.5, 100_000), np.full(100_000, 0.7)
    rate = np.maximum(transform.inverse(rng.normal(mean, std)), 0.0)
    observed, dry = transform.forward(rate), rate <= 0
    assert 0.2 < dry.mean() < 0.8
    factor = StdScaling.fit(mean, std, observed, dry=dry).factor
    assert factor == pytest.approx(1.0, abs=0.015)
    assert abs(StdScaling.fit(mean, std, observed).factor - 1.0) > 0.1  # without the mass: biased

    def nll(scale: float) -> float:
        return -log_density(transform, mean, scale * std, rate).mean()

    assert nll(factor) <= min(nll(factor * 0.97), nll(factor * 1.03))
    assert StdScaling.fit(mean, std, observed, dry=np.zeros(dry.shape, bool)).factor == pytest.approx(
        StdScaling.fit(mean, std, observed).factor
    )


def test_calibration_applies_records_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    points = rng.uniform(0, 40, size=(90, 2))
    task = Task(
        points[:70],
        np.maximum(np.sin(points[:70, 0] / 7) * 4, 0),
        points[70:],
        np.maximum(np.sin(points[70:, 0] / 7) * 4, 0),
    )
    prediction = with_bin_probabilities(get_model("idw").predict(task))
    calibration = Calibration(
        probability=TemperatureScaling(1.8), std=StdScaling(1.3), fitted_on="validation tasks"
    )
    calibrated = calibration.apply(prediction)
    np.testing.assert_allclose(calibrated.transformed_std.values, 1.3 * prediction.transformed_std.values)
    np.testing.assert_allclose(
        calibrated.latent_variance + calibrated.noise_variance, calibrated.transformed_std**2
    )
    np.testing.assert_allclose(calibrated.bin_probability.sum("bin"), 1.0)
    assert (
        calibrated.attrs["calibration_temperature"] == 1.8
        and calibrated.attrs["calibration_std_factor"] == 1.3
    )
    loaded = Calibration.load(calibration.save(tmp_path / "calibration.json"))
    xr.testing.assert_identical(loaded.apply(prediction), calibrated)
    vector = Calibration(probability=VectorScaling(np.ones(10), np.zeros(10), penalty=0.1))
    loaded_vector = Calibration.load(vector.save(tmp_path / "vector.json")).probability
    assert loaded_vector.weights.tolist() == [1.0] * 10 and loaded_vector.penalty == 0.1
    assert vector.apply(prediction).attrs["calibration_vector_penalty"] == 0.1
    with pytest.raises(ValueError, match="unknown calibration method 'platt'"):
        Calibration.from_dict({"probability": {"method": "platt"}})


def test_mutual_information_is_zero_for_agreeing_draws() -> None:
    same = np.tile(np.array([0.2, 0.8]), (5, 3, 1))
    total, information = entropy_and_mutual_information(same)
    np.testing.assert_allclose(information, 0.0, atol=1e-12)
    np.testing.assert_allclose(total, -(0.2 * np.log(0.2) + 0.8 * np.log(0.8)))
    disagreeing = np.stack([np.tile([[1.0, 0.0]], (3, 1)), np.tile([[0.0, 1.0]], (3, 1))])
    np.testing.assert_allclose(entropy_and_mutual_information(disagreeing)[1], np.log(2), rtol=1e-6)


def test_fit_calibration_on_validation_tasks_improves_validation_nll() -> None:
    from weatherunc.heads.fitting import fit_calibration

    rng = np.random.default_rng(7)
    tasks = []
    for _ in range(3):
        points = rng.uniform(0, 50, size=(260, 2))
        values = np.maximum(rng.gamma(0.6, 2.0, 260) * (np.sin(points[:, 0] / 6) > 0), 0)
        tasks.append(Task(points[:60], values[:60], points[60:], values[60:]))
    calibration = fit_calibration(get_model("idw"), tasks)
    assert calibration.scores["nll_after"] <= calibration.scores["nll_before"]
    assert calibration.scores["validation_targets"] == 600 and calibration.std.factor > 0


def test_a_calibration_of_derived_bins_is_fitted_on_the_bins_it_will_apply_to() -> None:
    """Bins derived from the Gaussian follow the std factor when applied; the probability scaler
    is fitted on them as they will be, so the recorded NLL after is the applied one's, and the
    applied rain probabilities agree with the applied exceedance probabilities."""
    from weatherunc.heads.fitting import fit_calibration, pool_predictions

    rng = np.random.default_rng(9)
    tasks = []
    for _ in range(3):
        points = rng.uniform(0, 50, size=(260, 2))
        values = np.maximum(rng.gamma(0.6, 2.0, 260) * (np.sin(points[:, 0] / 6) > 0), 0)
        tasks.append(Task(points[:60], values[:60], points[60:], values[60:]))
    model = get_model("idw")
    calibration = fit_calibration(model, tasks)
    assert abs(calibration.std.factor - 1.0) > 0.05  # the std factor changes the derived bins
    applied = [calibration.apply(with_bin_probabilities(model.predict(task))) for task in tasks]
    pooled, truth = pool_predictions(applied, [task.target_values for task in tasks])
    observed = observed_bins(xr.DataArray(truth, dims="target"), pooled["bin_lower"].values)
    assert float(categorical_nll(pooled["bin_probability"], observed)) == pytest.approx(
        calibration.scores["nll_after"], rel=1e-9
    )
    uncalibrated = calibration.apply(with_bin_probabilities(model.predict(tasks[0])))
    unscaled = Calibration(std=calibration.std).apply(with_bin_probabilities(model.predict(tasks[0])))
    np.testing.assert_allclose(
        unscaled["rain_probability"].sel(threshold=[1.0, 5.0]).values,
        unscaled["exceedance_probability"].sel(threshold=[1.0, 5.0]).values,
        rtol=1e-9,
    )
    assert not np.allclose(uncalibrated["bin_probability"].values, unscaled["bin_probability"].values)


def test_calibrate_predictions_fits_what_fit_calibration_fits_on_the_same_predictions() -> None:
    from weatherunc.heads.fitting import calibrate_predictions, fit_calibration, pooled_predictions

    rng = np.random.default_rng(8)
    points = rng.uniform(0, 50, size=(300, 2))
    values = np.maximum(rng.gamma(0.6, 2.0, 300) * (np.sin(points[:, 0] / 6) > 0), 0)
    tasks = [Task(points[:80], values[:80], points[80:], values[80:])]
    model = get_model("idw")  # deterministic, so both paths see the same predictions
    pooled, truth = pooled_predictions(model, tasks)
    for method in ("temperature", "vector"):
        direct, shared = (
            fit_calibration(model, tasks, method=method, description="v"),
            calibrate_predictions(pooled, truth, method=method, description="v"),
        )
        assert direct.to_dict() == shared.to_dict() and shared.scores["validation_targets"] == 220
    from weatherunc.heads.fitting import target_groups

    halves = [
        Task(points[:80], values[:80], points[80:190], values[80:190]),
        Task(points[:80], values[:80], points[190:], values[190:]),
    ]
    assert target_groups(halves, ["east", "west"]).tolist() == ["east"] * 110 + ["west"] * 110
    groups = ["east"] * 110 + ["west"] * 110
    grouped = calibrate_predictions(pooled, truth, method="vector", groups=np.array(groups))
    assert grouped.probability.penalty == float(
        min(grouped.scores["held_out_nll_by_penalty"].items(), key=lambda item: item[1])[0]
    )
    with pytest.raises(ValueError, match="at least two groups"):
        fit_calibration(model, tasks, method="vector", task_groups=["one"])
    with pytest.raises(ValueError, match="task_groups: one label per task"):
        fit_calibration(model, tasks, method="vector", task_groups=["one", "two"])
    with pytest.raises(ValueError, match="groups must have one label per target"):
        calibrate_predictions(pooled, truth, method="vector", groups=np.array(groups[:5]))


def test_pool_predictions_concatenates_made_predictions_like_pooled_predictions() -> None:
    from weatherunc.heads.bins import with_bin_probabilities
    from weatherunc.heads.fitting import pool_predictions, pooled_predictions

    rng = np.random.default_rng(9)
    points = rng.uniform(0, 50, size=(200, 2))
    values = rng.gamma(0.6, 2.0, 200)
    tasks = [
        Task(points[:60], values[:60], points[60:130], values[60:130]),
        Task(points[:60], values[:60], points[130:], values[130:]),
    ]
    model = get_model("idw")
    made = [with_bin_probabilities(model.predict(task)) for task in tasks]
    pooled, truth = pool_predictions(made, [task.target_values for task in tasks])
    expected, expected_truth = pooled_predictions(model, tasks)
    assert pooled.sizes["target"] == 140 and pooled["bin_probability"].dims == ("target", "bin")
    xr.testing.assert_equal(pooled, expected)  # attributes differ only in timings
    np.testing.assert_array_equal(truth, expected_truth)
    np.testing.assert_array_equal(pooled["transformed_mean"].values[70:], made[1]["transformed_mean"].values)
    assert pooled.attrs == made[0].attrs


def test_pool_predictions_keeps_each_truth_in_its_own_transform() -> None:
    """Pooled over tasks whose transforms differ, each truth is transformed by its own
    prediction's transform (for the std factor) and no single transform is claimed."""
    from weatherunc.evaluation import transform_groups, transform_of
    from weatherunc.heads.fitting import pool_predictions
    from weatherunc.models.baselines import InverseDistanceInterpolator

    rng = np.random.default_rng(10)
    points = rng.uniform(0, 50, size=(120, 2))
    values = rng.gamma(0.6, 2.0, 120)
    task = Task(points[:60], values[:60], points[60:], values[60:])
    made = [
        with_bin_probabilities(
            InverseDistanceInterpolator(transform=PrecipitationTransform(offset=offset)).predict(task)
        )
        for offset in (0.3, 3.0)
    ]
    pooled, truth = pool_predictions(made, [task.target_values, task.target_values])
    np.testing.assert_allclose(
        pooled["transformed_truth"].values,
        np.concatenate([np.log(values[60:] + 0.3), np.log(values[60:] + 3.0)]),
    )
    # the per-target offsets record each target's transform; no single transform is claimed
    np.testing.assert_array_equal(pooled["transform_offset"].values, np.repeat([0.3, 3.0], 60))
    assert [transform.offset for transform, _ in transform_groups(pooled)] == [0.3, 3.0]
    with pytest.raises(ValueError, match="offset"):
        transform_of(pooled)
    boxcox = with_bin_probabilities(
        InverseDistanceInterpolator(transform=PrecipitationTransform("boxcox", 0.3, lam=0.5)).predict(task)
    )
    mixed, _ = pool_predictions([made[0], boxcox], [task.target_values, task.target_values])
    assert "transform" not in mixed.attrs  # kinds differ: the transform is not read from the pool
    with pytest.raises(ValueError, match="no transform is recorded"):
        transform_groups(mixed)


def test_std_calibration_of_a_prediction_with_two_offsets_equals_calibrating_each() -> None:
    from weatherunc.models.baselines import InverseDistanceInterpolator

    rng = np.random.default_rng(11)
    points = rng.uniform(0, 50, size=(120, 2))
    values = rng.gamma(0.6, 2.0, 120)
    task = Task(points[:60], values[:60], points[60:], values[60:])
    made = [
        InverseDistanceInterpolator(transform=PrecipitationTransform(offset=offset)).predict(task)
        for offset in (0.3, 3.0)
    ]
    calibration = Calibration(std=StdScaling(factor=1.3))
    together = calibration.apply(xr.concat(made, dim="target").assign_attrs(made[0].attrs))
    for name in (
        "precipitation_mean",
        "precipitation_std",
        "precipitation_quantile",
        "exceedance_probability",
    ):
        np.testing.assert_allclose(
            together[name].values,
            np.concatenate([calibration.apply(prediction)[name].values for prediction in made]),
            rtol=1e-12,
            err_msg=name,
        )


def test_effective_sample_size_is_kish_s() -> None:
    from weatherunc.heads.fitting import effective_sample_size

    assert effective_sample_size(np.ones(40)) == pytest.approx(40.0)
    assert effective_sample_size(np.array([3.0, 1.0])) == pytest.approx(16.0 / 10.0)  # (3 + 1)^2 / (9 + 1)
    assert effective_sample_size(np.array([0.0, 5.0, 0.0])) == pytest.approx(1.0)
    assert effective_sample_size(np.zeros(3)) == 0.0
