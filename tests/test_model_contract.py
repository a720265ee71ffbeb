"""One contract, inherited by every registered model: shapes, finite values, std > 0,
monotone quantiles and exceedance probabilities, xarray out, reproducible."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from weatherunc import conventions
from weatherunc.models.bayes_by_backprop import initial_posterior, save_posterior
from weatherunc.models.ensemble import EnsembleInterpolator
from weatherunc.models.registry import MODELS, get_model
from weatherunc.models.swag import SwagCollector, save_swag, selected_parameters
from weatherunc.prediction import Prediction
from weatherunc.tasks import Task


def _task(target_dim: str = "target") -> Task:
    rng = np.random.default_rng(11)
    points = rng.uniform(0, 60, size=(120, 2))
    field = np.maximum(np.sin(points[:, 0] / 9.0) + np.cos(points[:, 1] / 13.0), 0.0) * 4.0
    coords = (
        {"station": np.arange(100, 120)}
        if target_dim == "station"
        else {"y": points[100:, 1], "x": points[100:, 0]}
    )
    return Task(
        points[:100], field[:100], points[100:], field[100:], target_dim=target_dim, target_coords=coords
    )


class ModelContract:
    """Subclasses set ``name``; every test here then runs for that model."""

    name: str

    @classmethod
    def make_model(cls):
        return get_model(cls.name)

    @pytest.fixture(scope="class")
    @classmethod
    def prediction(cls) -> xr.Dataset:
        return cls.make_model().predict(_task())

    def test_schema_round_trip_and_derived_outputs(self, prediction: xr.Dataset) -> None:
        """The schema is Prediction's: reading and writing again is exact, and the derived outputs
        computed afresh from the Gaussian are the model's."""
        predicted = Prediction.from_dataset(prediction)
        xr.testing.assert_identical(predicted.to_dataset(), prediction)
        xr.testing.assert_identical(predicted.recomputed().to_dataset(), prediction)
        assert predicted.model == self.name and predicted.dims == ("target",)
        assert np.all(predicted.transformed_std > 0)
        np.testing.assert_allclose(
            predicted.latent_variance + predicted.noise_variance, predicted.transformed_std**2, rtol=1e-10
        )

    def test_bin_probabilities_sum_to_one(self, prediction: xr.Dataset) -> None:
        """Every model's bins sum to one: its own where it has a head, else derived from its Gaussian."""
        predicted = Prediction.from_dataset(prediction)
        own = predicted.bins is not None
        with_bins = predicted.with_derived_bins()
        np.testing.assert_allclose(with_bins.bins.probability.sum(-1), 1.0, rtol=1e-10)
        written = with_bins.to_dataset()
        assert (conventions.BIN_PROBABILITY in prediction) == own
        assert np.all(written[conventions.RAIN_PROBABILITY].values >= 0)
        xr.testing.assert_identical(Prediction.from_dataset(written).to_dataset(), written)

    def test_variables_and_dims(self, prediction: xr.Dataset) -> None:
        assert prediction.precipitation_mean.dims == ("target",) and prediction.sizes["target"] == 20
        assert prediction.precipitation_quantile.dims == ("target", "quantile")
        assert prediction.exceedance_probability.dims == ("target", "threshold")
        assert prediction.precipitation_mean.attrs["units"] == "mm h-1"
        assert prediction.attrs["model"] == self.name
        assert prediction.attrs["fit_seconds"] >= 0 and prediction.attrs["predict_seconds"] >= 0
        np.testing.assert_array_equal(prediction.x.values, _task().target_coordinates[:, 0])

    def test_finite_and_positive_spread(self, prediction: xr.Dataset) -> None:
        for name, variable in prediction.data_vars.items():
            assert np.all(np.isfinite(variable.values)), name
        assert np.all(prediction.precipitation_std.values > 0) or np.all(
            prediction.transformed_std.values > 0
        )
        assert np.all(prediction.transformed_std.values > 0)
        assert np.all(prediction.precipitation_mean.values >= 0)

    def test_quantiles_and_probabilities_are_monotone(self, prediction: xr.Dataset) -> None:
        assert np.all(np.diff(prediction.precipitation_quantile.values, axis=1) >= -1e-12)
        probability = prediction.exceedance_probability.values
        assert np.all((probability >= 0) & (probability <= 1))
        assert np.all(np.diff(probability, axis=1) <= 1e-12)

    def test_variance_parts_add_up(self, prediction: xr.Dataset) -> None:
        total = prediction.latent_variance + prediction.noise_variance
        np.testing.assert_allclose(total.values, prediction.transformed_std.values**2, rtol=1e-10)

    def test_station_targets_and_reproducibility(self) -> None:
        task = _task("station")
        first, second = self.make_model().predict(task), self.make_model().predict(task)
        assert first.precipitation_mean.dims == ("station",)
        np.testing.assert_array_equal(first.station.values, np.arange(100, 120))
        timing = ["fit_seconds", "predict_seconds"]
        xr.testing.assert_identical(
            first.drop_attrs().assign_attrs({k: v for k, v in first.attrs.items() if k not in timing}),
            second.drop_attrs().assign_attrs({k: v for k, v in second.attrs.items() if k not in timing}),
        )


class TestGaussianProcess(ModelContract):
    name = "gp"


class TestKriging(ModelContract):
    name = "kriging"

    def test_fewer_than_three_contexts_are_refused(self) -> None:
        task = _task()
        for count in (1, 2):
            few = Task(
                task.context_coordinates[:count],
                task.context_values[:count] + np.arange(count),
                task.target_coordinates,
                task.target_values,
            )
            with pytest.raises(
                ValueError, match=f"kriging needs at least 3 contexts to fit a variogram, got {count}"
            ):
                self.make_model().predict(few)


