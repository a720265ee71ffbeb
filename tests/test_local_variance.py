"""The locally re-estimated variance scale: its formulas, and that it fixes a GP on a field whose
variance is not the same everywhere without harming one on a field whose variance is."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from weatherunc.models.gp import GaussianProcessConfig, GaussianProcessInterpolator
from weatherunc.models.local_variance import LocalVarianceScale, left_out_scales, squared_residuals
from weatherunc.synthetic import sample_matern32_grid
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform, central_interval_coverage, log_density

IDENTITY = PrecipitationTransform(kind="identity", censor_at_zero=False)


def test_squared_residuals_plain_and_censored() -> None:
    """Uncensored: (value - mean)^2 / variance. Censored: the second moment of the standardised
    normal truncated above at the bound, checked against scipy's truncated normal."""
    values, mean, variance = np.array([1.0, -2.0, 0.5]), np.array([0.0, 1.0, 0.5]), np.array([4.0, 9.0, 1.0])
    np.testing.assert_allclose(squared_residuals(values, mean, variance), [0.25, 1.0, 0.0])
    for limit in (-30.0, -6.0, -1.0, 0.0, 2.0, 8.0):
        expected = (
            stats.truncnorm(-np.inf, limit).moment(2) if limit > -10 else limit**2
        )  # scipy loses the far tail; it tends to b^2
        got = squared_residuals(
            np.array([-50.0]), np.array([1.0]), np.array([4.0]), np.array([True]), bound=1.0 + 2.0 * limit
        )
        assert got[0] == pytest.approx(expected, rel=0.01 if limit <= -10 else 1e-8), limit
    mixed = squared_residuals(
        np.array([3.0, -1.0]), np.array([1.0, 1.0]), np.array([1.0, 1.0]), np.array([False, True]), bound=1.0
    )
    assert mixed[0] == pytest.approx(4.0) and mixed[1] == pytest.approx(
        1.0
    )  # censored at the mean: E[x^2 | x <= 0] = 1
    with pytest.raises(ValueError, match="variance must be > 0"):
        squared_residuals(values, mean, np.array([1.0, 0.0, 1.0]))


def test_squared_residuals_broadcast_equals_row_by_row() -> None:
    """The [n, n] form the selection uses (values and censoring [1, n] against [n, n] moments),
    with censored and uncensored columns, equals one call per row."""
    rng = np.random.default_rng(3)
    values, censored = rng.normal(size=6), np.array([True, False, True, False, False, True])
    mean, variance = rng.normal(size=(6, 6)), rng.uniform(0.5, 2.0, size=(6, 6))
    whole = squared_residuals(values[None, :], mean, variance, censored[None, :], bound=0.2)
    rows = np.stack(
        [squared_residuals(values, mean[row], variance[row], censored, bound=0.2) for row in range(6)]
    )
    np.testing.assert_allclose(whole, rows, rtol=1e-12)
    assert not np.allclose(
        whole, squared_residuals(values[None, :], mean, variance)
    )  # the censored columns differ
    assert float(squared_residuals(3.0, 1.0, 2.0)) == 2.0 and float(
        squared_residuals(-1.0, 1.0, 1.0, True, bound=1.0)
    ) == pytest.approx(1.0)  # scalars


def test_local_scale_is_a_shrunk_kernel_average() -> None:
    """One context at distance d with squared residual c: (w c + k) / (w + k), w = exp(-d^2 / 2h^2);
    far from it the scale is 1 (the GP's own variance); batching changes nothing."""
    scale = LocalVarianceScale(bandwidth_km=2.0, prior_weight=0.5)
    points = np.array([[0.0, 0.0], [3.0, 4.0], [1e4, 0.0]])
    weight = np.exp(-0.5 * 25.0 / 4.0)
    np.testing.assert_allclose(
        scale.at(points, np.array([[0.0, 0.0]]), np.array([9.0])),
        [(9.0 + 0.5) / 1.5, (weight * 9.0 + 0.5) / (weight + 0.5), 1.0],
    )
    rng = np.random.default_rng(0)
    contexts, residuals, targets = (
        rng.uniform(0, 50, (300, 2)),
        rng.chisquare(1, 300),
        rng.uniform(0, 50, (500, 2)),
    )
    np.testing.assert_allclose(
        scale.at(targets, contexts, residuals, batch=7), scale.at(targets, contexts, residuals)
    )


