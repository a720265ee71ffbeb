"""Self-calibration on pseudo-gaps of a task's own contexts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

import numpy as np
import pytest
import xarray as xr

from weatherunc.evaluation import distance_to_nearest_context, interval_coverage, score_prediction
from weatherunc.heads.calibration import rescale_std
from weatherunc.heads.self_calibration import (
    COVERAGE_FIRST_OPTIONS,
    EarlierFrame,
    SelfCalibrated,
    SelfCalibrationOptions,
    fit_self_calibration,
    model_options,
    pooled_pseudo_targets,
    pseudo_predictions,
    pseudo_task,
    self_calibrate,
)
from weatherunc.heads.self_calibration.pseudo_targets import conclusive, predicted_bin_weights
from weatherunc.models.predictive import prediction_dataset
from weatherunc.prediction import Prediction
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform


def _field_task(seed: int = 0, n_context: int = 1500, n_target: int = 400) -> Task:
    """A smooth log-rate field (rarely dry) observed on a dense set of contexts, with a gap of targets."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 60, size=(4 * (n_context + n_target), 2))
    in_gap = np.hypot(points[:, 0] - 30, points[:, 1] - 30) < 8
    context, target = points[~in_gap][:n_context], points[in_gap][:n_target]

    def rate(xy: np.ndarray) -> np.ndarray:
        return np.expm1(
            np.maximum(
                2.5 + np.sin(xy[:, 0] / 6.0) + np.cos(xy[:, 1] / 9.0) + 0.3 * rng.normal(size=len(xy)), 0.0
            )
        )

    return Task(
        context, rate(context), target, rate(target), target_coords={"x": target[:, 0], "y": target[:, 1]}
    )


#: ``mean_error_tolerance`` that turns the mean guard off. :class:`OverconfidentModel`'s median is
#: the nearest context, noise included, so the wider std that restores its coverage also lifts its
#: rate mean above the truth, and the guard can drop the fit; its own test is
#: ``test_std_factors_that_carry_the_mean_away_are_dropped``.
NO_MEAN_GUARD = np.inf


class OverconfidentModel:
    """Predicts the truth's level from the nearest context with a std too small by ``shrink``."""

    name = "overconfident"

    def __init__(self, shrink: float) -> None:
        self.shrink = shrink

    def predict(self, task: Task) -> xr.Dataset:
        from scipy.spatial import cKDTree

        transform = PrecipitationTransform()
        _, nearest = cKDTree(task.context_coordinates).query(task.target_coordinates)
        mean = transform.forward(task.context_values[nearest])
        distance = distance_to_nearest_context(task)
        variance = (0.3**2 + (0.1 * distance) ** 2) * self.shrink**2
        return prediction_dataset(
            task,
            transformed_mean=mean,
            latent_variance=np.zeros(task.n_target),
            noise_variance=variance,
            transform=transform,
            model=self.name,
            attrs={"fit_seconds": 0.0, "predict_seconds": 0.0},
        )


def test_pseudo_task_hides_contexts_and_weights_match_the_real_distances() -> None:
    task = _field_task()
    options = SelfCalibrationOptions(pseudo_fraction=0.2)
    pseudo, weights, discs, hidden = pseudo_task(task, options)
    assert discs.shape == (pseudo.n_target,) and np.array_equal(np.unique(discs), np.arange(discs.max() + 1))
    assert (
        pseudo.n_target == int(0.2 * task.n_context) and pseudo.n_context == task.n_context - pseudo.n_target
    )
    both = np.vstack([pseudo.context_coordinates, pseudo.target_coordinates])
    assert len(np.unique(both, axis=0)) == task.n_context  # a partition of the contexts
    np.testing.assert_array_equal(task.context_coordinates[hidden], pseudo.target_coordinates)
    hideable = np.zeros(task.n_context, dtype=bool)
    hideable[::3] = True  # discs hide only these
    _, _, _, restricted = pseudo_task(task, options, hideable=hideable)
    assert restricted.size == pseudo.n_target and np.all(hideable[restricted])
    assert weights.shape == (pseudo.n_target,) and weights.mean() == pytest.approx(1.0)
    edges = np.asarray(options.distance_edges_km)
    real = np.histogram(distance_to_nearest_context(task), edges)[0]
    pseudo_distance = distance_to_nearest_context(pseudo)
    weighted = np.histogram(pseudo_distance, edges, weights=weights)[0]
    covered = np.histogram(pseudo_distance, edges)[0] > 0
    np.testing.assert_allclose(
        (weighted / weighted.sum())[covered], (real[covered] / real[covered].sum()), atol=1e-9
    )
    with pytest.raises(ValueError, match="too few"):
        pseudo_task(Task(np.zeros((1, 2)), np.ones(1), np.ones((1, 2)), np.ones(1)), options)
    # smaller discs hide the same budget in more of them
    small = pseudo_task(task, SelfCalibrationOptions(pseudo_fraction=0.2, disc_radius_factors=(1.0, 1.0)))
    assert small[0].n_target == pseudo.n_target and small[2].max() > discs.max()


def test_rescale_std_scales_each_target_and_recomputes_the_rate_distribution() -> None:
    task = _field_task(n_context=50, n_target=30)
    prediction = OverconfidentModel(1.0).predict(task)
    factors = np.linspace(0.5, 2.0, task.n_target)
    rescaled = rescale_std(prediction, factors)
    np.testing.assert_allclose(rescaled.transformed_std.values, prediction.transformed_std.values * factors)
    np.testing.assert_allclose(rescaled.noise_variance.values, prediction.noise_variance.values * factors**2)
    wider = (
        rescaled.precipitation_quantile.sel(quantile=0.95).values
        - rescaled.precipitation_quantile.sel(quantile=0.05).values
    )
    narrower = (
        prediction.precipitation_quantile.sel(quantile=0.95).values
        - prediction.precipitation_quantile.sel(quantile=0.05).values
    )
    assert np.all(wider[factors > 1.01] > narrower[factors > 1.01])
    with pytest.raises(ValueError, match="factor"):
        rescale_std(prediction, 0.0)