class TestInverseDistance(ModelContract):
    name = "idw"


class TestClimatology(ModelContract):
    name = "climatology"


class TestAttentiveNeuralProcess(ModelContract):
    name = "anp"

    def test_head_outputs(self, prediction: xr.Dataset) -> None:
        assert prediction.bin_probability.attrs["source"] == "categorical head"
        assert np.all(prediction.mutual_information.values >= 0) and prediction.attrs["checkpoint_sha256"]


@functools.cache
def _stochastic_attention_checkpoint() -> Path:
    """A tiny untrained ANP with stochastic attention, saved once per session."""
    import torch

    from weatherunc.checkpoints import save_checkpoint
    from weatherunc.models.neural_process.config import NeuralProcessConfig
    from weatherunc.models.neural_process.interpolator import ARCHITECTURE
    from weatherunc.models.neural_process.model import NeuralProcess

    torch.manual_seed(0)
    config = NeuralProcessConfig(hidden=16, latent_dimension=4, heads=2, stochastic_attention=True)
    model = NeuralProcess(config)
    path = Path(tempfile.mkdtemp()) / "anp_stochastic_attention.safetensors"
    save_checkpoint(path, model.state_dict(), architecture=ARCHITECTURE, config=config.to_dict())
    return path


class TestStochasticAttention(ModelContract):
    """The ANP with stochastic attention, 3 attention draws as an ensemble (not a registered name:
    ``get_model("anp", checkpoint=..., stochastic_attention_samples=3)``)."""

    name = "anp_stochastic_attention"

    @classmethod
    def make_model(cls):
        return get_model(
            "anp",
            checkpoint=_stochastic_attention_checkpoint(),
            stochastic_attention_samples=3,
            name=cls.name,
        )

    def test_attention_draws_are_epistemic(self, prediction: xr.Dataset) -> None:
        assert prediction.attrs["members"] == 3 and np.all(prediction.latent_variance.values > 0)


class TestConditionalNeuralProcess(ModelContract):
    name = "cnp"


class TestConvolutionalNeuralProcess(ModelContract):
    name = "convnp"

    def test_head_outputs(self, prediction: xr.Dataset) -> None:
        assert prediction.bin_probability.attrs["source"] == "categorical head"
        assert np.all(prediction.latent_variance.values == 0) and prediction.attrs["checkpoint_sha256"]


class TestEnsemble(ModelContract):
    """The deep ensemble (not registered by name): the ANP and the CNP as members."""

    name = "ensemble"

    @classmethod
    def make_model(cls):
        return EnsembleInterpolator([get_model("anp"), get_model("cnp")])

    def test_member_disagreement_is_epistemic(self, prediction: xr.Dataset) -> None:
        assert prediction.attrs["members"] == 2
        assert np.all(prediction.mutual_information.values >= 0)


class TestBayesByBackprop(ModelContract):
    """The ConvNP with Bayes by Backprop weight samples (``get_model("convnp", bayes_by_backprop=PATH)``):
    a posterior centred on the shipped weights, written once to a temporary folder."""

    name = "convnp+bbb"
    folder = tempfile.TemporaryDirectory()

    @classmethod
    def make_model(cls):
        path = Path(cls.folder.name) / "convnp.bbb.safetensors"
        if not path.exists():
            model = get_model("convnp").model
            names = selected_parameters(model, ("decoder.",))
            save_posterior(path, initial_posterior(model, names, initial_std=0.01, prior_std=0.1), {})
        return get_model("convnp", bayes_by_backprop=path, weight_samples=2)

    def test_weight_samples_disagree(self, prediction: xr.Dataset) -> None:
        assert prediction.attrs["members"] == 2 and np.all(prediction.latent_variance.values > 0)


class TestAnpSwag(ModelContract):
    """The ANP with SWAG weight samples of its decoder (``get_model("anp", swag=PATH)``): moments
    collected from the shipped weights moved by small steps, written once to a temporary folder."""

    name = "anp+swag"
    folder = tempfile.TemporaryDirectory()

    @classmethod
    def make_model(cls):
        path = Path(cls.folder.name) / "anp.swag.safetensors"
        if not path.exists():
            model = get_model("anp").model
            names = selected_parameters(model, ("decoder.",))
            collector = SwagCollector(model, names, 3)
            generator = torch.Generator().manual_seed(0)
            for _ in range(3):
                for name, parameter in model.named_parameters():
                    if name in names:
                        parameter.data += 0.01 * torch.randn(parameter.shape, generator=generator)
                collector.collect(model)
            save_swag(path, collector.moments(), {"checkpoint_sha256": get_model("anp").checkpoint_sha256})
        return get_model("anp", swag=path, weight_samples=2)

    def test_weight_samples_disagree(self, prediction: xr.Dataset) -> None:
        assert prediction.attrs["members"] == 2 and np.all(prediction.mutual_information.values >= 0)


def test_self_calibrated_models_are_named_and_wrap_the_registered_one() -> None:
    model = get_model("idw+self")
    assert model.name == "idw+self" and model.model.name == "idw"
    with pytest.raises(ValueError, match=r"NAME\+self"):
        get_model("nonexistent+self")


def test_every_registered_model_has_a_contract_test() -> None:
    tested = {cls.name for cls in ModelContract.__subclasses__()}
    assert tested == {*MODELS, "ensemble", "convnp+bbb", "anp_stochastic_attention", "anp+swag"}


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="valid models: anp, climatology, cnp, convnp, gp, idw, kriging"):
        get_model("oracle")


def test_get_model_passes_a_name_option_to_the_model() -> None:
    model = get_model("anp", mc_dropout=True, name="anp_mc_dropout")
    assert model.name == "anp_mc_dropout" and get_model("idw").name == "idw"
