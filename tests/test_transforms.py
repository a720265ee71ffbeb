"""Transforms invert exactly; the back-transformed distribution matches Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from weatherunc.transforms import (
    PrecipitationTransform,
    exceedance_probability,
    moments,
    quantile_nodes,
    quantiles,
)

TRANSFORMS = [
    PrecipitationTransform("log"),
    PrecipitationTransform("box_cox", offset=0.1, lam=0.3),
    PrecipitationTransform("identity", censor_at_zero=False),
]


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: t.kind)
def test_inverse_is_exact(transform: PrecipitationTransform) -> None:
    rate = np.array([0.0, 0.05, 1.0, 12.5, 150.0])
    np.testing.assert_allclose(transform.inverse(transform.forward(rate)), rate, atol=1e-12)


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: t.kind)
def test_inverse_tensor_is_the_inverse_and_differentiable(transform: PrecipitationTransform) -> None:
    value = torch.tensor(transform.forward(np.array([0.0, 0.05, 1.0, 12.5, 150.0])), requires_grad=True)
    rate = transform.inverse_tensor(value)
    np.testing.assert_allclose(rate.detach().numpy(), transform.inverse(value.detach().numpy()), rtol=1e-12)
    rate.sum().backward()
    assert torch.all(value.grad > 0)


def test_log_is_log1p() -> None:
    np.testing.assert_allclose(
        PrecipitationTransform("log").forward(np.array([0.0, 3.0])), np.log1p([0.0, 3.0])
    )


@pytest.mark.parametrize("transform", TRANSFORMS[:2], ids=lambda t: t.kind)
def test_back_transform_matches_monte_carlo(transform: PrecipitationTransform) -> None:
    rng = np.random.default_rng(0)
    mean, std = np.array([0.2, 1.5]), np.array([0.8, 0.4])
    samples = np.maximum(transform.inverse(mean[:, None] + std[:, None] * rng.normal(size=(2, 400_000))), 0.0)
    first, spread = moments(transform, mean, std)
    np.testing.assert_allclose(first, samples.mean(axis=1), rtol=0.01)
    np.testing.assert_allclose(spread, samples.std(axis=1), rtol=0.01)
    levels = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(
        quantiles(transform, mean, std, levels), np.quantile(samples, levels, axis=1).T, rtol=0.01, atol=1e-3
    )
    thresholds = np.array([0.0, 0.1, 1.0, 5.0])
    np.testing.assert_allclose(
        exceedance_probability(transform, mean, std, thresholds),
        (samples[:, :, None] > thresholds).mean(axis=1),
        atol=0.003,
    )


def test_mean_is_not_the_naive_back_transform() -> None:
    transform = PrecipitationTransform("log")
    first, _ = moments(transform, np.array([1.0]), np.array([1.0]))
    # E[exp(Z)] - 1 = exp(mu + s^2 / 2) - 1 when the censoring at 0 does not bind much
    assert first[0] > transform.inverse(np.array([1.0]))[0] * 1.5


def test_quantile_nodes() -> None:
    np.testing.assert_allclose(quantile_nodes(4), [0.125, 0.375, 0.625, 0.875])


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: t.kind)
def test_log_density_is_the_derivative_of_the_distribution_function_and_the_mass_at_zero(
    transform: PrecipitationTransform,
) -> None:
    """Wet: the density equals d/dy P(Y <= y) = d/dy Phi((g(y) - mean) / std) (central difference).
    Dry: the mass at zero equals Phi((g(0) - mean) / std). Identity: the Gaussian log density."""
    from scipy import stats

    from weatherunc.transforms import log_density

    mean, std = np.array([0.3, 1.2]), np.array([0.7, 0.5])
    rate, step = np.array([0.4, 2.0]), 1e-6
    distribution = lambda y: stats.norm.cdf((transform.forward(y) - mean) / std)  # noqa: E731
    numerical = (distribution(rate + step) - distribution(rate - step)) / (2 * step)
    np.testing.assert_allclose(np.exp(log_density(transform, mean, std, rate)), numerical, rtol=1e-5)
    if transform.censor_at_zero:
        np.testing.assert_allclose(
            np.exp(log_density(transform, mean, std, np.zeros(2))), distribution(np.zeros(2)), rtol=1e-12
        )
    else:
        np.testing.assert_allclose(
            log_density(transform, mean, std, rate), stats.norm.logpdf(rate, mean, std), rtol=1e-12
        )


@pytest.mark.parametrize("transform", TRANSFORMS[:2], ids=lambda t: t.kind)
def test_log_density_mass_at_zero_and_wet_density_sum_to_one(transform: PrecipitationTransform) -> None:
    from scipy import integrate

    from weatherunc.transforms import log_density

    for mean, std in ((0.2, 0.8), (1.5, 0.4), (-0.5, 1.0)):
        wet, _ = integrate.quad(
            lambda y, mean=mean, std=std: float(np.exp(log_density(transform, mean, std, np.array(y)))),
            0.0,
            np.inf,
            limit=200,
        )
        dry = float(np.exp(log_density(transform, mean, std, np.array(0.0))))
        assert wet + dry == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: t.kind)
def test_central_interval_coverage_of_a_wet_truth_is_inclusion_in_the_central_interval(
    transform: PrecipitationTransform,
) -> None:
    from weatherunc.transforms import central_interval_coverage

    rng = np.random.default_rng(3)
    mean, std = rng.normal(1.0, 0.5, 5000), rng.uniform(0.2, 1.0, 5000)
    rate = transform.inverse(mean + std * rng.normal(size=5000) * 1.5)
    rate = rate[rate > 0] if transform.censor_at_zero else rate
    mean, std = mean[: len(rate)], std[: len(rate)]
    for level in (0.5, 0.9):
        lower, upper = quantiles(transform, mean, std, np.array([0.5 - level / 2, 0.5 + level / 2])).T
        np.testing.assert_array_equal(
            central_interval_coverage(transform, mean, std, rate, level),
            ((rate >= lower) & (rate <= upper)).astype(float),
        )


def test_central_interval_coverage_of_a_dry_truth_is_the_share_of_the_mass_at_zero_inside() -> None:
    from scipy import stats

    from weatherunc.transforms import central_interval_coverage

    transform = PrecipitationTransform("log", offset=1.0)
    masses = np.array([0.01, 0.05, 0.3, 0.5, 0.96, 0.999])
    mean = transform.forward(np.zeros(6)) - stats.norm.ppf(masses)  # std 1: P(Y = 0) = masses
    expected = np.array([0.0, 0.0, 0.25 / 0.3, 0.45 / 0.5, 0.90 / 0.96, 0.90 / 0.999])
    np.testing.assert_allclose(
        central_interval_coverage(transform, mean, np.ones(6), np.zeros(6), 0.9),
        expected,
        rtol=1e-9,
        atol=1e-12,
    )


def test_central_interval_coverage_of_a_calibrated_zero_inflated_forecast_is_the_nominal_level() -> None:
    """Half the truths dry: the expected randomised-PIT coverage is the level; counting dry truths
    as inside a censored interval (the rule this replaces) overstates it by about 0.03-0.15."""
    from weatherunc.transforms import central_interval_coverage

    transform = PrecipitationTransform("log", offset=0.3)
    rng = np.random.default_rng(11)
    n = 200_000
    mean, std = rng.normal(transform.forward(0.0), 1.5, n), rng.uniform(0.3, 1.5, n)
    rate = transform.floor(transform.inverse(mean + std * rng.normal(size=n)))
    assert 0.4 < np.mean(rate == 0) < 0.6
    for level in (0.5, 0.8, 0.9, 0.95):
        coverage = central_interval_coverage(transform, mean, std, rate, level)
        assert coverage.mean() == pytest.approx(level, abs=4 * np.sqrt(level * (1 - level) / n) + 1e-3)
        lower, upper = quantiles(transform, mean, std, np.array([0.5 - level / 2, 0.5 + level / 2])).T
        assert np.mean((rate >= lower) & (rate <= upper)) > level + 0.02


def test_central_interval_coverage_refuses_a_level_outside_zero_one() -> None:
    from weatherunc.transforms import central_interval_coverage

    with pytest.raises(ValueError, match="level must be in"):
        central_interval_coverage(PrecipitationTransform(), np.zeros(1), np.ones(1), np.zeros(1), 1.0)


def test_pit_interval_probability_refuses_an_interval_outside_zero_one() -> None:
    from weatherunc.transforms import pit_interval_probability

    with pytest.raises(ValueError, match="PIT interval"):
        pit_interval_probability(PrecipitationTransform(), np.zeros(1), np.ones(1), np.zeros(1), 0.5, 0.2)
