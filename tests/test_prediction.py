"""The prediction schema (weatherunc.prediction): one owner of the output names and the derived outputs."""

from __future__ import annotations

import io
import tokenize
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from weatherunc import conventions
from weatherunc.heads.calibration import Calibration, StdScaling, TemperatureScaling
from weatherunc.models.predictive import prediction_dataset, to_grid
from weatherunc.prediction import HEAD_SOURCE, Prediction
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform, moments

ROOT = Path(__file__).resolve().parent.parent
#: Output names with one meaning: written as string literals only in weatherunc/conventions.py.
OUTPUT_NAMES = (
    conventions.PRECIPITATION_MEAN,
    conventions.PRECIPITATION_STD,
    conventions.PRECIPITATION_QUANTILE,
    conventions.EXCEEDANCE_PROBABILITY,
    conventions.TRANSFORMED_MEAN,
    conventions.TRANSFORMED_STD,
    conventions.LATENT_VARIANCE,
    conventions.NOISE_VARIANCE,
    conventions.BIN_PROBABILITY,
    conventions.MUTUAL_INFORMATION,
    conventions.PREDICTIVE_ENTROPY,
    conventions.RAIN_PROBABILITY,
)


def _prediction(offset: float, n: int, seed: int, *, coords: bool = True) -> tuple[xr.Dataset, Task]:
    rng = np.random.default_rng(seed)
    transform = PrecipitationTransform("log", offset=offset)
    mean, std = rng.normal(0.5, 0.5, n), rng.uniform(0.3, 0.9, n)
    truth = np.maximum(transform.inverse(mean + std * rng.normal(size=n)), 0.0)
    rows, columns = np.divmod(np.arange(n) + seed * n, 10)
    task = Task(
        np.zeros((1, 2)),
        np.zeros(1),
        rng.uniform(size=(n, 2)),
        truth,
        target_coords={"row": rows, "column": columns} if coords else {},
    )
    dataset = prediction_dataset(
        task,
        transformed_mean=mean,
        latent_variance=0.6 * std**2,
        noise_variance=0.4 * std**2,
        transform=transform,
        model="oracle",
    )
    return dataset, task


def test_output_names_are_string_literals_only_in_conventions() -> None:
    literals = {f"{quote}{name}{quote}" for name in OUTPUT_NAMES for quote in "\"'"}
    found = []
    for path in sorted((ROOT / "weatherunc").rglob("*.py")):
        if path == ROOT / "weatherunc" / "conventions.py":
            continue
        for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if token.type == tokenize.STRING and token.string in literals:
                found.append(f"{path.relative_to(ROOT)}:{token.start[0]} {token.string}")
    assert found == []


def test_derived_outputs_follow_the_gaussian_of_each_target() -> None:
    dataset, _ = _prediction(1.0, 50, 0)
    predicted = Prediction.from_dataset(dataset)
    mean, std = moments(
        PrecipitationTransform("log", offset=1.0), predicted.transformed_mean, predicted.transformed_std
    )
    np.testing.assert_array_equal(dataset[conventions.PRECIPITATION_MEAN].values, mean)
    np.testing.assert_array_equal(dataset[conventions.PRECIPITATION_STD].values, std)
    assert dataset.attrs["transform_offset"] == 1.0 and np.all(dataset[conventions.TRANSFORM_OFFSET] == 1.0)


def test_round_trip_of_pooled_predictions_with_two_offsets_and_of_a_grid() -> None:
    (first, _), (second, _) = _prediction(0.1, 30, 1), _prediction(3.0, 20, 2)
    together = xr.concat([first, second], dim="target").assign_attrs(first.attrs)
    predicted = Prediction.from_dataset(together)
    xr.testing.assert_identical(predicted.to_dataset(), together)
    xr.testing.assert_identical(predicted.recomputed().to_dataset(), together)
    assert [transform.offset for transform, _ in predicted.transform_groups()] == [0.1, 3.0]
    with pytest.raises(ValueError, match="transform_offset differs between targets"):
        predicted.single_transform()
    template = xr.DataArray(
        np.zeros((10, 10)), dims=("y", "x"), coords={"y": np.arange(10.0), "x": np.arange(10.0)}
    )
    grid = to_grid(together, template)
    on_grid = Prediction.from_dataset(grid).with_derived_bins()
    assert on_grid.dims == ("y", "x") and on_grid.bins.probability.shape == (10, 10, 10)
    written = on_grid.to_dataset()
    xr.testing.assert_identical(Prediction.from_dataset(written).to_dataset(), written)
    filled = np.isfinite(grid[conventions.TRANSFORMED_MEAN].values)
    np.testing.assert_allclose(on_grid.bins.probability[filled].sum(-1), 1.0, rtol=1e-12)
    assert np.all(np.isnan(on_grid.bins.probability[~filled]))


