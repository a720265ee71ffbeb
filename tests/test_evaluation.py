"""Scoring a prediction: the quantile CRPS agrees with the closed form for a Gaussian."""

from __future__ import annotations

import numpy as np
import properscoring
import pytest

from weatherunc.evaluation import score_prediction, transform_of
from weatherunc.models.predictive import prediction_dataset, to_grid
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform

IDENTITY = PrecipitationTransform("identity", censor_at_zero=False)


def _gaussian_prediction(n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    mean, std = rng.normal(0, 1, n), rng.uniform(0.5, 1.5, n)
    truth = mean + std * rng.normal(size=n)
    task = Task(np.zeros((1, 2)), np.zeros(1), rng.uniform(size=(n, 2)), truth, target_coords={"row": np.arange(n) // 100, "column": np.arange(n) % 100})
    prediction = prediction_dataset(task, transformed_mean=mean, latent_variance=std**2, noise_variance=0.0, transform=IDENTITY, model="oracle")
    return prediction, task, mean, std, truth


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
    blind = Task(task.context_coordinates, task.context_values, task.target_coordinates, np.full(10, np.nan), target_coords=task.target_coords)
    with pytest.raises(ValueError, match="no target with known truth"):
        score_prediction(prediction, blind)


def test_to_grid() -> None:
    import xarray as xr

    prediction, *_ = _gaussian_prediction(4000)
    template = xr.DataArray(np.zeros((50, 100)), dims=("y", "x"), coords={"y": np.arange(50.0), "x": np.arange(100.0)})
    grid = to_grid(prediction, template)
    assert grid.precipitation_mean.shape == (50, 100)
    assert grid.precipitation_quantile.dims == ("y", "x", "quantile")
    assert float(grid.precipitation_mean[1, 3]) == float(prediction.precipitation_mean[103])
    assert bool(grid.precipitation_mean[45:].isnull().all()), "non-target pixels stay NaN"
