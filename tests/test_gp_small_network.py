"""The GP's small-network rule (``weatherunc.models.gp.small_network``): applied below
``small_network_contexts`` only, the noise not collapsed on a small network, config validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from weatherunc import conventions
from weatherunc.models.gp import GaussianProcessConfig, GaussianProcessInterpolator
from weatherunc.models.gp.fitting import fit_kernel
from weatherunc.models.gp.small_network import (
    VARIANCE_FACTOR_BOUNDS,
    blocked_standardised_residuals,
    blocked_variance_factor,
    variance_factor,
)
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform

IDENTITY = PrecipitationTransform(kind="identity", censor_at_zero=False)
#: Exponential covariance of the synthetic networks: lengthscale [km], signal and noise variance.
LENGTHSCALE, SIGNAL, NOISE = 30.0, 1.0, 0.2
LEVEL = 10.0


def _network(n_context: int, seed: int, n_target: int = 50) -> Task:
    """Stations uniform over 150 km x 150 km, an exponential-covariance field plus noise ``NOISE``."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0.0, 150.0, size=(n_context + n_target, 2))
    distance = np.linalg.norm(points[:, None] - points[None], axis=2)
    covariance = SIGNAL * np.exp(-distance / LENGTHSCALE) + 1e-9 * np.eye(len(points))
    field = np.linalg.cholesky(covariance) @ rng.standard_normal(len(points))
    values = LEVEL + field + rng.normal(0.0, np.sqrt(NOISE), len(points))
    return Task(points[:n_context], values[:n_context], points[n_context:], values[n_context:])


def test_rule_applies_below_the_threshold_only() -> None:
    torch.set_num_threads(1)
    task = _network(60, seed=0)
    below = GaussianProcessInterpolator(GaussianProcessConfig(transform=IDENTITY, small_network_contexts=61))
    at = GaussianProcessInterpolator(GaussianProcessConfig(transform=IDENTITY, small_network_contexts=60))
    off = GaussianProcessInterpolator(GaussianProcessConfig(transform=IDENTITY, small_network_contexts=0))
    small = below.predict(task)
    assert small.attrs["small_network"] == 1 and small.attrs["kernel"] == "matern12"
    assert 0.25 <= small.attrs["blocked_variance_factor"] <= 4.0
    assert "local_variance_candidates" not in small.attrs
    unaffected, plain = at.predict(task), off.predict(task)
    assert "small_network" not in unaffected.attrs
    assert "local_variance_candidates" in unaffected.attrs
    for name in unaffected.data_vars:  # bitwise: at the threshold nothing changes
        np.testing.assert_array_equal(unaffected[name].values, plain[name].values)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_small_network_noise_is_not_collapsed(seed: int) -> None:
    torch.set_num_threads(1)
    task = _network(80, seed=seed)
    prediction = GaussianProcessInterpolator(GaussianProcessConfig(transform=IDENTITY)).predict(task)
    assert prediction.attrs["small_network"] == 1
    noise = prediction.attrs["fitted_noise_variance"]
    assert NOISE / 4.0 < noise < NOISE * 4.0, noise


def test_noise_prior_keeps_the_noise_of_a_noise_free_field_off_its_floor() -> None:
    torch.set_num_threads(1)
    task = _network(80, seed=4)
    rng = np.random.default_rng(4)
    points = task.context_coordinates
    distance = np.linalg.norm(points[:, None] - points[None], axis=2)
    covariance = np.exp(-distance / LENGTHSCALE) + 1e-9 * np.eye(len(points))
    values = LEVEL + np.linalg.cholesky(covariance) @ rng.standard_normal(len(points))  # no noise
    config = GaussianProcessConfig(transform=IDENTITY)
    plain = fit_kernel(points, values, config, "matern12")
    prior = fit_kernel(
        points, values, GaussianProcessConfig(transform=IDENTITY, noise_prior=(2.0, 20.0)), "matern12"
    )
    assert prior.noise > max(plain.noise, 10 * config.minimum_noise)


def test_blocked_variance_factor_is_near_one_for_the_true_model() -> None:
    torch.set_num_threads(1)
    task = _network(200, seed=5)
    config = GaussianProcessConfig(transform=IDENTITY, noise_prior=(2.0, 20.0))
    fitted = fit_kernel(task.context_coordinates, task.context_values, config, "matern12")
    factor = blocked_variance_factor(fitted, task.context_coordinates, task.context_values, 8)
    assert 0.5 < factor < 2.0
    assert blocked_variance_factor(fitted, task.context_coordinates, task.context_values, 0) == 1.0