def test_rescaling_scales_the_gaussian_and_recomputes_what_derives_from_it() -> None:
    dataset, _ = _prediction(1.0, 40, 3)
    edges = (0.0, 0.5, 1.0, 5.0)
    predicted = Prediction.from_dataset(dataset).with_derived_bins(edges)
    factor = np.linspace(0.5, 2.0, 40)
    rescaled = predicted.rescaled(factor)
    np.testing.assert_array_equal(rescaled.transformed_std, predicted.transformed_std * factor)
    np.testing.assert_array_equal(rescaled.latent_variance, predicted.latent_variance * factor**2)
    np.testing.assert_array_equal(rescaled.noise_variance, predicted.noise_variance * factor**2)
    # bins derived from the Gaussian follow the new std, on their own edges; a head's bins stay
    rederived = replace(predicted, transformed_std=rescaled.transformed_std).with_bins(None)
    np.testing.assert_allclose(
        rescaled.bins.probability, rederived.with_derived_bins(edges).bins.probability, rtol=1e-12
    )
    np.testing.assert_array_equal(rescaled.bins.edges, edges)
    assert not np.allclose(rescaled.bins.probability, predicted.bins.probability)
    written = rescaled.to_dataset()
    np.testing.assert_allclose(  # P(rate >= 1 and 5 mm/h) from the bins and from the Gaussian agree
        written[conventions.RAIN_PROBABILITY].sel(threshold=[1.0, 5.0]).values,
        written[conventions.EXCEEDANCE_PROBABILITY].sel(threshold=[1.0, 5.0]).values,
        rtol=1e-9,
    )
    head = predicted.with_bins(replace(predicted.bins, source=HEAD_SOURCE))
    assert head.rescaled(factor).bins is head.bins
    fresh = Prediction.from_moments(
        ("target",),
        transformed_mean=predicted.transformed_mean,
        latent_variance=rescaled.latent_variance,
        noise_variance=rescaled.noise_variance,
        transform=predicted.transform,
        model="oracle",
    )
    np.testing.assert_allclose(
        rescaled.rate_outputs()[conventions.PRECIPITATION_MEAN],
        fresh.rate_outputs()[conventions.PRECIPITATION_MEAN],
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match="finite and > 0"):
        predicted.rescaled(0.0)


def test_rescaling_that_keeps_the_mean_moves_the_median_instead() -> None:
    dataset, _ = _prediction(0.1, 60, 4)
    predicted = Prediction.from_dataset(dataset)
    factor = np.linspace(0.5, 2.0, 60)
    kept = predicted.rescaled(factor, keep_mean=True)
    np.testing.assert_array_equal(kept.transformed_std, predicted.transformed_std * factor)
    np.testing.assert_array_equal(kept.latent_variance, predicted.latent_variance * factor**2)
    mean, kept_mean = (p.rate_outputs()[conventions.PRECIPITATION_MEAN] for p in (predicted, kept))
    np.testing.assert_allclose(kept_mean, mean, rtol=1e-7)
    assert np.all((kept.transformed_mean < predicted.transformed_mean)[factor > 1])  # the median falls
    assert np.all((kept.transformed_mean > predicted.transformed_mean)[factor < 1])
    np.testing.assert_array_equal(
        predicted.rescaled(1.0, keep_mean=True).transformed_mean, predicted.transformed_mean
    )


def test_the_mean_keeping_location_has_the_closed_form_of_an_uncensored_log_normal() -> None:
    from weatherunc.prediction.distribution import mean_keeping_location, transform_groups

    rng = np.random.default_rng(5)
    mean, std = rng.normal(0.0, 1.0, 50), rng.uniform(0.2, 1.2, 50)
    new_std = std * rng.uniform(0.5, 2.5, 50)
    for kind in ("log", "box_cox", "identity"):
        transform = PrecipitationTransform(kind, offset=0.5)
        location = mean_keeping_location(transform_groups(transform, None, (50,)), mean, std, new_std)
        np.testing.assert_allclose(
            moments(transform, location, new_std)[0], moments(transform, mean, std)[0], rtol=1e-7, atol=1e-12
        )
    dry = PrecipitationTransform("log", offset=0.1)  # far below log(0.1): the rate is 0 at every node
    groups = transform_groups(dry, None, (2,))
    kept = mean_keeping_location(groups, np.full(2, -30.0), np.ones(2), np.array([0.5, 3.0]))
    np.testing.assert_array_equal(kept, -30.0)
    uncensored = PrecipitationTransform("log", offset=0.5, censor_at_zero=False)  # exp(m + s^2 / 2) - offset
    location = mean_keeping_location(transform_groups(uncensored, None, (50,)), mean, std, new_std)
    np.testing.assert_allclose(location, mean + (std**2 - new_std**2) / 2, atol=1e-6)


def test_calibration_goes_through_the_prediction() -> None:
    dataset, _ = _prediction(1.0, 40, 4)
    calibration = Calibration(probability=TemperatureScaling(2.0), std=StdScaling(1.5), fitted_on="test")
    predicted = Prediction.from_dataset(dataset).with_derived_bins()
    applied = calibration.apply(predicted.to_dataset())
    xr.testing.assert_identical(applied, calibration.apply_to(predicted).to_dataset())
    np.testing.assert_allclose(applied[conventions.BIN_PROBABILITY].sum("bin"), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(
        applied[conventions.TRANSFORMED_STD].values, dataset[conventions.TRANSFORMED_STD].values * 1.5
    )
    assert applied.attrs["calibration_temperature"] == 2.0 and applied.attrs["model"] == "oracle"


def test_a_prediction_needs_a_positive_spread() -> None:
    with pytest.raises(FloatingPointError, match="standard deviation must be > 0"):
        Prediction.from_moments(
            ("target",),
            transformed_mean=np.zeros(3),
            latent_variance=np.zeros(3),
            noise_variance=0.0,
            transform=PrecipitationTransform(),
            model="oracle",
        )


def test_epistemic_share_is_latent_over_total_and_nan_without_variance() -> None:
    from weatherunc.prediction import epistemic_share

    share = epistemic_share(np.array([1.0, 0.0, 3.0, 0.0, np.nan]), np.array([1.0, 2.0, 1.0, 0.0, 1.0]))
    np.testing.assert_allclose(share[:3], [0.5, 0.0, 0.75])
    assert np.isnan(share[3:]).all()
    np.testing.assert_allclose(epistemic_share(np.ones((2, 3)), 3.0), np.full((2, 3), 0.25))