@pytest.mark.parametrize("shrink", [0.4, 2.5])
def test_self_calibration_restores_the_coverage_of_a_miscalibrated_model(shrink: float) -> None:
    model = OverconfidentModel(shrink)
    options = SelfCalibrationOptions(mean_error_tolerance=NO_MEAN_GUARD)
    plain, calibrated = [], []
    for seed in range(3):
        task = _field_task(seed=seed)
        plain.append(score_prediction(model.predict(task), task)["coverage_90"])
        calibrated_prediction = self_calibrate(model, task, options=options)
        calibrated.append(score_prediction(calibrated_prediction, task)["coverage_90"])
        record = json.loads(calibrated_prediction.attrs["self_calibration"])
        assert record["method"] == "self" and record["scores"]["pseudo_targets"] > 100
        assert (record["overall_std_factor"] > 1) == (shrink < 1)
        assert abs(record["scores"]["after"]["coverage_90"] - 0.9) < abs(
            record["scores"]["before"]["coverage_90"] - 0.9
        )
        np.testing.assert_allclose(calibrated_prediction.bin_probability.sum("bin").values, 1.0, rtol=1e-9)
    assert abs(np.mean(plain) - 0.9) > 0.09  # the check can fail: the model is miscalibrated
    assert abs(np.mean(calibrated) - 0.9) < 0.08


def test_self_calibration_that_keeps_the_mean_widens_an_overconfident_model_without_raising_its_mean() -> (
    None
):
    model, task = OverconfidentModel(0.4), _field_task(seed=0)
    plain = model.predict(task)
    median_kept = self_calibrate(
        model, task, prediction=plain, options={"mean_error_tolerance": NO_MEAN_GUARD}
    )
    mean_kept = self_calibrate(model, task, prediction=plain, options={"keep_mean": True})
    record = json.loads(mean_kept.attrs["self_calibration"])
    assert record["keep_mean"] and record["overall_std_factor"] > 1 and record["scores"]["std_factors_kept"]
    assert (
        record["scores"]["after"]["rmse"] == record["scores"]["before"]["rmse"]
    )  # the mean guard cannot bite
    np.testing.assert_allclose(
        mean_kept.precipitation_mean.values, plain.precipitation_mean.values, rtol=1e-6
    )
    assert np.all(mean_kept.precipitation_mean.values <= median_kept.precipitation_mean.values + 1e-9)
    assert (
        score_prediction(mean_kept, task)["coverage_90"] > score_prediction(plain, task)["coverage_90"] + 0.05
    )


def test_too_few_pseudo_targets_fall_back_to_no_calibration() -> None:
    task = _field_task(n_context=60, n_target=20)
    model = OverconfidentModel(0.5)
    once = SelfCalibrationOptions(max_repeats=1)
    prediction = SelfCalibrated(model, options=once).predict(task)
    record = json.loads(prediction.attrs["self_calibration"])
    assert record["method"] == "none" and "minimum_targets" in record["reason"]
    np.testing.assert_array_equal(
        prediction.transformed_std.values, model.predict(task).transformed_std.values
    )
    assert prediction.attrs["model"] == "overconfident+self"
    pseudo, weights, _, _ = pseudo_task(task, once)
    assert (
        fit_self_calibration(
            model.predict(pseudo), pseudo.target_values, distance_to_nearest_context(pseudo), weights, once
        )
        is None
    )


def test_a_small_network_is_drawn_again_until_there_are_enough_pseudo_targets() -> None:
    task = _field_task(n_context=60, n_target=20)
    options = SelfCalibrationOptions(mean_error_tolerance=NO_MEAN_GUARD)
    pseudo = pseudo_predictions(OverconfidentModel(0.5), task, options)
    draws, truth = pseudo.draws, pseudo.truth
    per_draw = int(options.pseudo_fraction * task.n_context)
    # 18 contexts a draw, each context hidden once: 60 < 2 x 50 pseudo-targets after four draws
    assert draws == int(np.ceil(task.n_context / per_draw)) and truth.size == task.n_context
    assert pseudo.prediction.sizes["target"] == truth.size == pseudo.distance.size == pseudo.weights.size
    np.testing.assert_array_equal(np.sort(truth), np.sort(task.context_values))  # every context once
    # disc numbers are unique over draws: each draw's discs follow the previous draw's
    assert pseudo.discs.size == truth.size and np.unique(pseudo.discs).size == pseudo.discs.max() + 1
    assert np.all(np.diff([pseudo.discs[i * per_draw : (i + 1) * per_draw].min() for i in range(draws)]) > 0)
    record = json.loads(
        self_calibrate(OverconfidentModel(0.5), task, options=options).attrs["self_calibration"]
    )
    assert (
        record["method"] == "self" and record["scores"]["draws"] == draws and record["overall_std_factor"] > 1
    )
    assert record["scores"]["discs"] == np.unique(pseudo.discs).size


def _wide_prediction_with_low_truths(seed: int) -> tuple[xr.Dataset, np.ndarray]:
    """400 targets predicted at 2 with a transformed std of 0.8 under ``log(rate + 0.1)``, whose
    truths [mm/h] lie near 2 there except 20 % far below: covering those needs wide intervals,
    which carry the rate's mean away and cost CRPS."""
    rng = np.random.default_rng(seed)
    n = 400
    truth_level = rng.normal(2.0, 0.02, size=n)
    truth_level[: int(0.2 * n)] -= 4.0
    points = rng.uniform(0, 50, size=(n, 2))
    transform = PrecipitationTransform(kind="log", offset=0.1)
    truth = transform.inverse(truth_level)
    prediction = prediction_dataset(
        Task(points, np.ones(n), points, truth),
        transformed_mean=np.full(n, 2.0),
        latent_variance=np.zeros(n),
        noise_variance=np.full(n, 0.8**2),
        transform=transform,
        model="sharp",
    )
    return prediction, truth


