"""Bayes by Backprop: the KL against its closed form, the weight samples' distribution, the file and
its checks, a fit on the embedded sample, and a ConvNP whose weight samples predict as an ensemble."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.test_convnp_prior import TINY, _smooth_task
from tests.test_convnp_training import CONFIG
from weatherunc import conventions
from weatherunc.checkpoints import CheckpointError, save_checkpoint
from weatherunc.cli import app
from weatherunc.models.bayes_by_backprop import (
    VariationalPosterior,
    bayes_by_backprop_members,
    gaussian_kl,
    initial_posterior,
    inverse_softplus,
    load_posterior,
    sample_weights,
    save_posterior,
)
from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.convnp.interpolator import ARCHITECTURE, ConvNPInterpolator
from weatherunc.models.convnp.model import ConvNP
from weatherunc.models.registry import get_model
from weatherunc.models.swag import selected_parameters
from weatherunc.training.bayes_by_backprop import (
    BayesByBackpropOptions,
    fit_bayes_by_backprop,
    kl_divisor,
)
from weatherunc.training.convnp_config import ConvNPTrainingConfig


def _posterior() -> VariationalPosterior:
    mean = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.25, -0.3])
    std = torch.tensor([0.1, 0.4, 0.02, 1.0, 0.3, 0.05])
    rho = torch.tensor([inverse_softplus(float(value)) for value in std])
    return VariationalPosterior(["weight", "bias"], [[2, 2], [2]], mean, rho, prior_std=0.7)


def test_kl_is_the_closed_form_for_gaussians() -> None:
    posterior = _posterior()
    torch.testing.assert_close(posterior.std, torch.tensor([0.1, 0.4, 0.02, 1.0, 0.3, 0.05]))
    # KL(N(m, s^2) || N(0, p^2)) of each element, written out independently
    expected = sum(
        math.log(0.7 / s) + (s**2 + m**2) / (2 * 0.7**2) - 0.5
        for m, s in zip(posterior.mean.tolist(), posterior.std.tolist())
    )
    assert float(gaussian_kl(posterior.mean, posterior.std, 0.7)) == pytest.approx(expected, rel=1e-5)
    # against torch's own Gaussian KL, and zero where q is the prior
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(posterior.mean, posterior.std),
        torch.distributions.Normal(torch.zeros(6), torch.full((6,), 0.7)),
    ).sum()
    torch.testing.assert_close(gaussian_kl(posterior.mean, posterior.std, 0.7), reference)
    assert float(gaussian_kl(torch.zeros(4), torch.full((4,), 0.7), 0.7)) == pytest.approx(0.0, abs=1e-6)


def test_weight_samples_have_the_variational_mean_and_std() -> None:
    posterior = _posterior()
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [
            torch.cat([w.reshape(-1) for w in sample_weights(posterior, generator).values()])
            for _ in range(20_000)
        ]
    ).double()
    std = posterior.std.double()
    # the mean's standard error is std / sqrt(20000) < 0.0071 std: 5 standard errors
    assert torch.all((draws.mean(0) - posterior.mean.double()).abs() < 5 * std / math.sqrt(20_000))
    # the std's relative standard error is about 1 / sqrt(2 * 20000) = 0.005: 3 % is 6 of them, and
    # a wrong std (e.g. rho itself, or the variance) is off by far more
    torch.testing.assert_close(draws.std(0), std, rtol=0.03, atol=0)
    assert list(sample_weights(posterior)["weight"].shape) == [2, 2]


def test_posterior_file_round_trips_and_tampered_files_are_refused(tmp_path: Path) -> None:
    posterior = _posterior()
    path = tmp_path / "bbb.safetensors"
    sidecar = save_posterior(path, posterior, {"note": "test"})
    loaded, values = load_posterior(path)
    assert loaded.names == ["weight", "bias"] and loaded.prior_std == 0.7
    assert values["metadata"]["note"] == "test"
    torch.testing.assert_close(loaded.mean, posterior.mean)
    torch.testing.assert_close(loaded.rho, posterior.rho)
    original = json.loads(sidecar.read_text())
    for label, (change, message) in {
        "huge": ({"shapes": [[10**9], [2]]}, "parameters"),
        "negative size": ({"shapes": [[-4], [2]]}, "'shapes'"),
        "shape count": ({"shapes": [[2, 2]]}, "'shapes'"),
        "names": ({"names": "weight"}, "parameter names"),
        "repeated names": ({"names": ["weight", "weight"]}, "'names'"),
        "prior": ({"prior_std": -1.0}, "'prior_std'"),
        "size": ({"shapes": [[2, 2], [3]]}, "parameters do not fit"),
    }.items():
        sidecar.write_text(json.dumps({**original, "config": {**original["config"], **change}}))
        with pytest.raises(CheckpointError, match=message):
            load_posterior(path)
            pytest.fail(f"the {label} sidecar was accepted")
    sidecar.write_text(json.dumps(original))
    path.write_bytes(path.read_bytes()[:-4] + b"\x00\x00\x80\x7f")  # the last rho now inf
    with pytest.raises(CheckpointError, match="sha256"):
        load_posterior(path)


def test_weight_samples_predict_as_an_ensemble_with_epistemic_variance(tmp_path: Path) -> None:
    torch.manual_seed(0)
    base = ConvNPInterpolator(model=ConvNP(ConvNPConfig(**TINY)).eval())
    names = selected_parameters(base.model, ("decoder.",))
    posterior = initial_posterior(base.model, names, initial_std=0.05, prior_std=1.0)
    task = _smooth_task()
    members = bayes_by_backprop_members(base, posterior, 3)
    assert [member.name for member in members] == ["convnp-bbb0", "convnp-bbb1", "convnp-bbb2"]
    # seeded: the same members again, and other ones with another seed
    again = bayes_by_backprop_members(base, posterior, 3)
    other = bayes_by_backprop_members(base, posterior, 3, seed=1)
    weight = "decoder.0.weight"
    assert torch.equal(members[1].model.state_dict()[weight], again[1].model.state_dict()[weight])
    assert not torch.equal(members[1].model.state_dict()[weight], other[1].model.state_dict()[weight])
    assert not torch.equal(members[0].model.state_dict()[weight], members[1].model.state_dict()[weight])
    with pytest.raises(ValueError, match="weight_samples must be at least 2"):
        bayes_by_backprop_members(base, posterior, 1)
    wider = ConvNPInterpolator(model=ConvNP(ConvNPConfig(**{**TINY, "decoder_hidden": 12})).eval())
    with pytest.raises(ValueError, match="is not in the model"):
        bayes_by_backprop_members(wider, posterior, 2)
    # by name: the ensemble's latent variance exceeds the single model's (zero: deterministic)
    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(
        checkpoint, base.model.state_dict(), architecture=ARCHITECTURE, config=base.model.config.to_dict()
    )
    save_posterior(tmp_path / "tiny.bbb.safetensors", posterior, {})
    single = get_model("convnp", checkpoint=checkpoint).predict(task)
    ensemble = get_model(
        "convnp", checkpoint=checkpoint, bayes_by_backprop=tmp_path / "tiny.bbb.safetensors", weight_samples=3
    )
    prediction = ensemble.predict(task)
    assert ensemble.name == "convnp+bbb" and prediction.attrs["members"] == 3
    latent = prediction[conventions.LATENT_VARIANCE].values
    assert np.all(latent > single[conventions.LATENT_VARIANCE].values) and np.all(latent > 1e-8)
    with pytest.raises(ValueError, match="not both"):
        get_model("convnp", checkpoint=checkpoint, swag=checkpoint, bayes_by_backprop=checkpoint)


def test_fit_on_the_embedded_sample_and_the_command(tmp_path: Path) -> None:
    model = ConvNP(ConvNPConfig(**TINY))
    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint, model.state_dict(), architecture=ARCHITECTURE, config=model.config.to_dict())
    config = ConvNPTrainingConfig(**{**CONFIG, "output_dir": tmp_path / "run"})
    options = BayesByBackpropOptions(steps=4, initial_std=1e-3, prior_std=0.5, std_learning_rate=0.05)
    assert kl_divisor(config, options) == 4 * 2 * 64
    output = tmp_path / "tiny.bbb.safetensors"
    fit_bayes_by_backprop(config, checkpoint, output, options, progress=False)
    posterior, sidecar = load_posterior(output)
    metadata = sidecar["metadata"]
    assert metadata["kl_divisor"] == 512 and metadata["options"]["steps"] == 4
    assert metadata["history"][-1]["step"] == 4 and posterior.prior_std == 0.5
    assert all(name.startswith(("decoder.", "unet.up.0.", "unet.lift.0.")) for name in posterior.names)
    # the stds moved from their start (the KL alone pushes them up towards the prior's)
    assert float(posterior.std.mean()) > 1e-3 and torch.all(torch.isfinite(posterior.mean))
    with pytest.raises(ValueError, match="positive steps"):
        BayesByBackpropOptions(prior_std=0.0)
    result = CliRunner().invoke(
        app, ["bbb", str(tmp_path / "none.yaml"), str(checkpoint), "--output", str(output)]
    )
    assert result.exit_code != 0 and "none.yaml" in result.output


def test_fit_an_anp_s_decoder_by_the_command_and_use_it_by_name(tmp_path: Path) -> None:
    """An ANP checkpoint with its training config: the posterior covers the decoder only, its KL is
    spread over the ANP's targets, and ``get_model("anp", bayes_by_backprop=PATH)`` samples it."""
    import yaml

    from tests.test_training import CONFIG as ANP_CONFIG
    from weatherunc.models.neural_process.interpolator import ARCHITECTURE as ANP_ARCHITECTURE
    from weatherunc.models.neural_process.model import NeuralProcess
    from weatherunc.training.config import TrainingConfig

    torch.manual_seed(0)
    model = NeuralProcess(TrainingConfig(**ANP_CONFIG).model.to_config(0.0, 1.0))
    checkpoint = tmp_path / "anp.safetensors"
    save_checkpoint(
        checkpoint, model.state_dict(), architecture=ANP_ARCHITECTURE, config=model.config.to_dict()
    )
    options = BayesByBackpropOptions(steps=3, prior_std=0.5, std_learning_rate=0.05)
    assert kl_divisor(TrainingConfig(**ANP_CONFIG), options) == 3 * 2 * 32
    path = tmp_path / "anp.yaml"
    path.write_text(yaml.safe_dump({**ANP_CONFIG, "output_dir": str(tmp_path / "run")}))
    output = tmp_path / "anp.bbb.safetensors"
    command = ["bbb", str(path), str(checkpoint), "--output", str(output), "--steps", "3"]
    result = CliRunner().invoke(app, [*command, "--prior-std", "0.5", "--std-learning-rate", "0.05"])
    assert result.exit_code == 0, result.output
    posterior, sidecar = load_posterior(output)
    assert sidecar["metadata"]["kl_divisor"] == 192 and sidecar["metadata"]["options"]["prefixes"] == [
        "decoder."
    ]
    assert posterior.names and all(name.startswith("decoder.") for name in posterior.names)
    assert float(posterior.std.mean()) > 1e-3 and torch.all(torch.isfinite(posterior.mean))
    ensemble = get_model("anp", checkpoint=checkpoint, bayes_by_backprop=output, weight_samples=3)
    assert ensemble.name == "anp+bbb" and len(ensemble.members) == 3
    prediction = ensemble.predict(_smooth_task())
    assert prediction.attrs["members"] == 3 and np.all(prediction[conventions.MUTUAL_INFORMATION].values >= 0)
    with pytest.raises(ValueError, match="not both"):
        get_model("anp", checkpoint=checkpoint, bayes_by_backprop=output, swag=output)
