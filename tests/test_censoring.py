"""Gibbs sampling of censored Gaussian values agrees with closed forms and exact rejection sampling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from weatherunc.models.censoring import sample_censored


def test_one_censored_value_follows_the_truncated_normal() -> None:
    bound = 0.5
    draws = sample_censored(
        np.array([[1.0]]),
        np.array([0.0]),
        np.array([True]),
        bound,
        samples=40_000,
        burn_in=0,
        rng=np.random.default_rng(0),
    )[0]
    reference = stats.truncnorm(-np.inf, bound)
    assert draws.max() <= bound
    assert draws.mean() == pytest.approx(reference.mean(), abs=0.015)
    assert draws.var() == pytest.approx(reference.var(), rel=0.03)


def test_censored_value_is_drawn_given_the_observed_ones() -> None:
    """z = (z0, z1) ~ N(0, [[1, .8], [.8, 1]]), z0 = 1 observed, z1 <= 0: z1 | z0 ~ N(0.8, 0.36) truncated
    at 0."""
    covariance = np.array([[1.0, 0.8], [0.8, 1.0]])
    draws = sample_censored(
        np.linalg.inv(covariance),
        np.array([1.0, 0.0]),
        np.array([False, True]),
        0.0,
        samples=40_000,
        burn_in=10,
        rng=np.random.default_rng(1),
    )
    np.testing.assert_array_equal(draws[0], 1.0)
    reference = stats.truncnorm(-np.inf, (0.0 - 0.8) / 0.6, loc=0.8, scale=0.6)
    assert draws[1].mean() == pytest.approx(reference.mean(), abs=0.01)
    assert draws[1].std() == pytest.approx(reference.std(), rel=0.03)


def test_correlated_censored_values_match_rejection_sampling() -> None:
    """Three correlated values, two censored below 0.3 and one observed at -0.5: the chain's
    means, variances and correlation equal those of exact draws (rejection from the conditional)."""
    distance = np.abs(np.subtract.outer(np.arange(3.0), np.arange(3.0)))
    covariance = np.exp(-distance / 1.5) + 0.05 * np.eye(3)
    censored = np.array([True, False, True])
    observed = -0.5
    bound = 0.3
    draws = sample_censored(
        np.linalg.inv(covariance),
        np.array([0.0, observed, 0.0]),
        censored,
        bound,
        samples=60_000,
        burn_in=50,
        rng=np.random.default_rng(2),
    )
    hidden, seen = np.flatnonzero(censored), np.flatnonzero(~censored)
    gain = covariance[np.ix_(hidden, seen)] @ np.linalg.inv(covariance[np.ix_(seen, seen)])
    centre = gain @ np.array([observed])
    conditional = covariance[np.ix_(hidden, hidden)] - gain @ covariance[np.ix_(seen, hidden)]
    candidates = np.random.default_rng(3).multivariate_normal(centre, conditional, size=400_000)
    exact = candidates[(candidates <= bound).all(axis=1)]
    chain = draws[hidden].T
    np.testing.assert_allclose(chain.mean(0), exact.mean(0), atol=0.02)
    np.testing.assert_allclose(chain.var(0), exact.var(0), rtol=0.05)
    assert np.corrcoef(chain.T)[0, 1] == pytest.approx(np.corrcoef(exact.T)[0, 1], abs=0.03)
    np.testing.assert_array_equal(draws[1], observed)


def test_without_censored_values_the_values_are_repeated() -> None:
    values = np.array([0.3, -1.0])
    draws = sample_censored(
        np.eye(2), values, np.zeros(2, dtype=bool), 0.0, samples=3, burn_in=0, rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(draws, np.repeat(values[:, None], 3, axis=1))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="at or below the bound"):
        sample_censored(
            np.eye(1),
            np.array([1.0]),
            np.array([True]),
            0.0,
            samples=1,
            burn_in=0,
            rng=np.random.default_rng(0),
        )
    with pytest.raises(ValueError, match=r"precision must be \[n, n\]"):
        sample_censored(
            np.eye(2),
            np.array([0.0]),
            np.array([True]),
            0.0,
            samples=1,
            burn_in=0,
            rng=np.random.default_rng(0),
        )
    with pytest.raises(ValueError, match="samples must be >= 1"):
        sample_censored(
            np.eye(1),
            np.array([0.0]),
            np.array([True]),
            0.0,
            samples=0,
            burn_in=0,
            rng=np.random.default_rng(0),
        )