def test_the_coverage_rule_makes_the_level_intervals_cover_the_residuals() -> None:
    """Gaussian residuals: both rules near 1. Uniform residuals of unit variance (lighter tails than
    the Gaussian): the mean square is 1, yet 1.645 covers 95 % of them, so the coverage rule
    narrows the std (to about 0.9 ** 2 * 3 / 1.645 ** 2 = 0.90 of the variance). Whatever the
    residuals (uniform, Student-t, too wide a Gaussian), the conformal share is covered in-sample."""
    rng = np.random.default_rng(0)
    gaussian = rng.standard_normal(20_000)
    for rule in ("mean_square", "coverage"):
        assert variance_factor(gaussian, rule) == pytest.approx(1.0, abs=0.05)
    uniform = rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), 2_000)
    assert variance_factor(uniform, "mean_square") == pytest.approx(1.0, abs=0.05)
    for residuals in (uniform, rng.standard_t(3, 200) * 0.6, rng.standard_normal(50) * 1.4):
        factor = variance_factor(residuals, "coverage")
        covered = np.mean(np.abs(residuals) <= stats.norm.ppf(0.95) * np.sqrt(factor) * (1 + 1e-12))
        assert covered >= min(0.9 * (1 + 1 / residuals.size), 1.0)
    assert variance_factor(uniform, "coverage") < 0.95 * variance_factor(uniform, "mean_square")
    assert variance_factor(np.zeros(0), "coverage") == 1.0
    assert variance_factor(np.full(10, 100.0), "coverage") == VARIANCE_FACTOR_BOUNDS[1]
    with pytest.raises(ValueError, match="rule"):
        variance_factor(gaussian, "median")


def test_the_gp_calibrates_a_small_network_by_the_chosen_rule() -> None:
    torch.set_num_threads(1)
    task = _network(80, seed=6)
    factors = {}
    for rule in ("mean_square", "coverage"):
        config = GaussianProcessConfig(transform=IDENTITY, small_network_variance_rule=rule)
        attrs = GaussianProcessInterpolator(config).predict(task).attrs
        assert attrs["blocked_variance_rule"] == rule
        factors[rule] = attrs["blocked_variance_factor"]
    config = GaussianProcessConfig(transform=IDENTITY, noise_prior=(2.0, 20.0))
    fitted = fit_kernel(task.context_coordinates, task.context_values, config, "matern12")
    residuals = blocked_standardised_residuals(fitted, task.context_coordinates, task.context_values, 8)
    assert residuals.size >= 70 and np.all(np.isfinite(residuals))
    assert factors["mean_square"] != factors["coverage"]
    assert 0.25 <= factors["coverage"] <= 4.0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"small_network_contexts": -1}, "small_network_contexts"),
        ({"small_network_kernels": ()}, "small_network_kernels"),
        ({"small_network_kernels": ("gaussian",)}, "small_network_kernels"),
        ({"small_network_noise_prior": (0.0, 1.0)}, "small_network_noise_prior"),
        ({"noise_prior": (2.0, -1.0)}, "noise_prior"),
        ({"small_network_blocks": 1}, "small_network_blocks"),
        ({"small_network_variance_rule": "median"}, "small_network_variance_rule"),
    ],
)
def test_invalid_small_network_options_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        GaussianProcessConfig(**options)


def test_fewer_contexts_than_blocks_give_a_finite_variance_factor_and_prediction() -> None:
    """Seven contexts in eight blocks: the blocks are empty or single, and the factor falls back to
    1 instead of the mean of no residuals (NaN, which made every std NaN)."""
    generator = np.random.default_rng(3)
    values = np.array([0.0, 0.0, 0.0, 0.0, 0.684, 1.428, 1.473])
    targets = generator.uniform(0, 20, size=(30, 2))
    task = Task(generator.uniform(0, 20, size=(7, 2)), values, targets, np.full(30, np.nan))
    config = GaussianProcessConfig(kernel="matern32", offset_candidates=(), censored_contexts=False)
    prediction = GaussianProcessInterpolator(config).predict(task)
    assert np.isfinite(prediction.attrs["blocked_variance_factor"])
    std = prediction[conventions.PRECIPITATION_STD].values
    assert np.all(np.isfinite(std)) and np.all(std > 0)
