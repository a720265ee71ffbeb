"""The synthetic Gaussian field has the covariance it claims."""

from __future__ import annotations

import numpy as np
import pytest

from weatherunc.synthetic import matern32, sample_matern32_grid


def test_sample_covariance_matches_matern() -> None:
    samples = np.stack(
        [sample_matern32_grid(24, lengthscale=4.0, variance=2.0, seed=seed) for seed in range(400)]
    )
    assert samples.var() == pytest.approx(2.0, rel=0.05)
    lag = 3
    covariance = np.mean(samples[:, :, :-lag] * samples[:, :, lag:])
    assert covariance == pytest.approx(float(matern32(np.array(lag), 4.0, 2.0)), rel=0.08)