def test_std_factors_that_cost_crps_are_dropped() -> None:
    """Truths far off in a few places: covering them needs wide intervals that cost the CRPS."""
    rng = np.random.default_rng(5)
    n = 400
    truth_level = rng.normal(2.0, 0.02, size=n)
    truth_level[: int(0.2 * n)] += 1.0  # 20 % far above the forecast: 90 % coverage needs half of them
    points = rng.uniform(0, 50, size=(n, 2))
    transform = PrecipitationTransform()
    prediction = prediction_dataset(
        Task(points, np.ones(n), points, np.expm1(truth_level)),
        transformed_mean=np.full(n, 2.0),
        latent_variance=np.zeros(n),
        noise_variance=np.full(n, 0.05**2),
        transform=transform,
        model="sharp",
    )
    options = SelfCalibrationOptions()
    fitted = fit_self_calibration(prediction, np.expm1(truth_level), np.full(n, 2.0), np.ones(n), options)
    assert not fitted.scores["std_factors_kept"] and fitted.factors == (1.0,) * len(fitted.factors)
    assert "crps_rise" in fitted.scores["std_factors_dropped_by"]
    assert fitted.scores["after"]["crps"] == fitted.scores["before"]["crps"]
    loose = fit_self_calibration(
        prediction,
        np.expm1(truth_level),
        np.full(n, 2.0),
        np.ones(n),
        SelfCalibrationOptions(crps_tolerance=10.0),
    )
    assert loose.scores["std_factors_kept"] and loose.overall_factor > 2


def test_without_guards_the_std_factors_are_kept_that_each_guard_drops() -> None:
    """``guards=False`` keeps the factors that the evidence, CRPS and mean guards drop (the truths
    of the two tests above), and its record names no guard; the coverage-first preset keeps the mean."""
    prediction, truth = _wide_prediction_with_low_truths(seed=5)
    n = truth.size

    def fit(options: SelfCalibrationOptions):
        return fit_self_calibration(prediction, truth, np.full(n, 2.0), np.ones(n), options)

    guarded = fit(SelfCalibrationOptions(evidence_z=100.0))
    assert guarded.scores["std_factors_dropped_by"] == ["coverage_within_noise"]
    assert set(fit(SelfCalibrationOptions(evidence_z=0.0)).scores["std_factors_dropped_by"]) == {
        "crps_rise",
        "mean_error_rise",
    }
    free = fit(SelfCalibrationOptions(evidence_z=100.0, guards=False))
    assert free.scores["std_factors_kept"] and free.scores["std_factors_dropped_by"] == []
    per_bin = fit(SelfCalibrationOptions(evidence="per_bin", evidence_z=100.0, guards=False))
    assert per_bin.factors == free.factors and per_bin.overall_factor == free.overall_factor
    assert free.overall_factor > 2
    assert free.scores["after"]["coverage_90"] > guarded.scores["after"]["coverage_90"]
    first = fit(SelfCalibrationOptions.from_options(COVERAGE_FIRST_OPTIONS))
    assert first.scores["std_factors_kept"] and first.keep_mean
    assert first.scores["after"]["rmse"] == pytest.approx(first.scores["before"]["rmse"], rel=1e-3)


def test_without_guards_every_draw_is_conclusive() -> None:
    pseudo = pseudo_predictions(OverconfidentModel(0.85), _field_task(seed=1), SelfCalibrationOptions())
    assert not conclusive(pseudo, SelfCalibrationOptions())
    assert conclusive(pseudo, SelfCalibrationOptions(guards=False))


def test_the_weighted_bin_scaler_fits_the_pseudo_targets_that_carry_weight() -> None:
    """With ``probability_weighted`` the temperature is fitted on the weighted pseudo-targets only
    (the others weigh 0); without it, on all of them."""
    from weatherunc.heads.bins import with_bin_probabilities
    from weatherunc.heads.calibration import TemperatureScaling
    from weatherunc.heads.fitting import pool_predictions, probabilities_and_observed_bins

    rng = np.random.default_rng(14)
    n = 600
    points = rng.uniform(0, 50, size=(n, 2))
    mean = rng.normal(0.5, 1.0, n)
    near = np.arange(n) < n // 2
    truth = np.maximum(np.expm1(rng.normal(mean, np.where(near, 0.3, 1.5))), 0.0)  # sharp near, wide far
    prediction = prediction_dataset(
        Task(points, np.ones(n), points, truth),
        transformed_mean=mean,
        latent_variance=np.zeros(n),
        noise_variance=np.full(n, 0.8**2),
        transform=PrecipitationTransform(),
        model="toy",
    )
    weights = np.where(near, 0.0, 2.0)
    fits = {
        weighted: fit_self_calibration(
            prediction,
            truth,
            np.full(n, 2.0),
            weights,
            SelfCalibrationOptions(
                probability="temperature",
                probability_cross_validated=False,
                evidence_z=np.inf,  # the std as predicted: the bins as derived
                probability_weighted=weighted,
            ),
        )
        for weighted in (True, False)
    }
    pooled, _ = pool_predictions([with_bin_probabilities(prediction)], [truth])
    probabilities, observed = probabilities_and_observed_bins(pooled, truth)
    far = TemperatureScaling.fit(probabilities[~near], observed[~near]).temperature
    every = TemperatureScaling.fit(probabilities, observed).temperature
    assert fits[True].probability.temperature == pytest.approx(far, rel=1e-4)
    assert fits[False].probability.temperature == pytest.approx(every, rel=1e-4)
    assert abs(far - every) > 0.1


def test_std_factors_that_carry_the_mean_away_are_dropped() -> None:
    """Under a log transform the rate's mean grows as exp(std^2 / 2): widening the std until 20 %
    of targets far below the forecast are half covered multiplies the mean many times over."""
    prediction, truth = _wide_prediction_with_low_truths(seed=6)
    n = truth.size

    def fit(**options: float):
        return fit_self_calibration(
            prediction,
            truth,
            np.full(n, 2.0),
            np.ones(n),
            SelfCalibrationOptions(crps_tolerance=10.0, **options),
        )

    guarded, unguarded = fit(), fit(mean_error_tolerance=1e6)
    assert unguarded.scores["std_factors_kept"] and unguarded.overall_factor > 2
    assert unguarded.scores["after"]["rmse"] > 2 * unguarded.scores["before"]["rmse"]
    assert not guarded.scores["std_factors_kept"] and guarded.factors == (1.0,) * len(guarded.factors)
    assert guarded.scores["std_factors_dropped_by"] == ["mean_error_rise"]
    assert guarded.scores["after"]["rmse"] == guarded.scores["before"]["rmse"]