def test_left_out_scale_smooths_only_the_other_contexts() -> None:
    """Row i of the pairwise residuals feeds context i's scale, its own entry unused: with rows
    that repeat one vector, each option's scale equals :meth:`at` from the other contexts."""
    rng = np.random.default_rng(1)
    contexts, residuals = rng.uniform(0, 30, (120, 2)), rng.chisquare(1, 120)
    pairwise = np.tile(residuals, (120, 1))
    np.fill_diagonal(pairwise, 1e6)  # must not be used
    options = [LocalVarianceScale(5.0, 1.0), LocalVarianceScale(5.0, 4.0), LocalVarianceScale(12.0, 1.0)]
    scales = left_out_scales(contexts, pairwise, options)
    for option, left_out in zip(options, scales):
        for index in (0, 57, 119):
            others = np.arange(120) != index
            assert left_out[index] == pytest.approx(
                option.at(contexts[[index]], contexts[others], residuals[others])[0]
            )
    assert not np.allclose(scales[0], scales[1]) and not np.allclose(scales[0], scales[2])


def test_bad_options_and_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="bandwidth_km"):
        LocalVarianceScale(bandwidth_km=0.0, prior_weight=1.0)
    with pytest.raises(ValueError, match="prior_weight"):
        LocalVarianceScale(bandwidth_km=1.0, prior_weight=float("nan"))
    scale = LocalVarianceScale(1.0, 1.0)
    with pytest.raises(ValueError, match="squared_residuals must be"):
        scale.at(np.zeros((2, 2)), np.zeros((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="pairwise_squared_residuals must be"):
        left_out_scales(np.zeros((3, 2)), np.ones((3, 2)), [scale])


def _two_regime_task(seed: int) -> tuple[Task, np.ndarray]:
    """A Matern-3/2 field about a level of 10 (so that the values are valid, non-negative rates)
    with its amplitude (and noise) 4x larger in the right half of the domain than in the left:
    1,500 contexts, 6,000 targets; also each target's signed distance [px] from the boundary
    between the halves (positive on the right)."""
    size = 130
    field = sample_matern32_grid(size, lengthscale=8.0, variance=1.0, seed=seed)
    rng = np.random.default_rng(seed + 50)
    rows, columns = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    amplitude = np.where(columns >= size // 2, 2.0, 0.5)
    observed = (10.0 + amplitude * (field + rng.normal(0.0, np.sqrt(0.05), field.shape))).ravel()
    points = np.stack([columns.ravel(), rows.ravel()], axis=1).astype(float)
    order = rng.permutation(size * size)
    context, target = order[:1500], order[1500:7500]
    return Task(points[context], observed[context], points[target], observed[target]), points[target, 0] - (
        size // 2 - 0.5
    )


def test_local_variance_calibrates_both_regimes_of_a_non_stationary_field() -> None:
    """With one variance for the field, the 90 % interval covers every quiet-half truth and under
    0.85 of the active half's; the locally re-scaled variance, chosen by leave-one-out, brings
    both halves to within 0.06 of 0.90 (away from the step between them, which a smoother blurs
    over about a bandwidth; the remaining excess on the quiet side is the shrinkage towards the
    field's one variance), lowers the NLPD by more than 0.2 nats, and is recorded."""
    task, position = _two_regime_task(seed=3)
    right, away = position > 0, np.abs(position) > 12
    config = GaussianProcessConfig(transform=IDENTITY, kernel="matern32")

    def scores(prediction) -> tuple[float, float, float]:
        mean, std = prediction.transformed_mean.values, prediction.transformed_std.values
        covered = central_interval_coverage(IDENTITY, mean, std, task.target_values, 0.9)
        nlpd = float(-log_density(IDENTITY, mean, std, task.target_values).mean())
        return float(covered[~right & away].mean()), float(covered[right & away].mean()), nlpd

    stationary = scores(GaussianProcessInterpolator(replace(config, local_variance=False)).predict(task))
    assert stationary[0] > 0.97 and stationary[1] < 0.85, stationary  # the failure the option exists for
    prediction = GaussianProcessInterpolator(config).predict(task)
    local = scores(prediction)
    assert abs(local[0] - 0.9) <= 0.06 and abs(local[1] - 0.9) <= 0.06, (local, stationary)
    assert local[2] < stationary[2] - 0.2, (local, stationary)
    assert prediction.attrs["local_variance"] == "leave-one-out residuals"
    candidates, loo_crps = (
        prediction.attrs["local_variance_candidates"],
        prediction.attrs["local_variance_loo_crps"],
    )
    assert candidates[0] == "none" and len(candidates) == 1 + 4 * 2
    assert int(np.argmin(loo_crps)) != 0
    assert prediction.attrs["local_variance_bandwidth_km"] > 0 and prediction.attrs[
        "local_variance_prior_weight"
    ] in (1.0, 4.0)
    assert prediction.noise_variance.values.std() > 0  # the noise variance is re-scaled per target too