def test_options_are_checked() -> None:
    for bad in (
        {"pseudo_fraction": 1.0},
        {"level": 0.0},
        {"distance_edges_km": (0.0, 5.0, 2.0)},
        {"max_repeats": 0},
        {"crps_tolerance": -0.1},
        {"evidence_z": -1.0},
        {"mean_error_tolerance": -0.1},
        {"evidence_draws": 0},
        {"evidence_draws": 9, "max_repeats": 8},
        {"coverage_tolerance": -0.1},
        {"probability_matching": "distance"},
        {"max_matching_weight": 1.0},
        {"evidence_draws": 2.5},
        {"coverage_tolerance": "0.1"},
        {"probability_cross_validated": 1},
        {"probability": "Vector"},
        {"vector_penalty": -1.0},
        {"max_pseudo_targets": 0},
        {"distance_edges_km": 5},
        {"disc_radius_factors": (2.0, 1.0)},
        {"disc_radius_factors": (0.0, 1.0)},
        {"disc_radius_factors": (1.0, 2.0, 3.0)},
        {"disc_radius_factors": "wide"},
        {"disc_radius_factors": "13"},
        {"disc_radius_factors": (float("inf"), float("inf"))},
    ):
        with pytest.raises(ValueError):
            SelfCalibrationOptions(**bad)


def test_options_from_plain_values_name_an_unknown_field() -> None:
    numpy_numbers = SelfCalibrationOptions(seed=np.int64(3), level=np.float32(0.8), evidence_z=np.int64(2))
    assert numpy_numbers.seed == 3 and numpy_numbers.level == pytest.approx(0.8)
    record = json.loads(  # the changed options are recorded as JSON
        self_calibrate(OverconfidentModel(1.0), _field_task(seed=1), options=numpy_numbers).attrs[
            "self_calibration"
        ]
    )
    assert record["scores"]["options"]["seed"] == 3
    options = SelfCalibrationOptions.from_options({"evidence_draws": 3, "distance_edges_km": [0, 2, 8]})
    assert options.evidence_draws == 3 and options.distance_edges_km == (0, 2, 8)
    with pytest.raises(ValueError, match="no field 'draws'"):
        SelfCalibrationOptions.from_options({"draws": 3})
    wrapped = SelfCalibrated(OverconfidentModel(1.0), options={"evidence_draws": 3})
    assert wrapped.options == SelfCalibrationOptions(evidence_draws=3)
    with pytest.raises(TypeError, match="options must be"):
        SelfCalibrated(OverconfidentModel(1.0), options=3)


class ModelWithDefaults(OverconfidentModel):
    """:class:`OverconfidentModel` with self-calibration options of its own."""

    self_calibration_defaults: ClassVar[Mapping[str, object]] = MappingProxyType(
        {"evidence_draws": 2, "seed": 5}
    )


def test_model_options_start_from_the_model_s_own_defaults() -> None:
    model = ModelWithDefaults(1.0)
    assert model_options(OverconfidentModel(1.0)) == SelfCalibrationOptions()
    assert model_options(model) == SelfCalibrationOptions(evidence_draws=2, seed=5)
    # a mapping updates them field by field; options given whole are used as they are
    assert model_options(model, {"seed": 1}) == SelfCalibrationOptions(evidence_draws=2, seed=1)
    assert model_options(model, SelfCalibrationOptions()) == SelfCalibrationOptions()
    with pytest.raises(TypeError, match="options must be"):
        model_options(model, 3)
    wrapped = SelfCalibrated(model)
    assert wrapped.options.evidence_draws == 2
    record = json.loads(wrapped.predict(_field_task(seed=2)).attrs["self_calibration"])
    assert record["scores"]["options"] == {"evidence_draws": 2, "seed": 5}
    direct = json.loads(self_calibrate(model, _field_task(seed=2)).attrs["self_calibration"])
    assert direct["scores"]["options"] == record["scores"]["options"]


def test_a_job_s_shared_fit_keeps_the_job_model_s_own_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_jobs import JOB
    from weatherunc.pipelines import stages
    from weatherunc.pipelines.job_config import JobConfig

    job = JobConfig(
        **{
            **JOB,
            "output_dir": str(tmp_path),
            "calibration": {"self": {"window_frames": 1, "options": {"seed": 7}}},
        }
    )
    monkeypatch.setattr(stages, "_job_model", lambda job: ModelWithDefaults(1.0))
    # a frame's shared fit (here a model without options of its own) keeps the job model's
    wrapped = stages.load_model(job, fitted=OverconfidentModel(1.0))
    assert wrapped.options == SelfCalibrationOptions(evidence_draws=2, seed=7)


def test_a_job_fingerprint_holds_the_model_s_own_options_only_where_it_has_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from tests.test_jobs import JOB
    from weatherunc.pipelines import run_job, stages
    from weatherunc.pipelines.job_config import JobConfig

    job = JobConfig(**{**JOB, "output_dir": str(tmp_path), "calibration": "self"})
    observations = SimpleNamespace(recorded={"files": []}, digest="observed")
    fingerprints = {}
    for model in (OverconfidentModel(1.0), ModelWithDefaults(1.0)):
        monkeypatch.setattr(stages, "_job_model", lambda job, model=model: model)
        monkeypatch.setattr(run_job, "checked_model", lambda job, model=model: model)
        fingerprints[model.__class__.__name__], inputs = run_job._job_fingerprint(job, observations)
    assert inputs["model_self_calibration_options"] == {"evidence_draws": 2, "seed": 5}
    assert fingerprints["OverconfidentModel"] != fingerprints["ModelWithDefaults"]
    plain = run_job._job_fingerprint(job, observations)  # the same model again: the same fingerprint
    assert plain[0] == fingerprints["ModelWithDefaults"]
    monkeypatch.setattr(stages, "_job_model", lambda job: OverconfidentModel(1.0))
    monkeypatch.setattr(run_job, "checked_model", lambda job: OverconfidentModel(1.0))
    assert "model_self_calibration_options" not in run_job._job_fingerprint(job, observations)[1]


def test_the_neural_processes_and_their_ensembles_take_their_own_options() -> None:
    import torch

    from weatherunc.heads.self_calibration import NEURAL_PROCESS_OPTIONS
    from weatherunc.models.convnp.config import ConvNPConfig
    from weatherunc.models.convnp.interpolator import ConvNPInterpolator
    from weatherunc.models.convnp.model import ConvNP
    from weatherunc.models.ensemble import EnsembleInterpolator
    from weatherunc.models.gp import GaussianProcessInterpolator
    from weatherunc.models.neural_process.config import NeuralProcessConfig
    from weatherunc.models.neural_process.interpolator import NeuralProcessInterpolator
    from weatherunc.models.neural_process.model import NeuralProcess

    torch.manual_seed(0)
    tiny = {"hidden": 8, "latent_dimension": 2, "heads": 2, "self_attention_layers": 1}
    anp = NeuralProcessInterpolator(model=NeuralProcess(NeuralProcessConfig(**tiny)))
    convnp = ConvNPInterpolator(model=ConvNP(ConvNPConfig(channels=(4, 8), decoder_hidden=4)))
    gp = GaussianProcessInterpolator()
    expected = SelfCalibrationOptions.from_options(NEURAL_PROCESS_OPTIONS)
    assert expected != SelfCalibrationOptions()
    assert model_options(anp) == model_options(convnp) == expected
    assert model_options(gp) == SelfCalibrationOptions()
    assert model_options(EnsembleInterpolator([anp, anp])) == expected
    assert model_options(EnsembleInterpolator([anp, gp])) == SelfCalibrationOptions()  # they differ
    # a job's options update the model's own
    assert model_options(anp, {"evidence_draws": 2}) == SelfCalibrationOptions(
        evidence_draws=2, **NEURAL_PROCESS_OPTIONS
    )


def test_job_with_self_calibration_records_it(tmp_path: Path) -> None:
    from tests.test_jobs import JOB
    from weatherunc import conventions
    from weatherunc.pipelines.job_config import JobConfig
    from weatherunc.pipelines.run_job import run_job

    job = JobConfig(
        **{
            **JOB,
            "name": "mrms_idw_self",
            "calibration": "self",
            "frames": {"start": "2019-06-10T00:30", "limit": 1},
            "output_dir": str(tmp_path),
        }
    )
    assert job.self_calibration and job.calibration_file is None
    report = run_job(job, scheduler="synchronous", progress=False)
    store = xr.open_zarr(report.store, consolidated=False)
    assert store.attrs["calibration"].startswith("self")
    metrics = json.loads(report.metrics.read_text())
    assert metrics["scores"]["crps"] > 0
    # each tile with targets recorded what it fitted, and the records outlive the staging folder
    records = metrics["self_calibration"]
    withheld = store.observation.isel(time=0) == conventions.WITHHELD
    assert bool(withheld.any().compute())  # withheld blocks to predict
    assert records and all(record["frame"] == 0 for record in records)
    assert len({record["tile"] for record in records}) == len(records)
    assert all(record["method"] in ("self", "none") and record["seconds"] >= 0 for record in records)


def test_a_resumed_job_keeps_the_records_of_tiles_written_before_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_jobs import JOB, write_tile_stopping_after
    from weatherunc.pipelines.job_config import JobConfig
    from weatherunc.pipelines.job_store import JobStore
    from weatherunc.pipelines.run_job import run_job

    settings = {**JOB, "name": "mrms_idw_self", "calibration": "self", "frames": {"limit": 1}}
    clean = run_job(
        JobConfig(**settings, output_dir=str(tmp_path / "clean")), scheduler="synchronous", progress=False
    )
    expected = [(r["frame"], r["tile"]) for r in json.loads(clean.metrics.read_text())["self_calibration"]]
    job = JobConfig(**settings, output_dir=str(tmp_path / "resumed"))
    # stopped after two tiles that recorded a self-calibration
    monkeypatch.setattr(
        JobStore, "write_tile", write_tile_stopping_after(2, lambda kwargs: bool(kwargs.get("record")))
    )
    with pytest.raises(RuntimeError, match="stopped"):
        run_job(job, scheduler="synchronous", progress=False)
    monkeypatch.undo()
    report = run_job(job, scheduler="synchronous", progress=False)
    assert report.tiles_written < report.tiles_total  # the tiles written before the stop were kept
    resumed = json.loads(report.metrics.read_text())["self_calibration"]
    assert [(r["frame"], r["tile"]) for r in resumed] == expected and len(expected) > 2


def test_a_job_window_calibrates_each_frame_on_the_frames_before_it_too(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from tests.test_jobs import JOB
    from weatherunc.pipelines.job_config import JobConfig
    from weatherunc.pipelines.run_job import run_job

    def job(calibration: object, name: str) -> JobConfig:
        return JobConfig(
            **{
                **JOB,
                "name": name,
                "calibration": calibration,
                "frames": {"start": "2019-06-10T00:30", "limit": 2},
                "output_dir": str(tmp_path),
            }
        )

    single, window = job("self", "single"), job({"self": {"window_frames": 2}}, "window")
    assert (single.self_calibration_window, window.self_calibration_window) == (1, 2)
    assert window.self_calibration and window.calibration_file is None
    assert single.fingerprint() != window.fingerprint()
    assert window.model_dump(mode="json")["calibration"] == {"self": {"window_frames": 2}}  # as written
    with pytest.raises(ValidationError, match="window_frames"):
        job({"self": {"window_frames": 0}}, "bad")
    stores = {}
    for config in (single, window):
        report = run_job(config, scheduler="synchronous", progress=False)
        stores[config.name] = xr.open_zarr(report.store, consolidated=False)
    assert stores["window"].attrs["calibration"].endswith("and of the 1 frames before it")
    std = {name: store.precipitation_std.values for name, store in stores.items()}
    np.testing.assert_array_equal(std["single"][0], std["window"][0])  # nothing before the first frame
    predicted = np.isfinite(std["single"][1])
    assert predicted.any() and not np.allclose(std["single"][1][predicted], std["window"][1][predicted])


def test_rescale_std_takes_gridded_predictions() -> None:
    from weatherunc.models.predictive import to_grid

    task = _field_task(n_context=50, n_target=30)
    rows, columns = np.arange(task.n_target) // 6, np.arange(task.n_target) % 6
    task = Task(
        task.context_coordinates,
        task.context_values,
        task.target_coordinates,
        task.target_values,
        target_coords={"row": rows, "column": columns},
    )
    prediction = OverconfidentModel(1.0).predict(task)
    grid = to_grid(
        prediction,
        xr.DataArray(
            np.zeros((rows[-1] + 1, 6)),
            dims=("y", "x"),
            coords={"y": np.arange(rows[-1] + 1.0), "x": np.arange(6.0)},
        ),
    )
    rescaled = rescale_std(grid, 2.0)
    np.testing.assert_allclose(
        rescaled.transformed_std.values, 2.0 * grid.transformed_std.values
    )  # NaN off the targets on both
    assert rescaled.precipitation_std.dims == ("y", "x")


def test_a_gp_is_fitted_once_and_its_pseudo_tasks_share_that_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GP's pseudo-tasks are conditioned with the real task's fit: one fit per self-calibrated
    prediction (two when the plain prediction is passed in), and the mean is the plain GP's."""
    import weatherunc.models.gp.interpolator as interpolator
    from weatherunc.models.gp import GaussianProcessInterpolator

    fits: list[int] = []
    original = interpolator.fit_task

    def counted(task: Task, config):
        fits.append(task.n_context)
        return original(task, config)

    monkeypatch.setattr(interpolator, "fit_task", counted)
    task = _field_task(n_context=400, n_target=60)
    gp = GaussianProcessInterpolator()
    calibrated = self_calibrate(gp, task)
    assert fits == [task.n_context]  # the pseudo-tasks (fewer contexts) were not fitted
    record = json.loads(calibrated.attrs["self_calibration"])
    assert record["method"] == "self" and record["scores"]["pseudo_targets"] == int(0.3 * task.n_context)
    plain = gp.predict(task)
    np.testing.assert_array_equal(calibrated.transformed_mean.values, plain.transformed_mean.values)
    assert calibrated.attrs["hyperparameters"] == "per task"
    fits.clear()
    again = self_calibrate(gp, task, prediction=plain)
    assert fits == [task.n_context]  # the given prediction is kept; the pseudo-tasks need the fit once
    np.testing.assert_allclose(again.transformed_std.values, calibrated.transformed_std.values)


def _grid_frame(seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth rain field on a 1 km grid: values ``[size, size]`` in mm/h and the axes in km."""
    rng = np.random.default_rng(seed)
    axis = np.arange(size, dtype=float)
    x, y = np.meshgrid(axis, axis)
    level = 2.0 + np.sin(x / 5.0 + seed) + np.cos(y / 7.0) + 0.2 * rng.normal(size=x.shape)
    return np.expm1(np.maximum(level, 0.0)), axis, axis


def _grid_task(values: np.ndarray, axis: np.ndarray) -> Task:
    """Every fourth observed pixel outside a central 12 px gap as contexts; the gap as targets."""
    rows, columns = np.meshgrid(np.arange(values.shape[0]), np.arange(values.shape[1]), indexing="ij")
    gap = (np.abs(rows - 24) < 6) & (np.abs(columns - 24) < 6)
    context = ~gap & (rows % 2 == 0) & (columns % 2 == 0)
    return Task(
        np.stack([axis[columns[context]], axis[rows[context]]], axis=1),
        values[context],
        np.stack([axis[columns[gap]], axis[rows[gap]]], axis=1),
        values[gap],
    )


def test_an_earlier_frame_gives_a_task_of_its_observations_where_the_task_lies() -> None:
    values, axis, _ = _grid_frame(0)
    task = _grid_task(values, axis)
    earlier_values, _, _ = _grid_frame(1)
    earlier_values[:10, :] = np.nan  # unobserved rows give no context
    earlier = EarlierFrame(earlier_values, axis, axis).task_like(task, seed=3)
    assert earlier.n_context == task.n_context  # subsampled to the task's own count
    assert np.all(earlier.context_coordinates[:, 1] >= 10)
    rows, columns = (
        earlier.context_coordinates[:, 1].astype(int),
        earlier.context_coordinates[:, 0].astype(int),
    )
    np.testing.assert_array_equal(earlier.context_values, earlier_values[rows, columns])
    np.testing.assert_array_equal(earlier.target_coordinates, task.target_coordinates)
    assert np.all(np.isnan(earlier.target_values))
    with pytest.raises(ValueError, match="values: shape"):
        EarlierFrame(earlier_values[:, :5], axis, axis)
    with pytest.raises(ValueError, match="context point"):
        EarlierFrame(np.full_like(values, np.nan), axis, axis).task_like(task)


def test_a_rolling_window_pools_the_pseudo_targets_of_earlier_frames() -> None:
    values, axis, _ = _grid_frame(0)
    task = _grid_task(values, axis)
    model = OverconfidentModel(0.5)
    options = SelfCalibrationOptions(mean_error_tolerance=NO_MEAN_GUARD)
    single = json.loads(SelfCalibrated(model, options).predict(task).attrs["self_calibration"])
    blank = np.full_like(values, np.nan)
    frames = tuple(EarlierFrame(_grid_frame(seed)[0], axis, axis) for seed in (1, 2)) + (
        EarlierFrame(blank, axis, axis),  # nothing observed: skipped
    )
    windowed = json.loads(
        SelfCalibrated(model, options, earlier_frames=frames).predict(task).attrs["self_calibration"]
    )
    assert windowed["scores"]["window_frames"] == 3 and single["scores"]["window_frames"] == 1
    assert windowed["scores"]["pseudo_targets"] == 3 * single["scores"]["pseudo_targets"]
    assert windowed["scores"]["discs"] > single["scores"]["discs"]
    assert windowed["overall_std_factor"] > 1 and single["overall_std_factor"] > 1


def test_pooled_pseudo_targets_keep_disc_numbers_unique() -> None:
    task = _field_task(n_context=300, n_target=50)
    parts = [
        pseudo_predictions(OverconfidentModel(1.0), task, SelfCalibrationOptions(seed=seed))
        for seed in (0, 1)
    ]
    pooled = pooled_pseudo_targets(parts)
    assert pooled.truth.size == sum(part.truth.size for part in parts)
    assert pooled.draws == sum(part.draws for part in parts)
    assert np.unique(pooled.discs).size == sum(np.unique(part.discs).size for part in parts)
    with pytest.raises(ValueError, match="parts"):
        pooled_pseudo_targets([])
    far = pseudo_task(task, SelfCalibrationOptions(), real_distance=np.full(10, 40.0))[0]
    near = pseudo_task(task, SelfCalibrationOptions(), real_distance=np.full(10, 0.5))[0]
    assert far.n_target == near.n_target  # the same budget, other disc radii
    assert distance_to_nearest_context(far).mean() > distance_to_nearest_context(near).mean()


def test_clustered_coverage_counts_a_disc_once() -> None:
    from weatherunc.heads.self_calibration.evidence import clustered_coverage

    covered = np.repeat([1.0, 0.0, 1.0, 1.0], 50)  # four discs of 50 perfectly correlated targets
    weights = np.ones(covered.size)
    coverage, clustered = clustered_coverage(covered, weights, np.repeat(np.arange(4), 50))
    _, independent = clustered_coverage(covered, weights, np.arange(covered.size))
    assert coverage == pytest.approx(0.75)
    # independent targets: sqrt(p (1 - p) / n) up to n / (n - 1); four clusters: sqrt(p (1 - p) / 4) likewise
    assert independent == pytest.approx(np.sqrt(0.75 * 0.25 / 200 * 200 / 199))
    assert clustered == pytest.approx(np.sqrt(0.75 * 0.25 / 4 * 4 / 3))
    assert clustered_coverage(covered, weights, np.zeros(covered.size, dtype=int))[1] == np.inf


def test_the_factor_grid_s_unit_column_is_the_coverage_as_predicted() -> None:
    from weatherunc.heads.self_calibration.scaled_scores import (
        FACTOR_GRID,
        UNIT_FACTOR,
        coverage_by_factor,
        scaled_coverage,
    )

    assert FACTOR_GRID[UNIT_FACTOR] == 1.0
    task = _field_task(seed=4)
    prediction = OverconfidentModel(0.5).predict(task)
    covered = coverage_by_factor(prediction, task.target_values, 0.9)
    as_predicted = scaled_coverage(prediction, task.target_values, 0.9)
    np.testing.assert_array_equal(covered[:, UNIT_FACTOR], as_predicted)
    assert covered[:, UNIT_FACTOR].mean() < covered[:, -1].mean()  # a wider interval covers more


def test_a_factor_fitted_on_few_exchangeable_pseudo_targets_covers_a_new_target_at_the_level() -> None:
    """Split conformal's finite-sample level: with 30 calibrated Gaussian residuals per fit, the
    fitted factor covers a new residual with probability at least 0.9 over many fits (the plain
    0.9 level of the 30 would give about 0.88)."""
    from scipy import stats

    from weatherunc.heads.self_calibration.fitting import FACTOR_GRID, _smallest_covering_factor

    rng = np.random.default_rng(13)
    half_width = stats.norm.ppf(0.95)
    covering = []
    for _ in range(4000):
        residuals = np.abs(rng.standard_normal(30))
        covered = (residuals[:, None] <= half_width * FACTOR_GRID[None, :]).astype(float)
        factor = _smallest_covering_factor(covered, np.ones(30), 0.9)
        covering.append(2 * stats.norm.cdf(half_width * factor) - 1)  # P(a new residual is covered)
    assert np.mean(covering) >= 0.9
    doubled = _smallest_covering_factor(covered, np.full(30, 2.0), 0.9)  # equal weights: a count of 30
    assert doubled == _smallest_covering_factor(covered, np.ones(30), 0.9)


def test_a_coverage_within_its_noise_keeps_the_model_s_intervals() -> None:
    """Pseudo-targets that cover 0.89 with a standard error of 0.03 (six discs) are no evidence of
    miscalibration: the std factor fitted to them without the evidence rule is dropped with it."""
    task = _field_task(seed=3)
    model = OverconfidentModel(1.0)
    record = json.loads(self_calibrate(model, task).attrs["self_calibration"])
    scores = record["scores"]
    assert abs(scores["before"]["coverage_90"] - 0.9) < 2 * scores["coverage_standard_error"]
    assert not scores["std_factors_kept"] and record["overall_std_factor"] == 1.0
    assert scores["std_factors_dropped_by"] == ["coverage_within_noise"]
    eager = json.loads(
        self_calibrate(model, task, options=SelfCalibrationOptions(evidence_z=0.0)).attrs["self_calibration"]
    )
    assert eager["scores"]["std_factors_kept"] and eager["overall_std_factor"] != 1.0
    assert eager["scores"]["std_factors_dropped_by"] == []


def test_an_inconclusive_coverage_draws_the_task_again_up_to_evidence_draws() -> None:
    """One draw of four discs covers 0.79 with a standard error of 0.06: no evidence. With up to four
    draws the task is drawn again until the pooled coverage is off by more than its noise, and the
    std factors are kept; a coverage within ``coverage_tolerance`` of 0.9 draws once."""
    task = _field_task(seed=1)
    model = OverconfidentModel(0.85)

    def record(**options: object) -> dict:
        options = SelfCalibrationOptions(mean_error_tolerance=NO_MEAN_GUARD, **options)
        return json.loads(self_calibrate(model, task, options=options).attrs["self_calibration"])

    once, again = record(), record(evidence_draws=4)
    assert once["scores"]["draws"] == 1
    assert once["scores"]["std_factors_dropped_by"] == ["coverage_within_noise"]
    scores = again["scores"]
    assert scores["options"]["evidence_draws"] == 4 and "evidence_draws" not in once["scores"]["options"]
    assert 1 < scores["draws"] <= 4 and scores["pseudo_targets"] > once["scores"]["pseudo_targets"]
    assert abs(scores["before"]["coverage_90"] - 0.9) > 2 * scores["coverage_standard_error"]
    assert scores["std_factors_kept"] and again["overall_std_factor"] > 1
    calibrated = json.loads(
        self_calibrate(
            OverconfidentModel(1.0), _field_task(seed=3), options=SelfCalibrationOptions(evidence_draws=4)
        ).attrs["self_calibration"]
    )
    assert abs(calibrated["scores"]["before"]["coverage_90"] - 0.9) <= 0.02
    assert calibrated["scores"]["draws"] == 1


def test_conclusive_tells_a_coverage_beyond_its_noise_or_within_the_tolerance() -> None:
    task = _field_task(seed=1)
    pseudo = pseudo_predictions(OverconfidentModel(0.85), task, SelfCalibrationOptions())
    coverage = float(np.mean(interval_coverage(pseudo.prediction, pseudo.truth, 0.9).values * pseudo.weights))
    assert 0.75 < coverage < 0.85  # 0.79: off 0.9 by less than two standard errors
    assert not conclusive(pseudo, SelfCalibrationOptions())
    assert conclusive(pseudo, SelfCalibrationOptions(evidence_z=0.5))  # beyond half a standard error
    assert conclusive(pseudo, SelfCalibrationOptions(coverage_tolerance=0.2))  # close enough to 0.9


def _sharp_prediction(rates: np.ndarray) -> xr.Dataset:
    """A prediction of targets whose rate is ``rates`` [mm/h] with a small std (its most probable bin
    is the bin of the rate)."""
    transform = PrecipitationTransform()
    points = np.stack([np.arange(rates.size, dtype=float), np.zeros(rates.size)], axis=1)
    task = Task(points[:1], rates[:1], points, rates)
    return prediction_dataset(
        task,
        transformed_mean=transform.forward(rates),
        latent_variance=np.zeros(rates.size),
        noise_variance=np.full(rates.size, 0.01**2),
        transform=transform,
        model="sharp",
        attrs={"fit_seconds": 0.0, "predict_seconds": 0.0},
    )


def test_predicted_bin_weights_give_the_pseudo_targets_the_real_bin_mix() -> None:
    """Pseudo-targets predicted half in the 0.5-1 mm/h bin and half in 5-10 mm/h; real targets 90 %
    in 5-10 mm/h: the weights give the second bin 90 % of the weight, with mean 1."""
    pseudo = _sharp_prediction(np.repeat([0.7, 7.0], 50))
    real = _sharp_prediction(np.repeat([0.7, 7.0], [10, 90]))
    weights = predicted_bin_weights(pseudo, real)
    assert weights.shape == (100,) and weights.mean() == pytest.approx(1.0)
    assert weights[50:].sum() / weights.sum() == pytest.approx(0.9)
    assert np.allclose(weights[:50], weights[0]) and np.allclose(weights[50:], weights[50])
    # one pseudo-target in a bin that holds 90 % of the real targets: truncated at 10 x the mean
    few = _sharp_prediction(np.array([7.0] + [0.7] * 99))
    truncated = predicted_bin_weights(few, real, max_weight=10.0)
    assert truncated.mean() == pytest.approx(1.0) and truncated[0] == truncated.max() < 10.1
    assert predicted_bin_weights(few, real, max_weight=1000.0)[0] > 80.0  # untruncated: 90 / (1/100)


def test_probability_matching_weighs_the_bin_scaler() -> None:
    task = _field_task(seed=2)
    model = OverconfidentModel(0.6)
    records = {
        matching: json.loads(
            self_calibrate(
                model,
                task,
                options=SelfCalibrationOptions(probability="temperature", probability_matching=matching),
            ).attrs["self_calibration"]
        )
        for matching in ("none", "predicted_bin")
    }
    for record in records.values():  # the scaler's effective sample size is recorded
        assert 0 < record["scores"]["probability_effective_targets"] <= record["scores"]["pseudo_targets"]
    temperatures = [
        record["probability"]["temperature"] for record in records.values() if record["probability"]
    ]
    assert len(temperatures) == 2 and temperatures[0] != temperatures[1]


def test_per_bin_evidence_keeps_factors_that_a_pooled_coverage_of_0_9_hides() -> None:
    """Near pseudo-targets cover 0.99 and far ones 0.81, 0.9 pooled: the pooled test finds no
    evidence and keeps the intervals; tested per distance bin, the near std narrows, the far widens,
    and the CRPS falls."""
    from weatherunc.heads.self_calibration.scaled_scores import scaled_crps

    rng = np.random.default_rng(3)
    n = 2000
    transform = PrecipitationTransform("log", 1.0)
    near = np.arange(n) < n // 2
    distance = np.where(near, 1.0, 15.0)
    mean, std = np.full(n, 2.0), np.full(n, 0.3)
    truth = np.maximum(transform.inverse(rng.normal(mean, np.where(near, 0.6, 1.266) * std)), 0.0)
    prediction = Prediction.from_moments(
        ("target",),
        transformed_mean=mean,
        latent_variance=std**2,
        noise_variance=0.0,
        transform=transform,
        model="toy",
    ).to_dataset()
    discs = np.arange(n) // 20
    fits = {
        evidence: fit_self_calibration(
            prediction,
            truth,
            distance,
            np.ones(n),
            SelfCalibrationOptions(probability="none", evidence=evidence),
            discs=discs,
        )
        for evidence in ("pooled", "per_bin")
    }
    assert fits["pooled"].scores["std_factors_dropped_by"] == ["coverage_within_noise"]
    per_bin = fits["per_bin"]
    assert per_bin.scores["std_factors_kept"]
    near_factor, far_factor = per_bin.factor_at(np.array([1.0, 15.0]))
    assert near_factor < 0.9 and far_factor > 1.1
    assert per_bin.scores["after"]["crps"] < 0.99 * per_bin.scores["before"]["crps"]
    assert (
        scaled_crps(prediction, truth, per_bin.factor_at(distance)).mean()
        < scaled_crps(prediction, truth).mean()
    )
    with pytest.raises(ValueError, match="evidence"):
        SelfCalibrationOptions(evidence="everywhere")


def test_a_bin_scaler_is_kept_only_if_it_carries_over_between_halves_of_the_discs() -> None:
    from weatherunc.heads.calibration import TemperatureScaling, VectorScaling
    from weatherunc.heads.self_calibration.evidence import held_out_nll

    rng = np.random.default_rng(0)
    n, bins = 400, 6
    logits = rng.normal(size=(n, bins)) * 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    folds = np.arange(n) % 2
    # outcomes drawn from much sharper probabilities: the forecast is underconfident, a temperature
    # below 1 fitted on one half lowers the NLL of the other
    sharp = probabilities**3 / (probabilities**3).sum(axis=1, keepdims=True)
    observed = np.array([rng.choice(bins, p=row) for row in sharp])
    before, after = held_out_nll(
        probabilities,
        observed,
        folds,
        lambda chosen: TemperatureScaling.fit(probabilities[chosen], observed[chosen]),
    )
    assert after < before - 0.05
    # outcomes drawn from the forecast itself: an unpenalised vector scaling fitted on 200 targets
    # learns noise, and the other half's NLL rises
    calibrated = np.array([rng.choice(bins, p=row) for row in probabilities])
    before, after = held_out_nll(
        probabilities,
        calibrated,
        folds,
        lambda chosen: VectorScaling.fit(probabilities[chosen], calibrated[chosen], penalty=0.0),
    )
    assert after > before
    assert held_out_nll(probabilities, calibrated, np.zeros(n, dtype=int), lambda chosen: None) is None
    weightless_half = np.where(folds == 1, 0.0, 1.0)  # one half of the discs carries no weight
    assert held_out_nll(probabilities, calibrated, folds, lambda chosen: None, weightless_half) is None
