"""Stochastic attention in the ANP (Kim et al. 2022): Weibull draws, the Weibull-Gamma KL, the
off-switch, the attention-draw ensemble, fine-tuning from a deterministic checkpoint (no data
needed)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_neural_process import TINY, _inputs
from weatherunc.checkpoints import save_checkpoint
from weatherunc.models.ensemble import EnsembleInterpolator
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import ARCHITECTURE, attention_members, load_neural_process
from weatherunc.models.neural_process.layers import MultiHeadAttention
from weatherunc.models.neural_process.losses import neural_process_loss
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.models.neural_process.stochastic_attention import (
    StochasticMultiHeadAttention,
    sample_log_weibull,
    weibull_gamma_kl,
    weibull_log_scale,
)
from weatherunc.models.registry import get_model
from weatherunc.tasks import Task

STOCHASTIC = {**TINY, "stochastic_attention": True, "attention_weibull_shape": 5.0}


def _task() -> Task:
    rng = np.random.default_rng(4)
    points = rng.uniform(0, 40, size=(70, 2))
    field = np.maximum(np.sin(points[:, 0] / 7.0) + np.cos(points[:, 1] / 9.0), 0.0) * 3.0
    return Task(points[:50], field[:50], points[50:], field[50:], target_coords={"y": points[50:, 1]})


@pytest.mark.parametrize("shape", [0.7, 2.0, 10.0])
def test_reparameterised_weibull_draws_have_the_asked_mean(shape: float) -> None:
    """Mean of 200,000 draws within 5 standard errors of the asked mean (the Weibull's own variance
    gives the standard error), for two means; a wrong scale (e.g. without the Gamma(1 + 1/k)
    factor, 3 % to 30 % off at these shapes) is hundreds of standard errors away."""
    torch.manual_seed(0)
    means = torch.tensor([0.2, 3.0], dtype=torch.float64)
    log_scale = weibull_log_scale(torch.log(means), shape)[:, None].expand(-1, 200_000)
    draws = torch.exp(sample_log_weibull(log_scale, shape))
    variance = means**2 * (math.gamma(1 + 2 / shape) / math.gamma(1 + 1 / shape) ** 2 - 1)
    standard_error = torch.sqrt(variance / draws.shape[1])
    assert torch.all((draws.mean(1) - means).abs() < 5 * standard_error)
    assert torch.all(draws > 0)
    log_scale = torch.zeros(3, requires_grad=True)  # differentiable in the scale
    sample_log_weibull(log_scale, shape).sum().backward()
    assert torch.allclose(log_scale.grad, torch.ones(3))


@pytest.mark.parametrize("shape, prior_shape, prior_rate", [(2.0, 0.5, 1.0), (10.0, 3.0, 4.0)])
def test_weibull_gamma_kl_matches_a_monte_carlo_estimate(
    shape: float, prior_shape: float, prior_rate: float
) -> None:
    """Closed form against E_q[log q(W) - log p(W)] over 400,000 draws, within 5 standard errors."""
    torch.manual_seed(1)
    log_scale = torch.tensor(-0.3, dtype=torch.float64)
    closed = weibull_gamma_kl(log_scale, shape, torch.tensor(prior_shape, dtype=torch.float64), prior_rate)
    draws = torch.exp(sample_log_weibull(log_scale.expand(400_000), shape))
    posterior = torch.distributions.Weibull(torch.exp(log_scale), torch.tensor(shape, dtype=torch.float64))
    prior = torch.distributions.Gamma(
        torch.tensor(prior_shape, dtype=torch.float64), torch.tensor(prior_rate, dtype=torch.float64)
    )
    terms = posterior.log_prob(draws) - prior.log_prob(draws)
    standard_error = terms.std() / math.sqrt(terms.numel())
    assert abs(closed - terms.mean()) < 5 * standard_error and closed > 0


def test_attention_weights_sum_to_one_and_vary_between_draws() -> None:
    torch.manual_seed(2)
    attention = StochasticMultiHeadAttention(8, 2, distance_bias=True, weibull_shape=10.0)
    draws = 2000  # the same query and keys repeated along the batch: one draw per batch entry
    queries, keys = torch.randn(1, 3, 8).expand(draws, -1, -1), torch.randn(1, 5, 8).expand(draws, -1, -1)
    distance = (torch.rand(1, 3, 5) * 1e-3).expand(draws, -1, -1)  # mild: no weight is all but zero
    with torch.no_grad():
        attention(queries, keys, keys, distance)
    weights = attention.last_weights  # [draws, heads, n_query, n_key]
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert weights.std(0).min() > 1e-3  # draws differ
    assert attention.divergence is None  # no KL without gradients
    attention(queries[:1], keys[:1], keys[:1], distance[:1])
    assert attention.divergence.shape == (1, 3) and torch.all(attention.divergence > 0)


def test_nearly_deterministic_weibull_gives_the_deterministic_attention() -> None:
    """With a very large shape the draws sit on their mean: the output is the deterministic block's
    with the same weights (scores, scaling and distance bias computed alike)."""
    torch.manual_seed(3)
    deterministic = MultiHeadAttention(8, 2, distance_bias=True)
    stochastic = StochasticMultiHeadAttention(8, 2, distance_bias=True, weibull_shape=1e5)
    missing, unexpected = stochastic.load_state_dict(deterministic.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("prior.") for name in missing)
    queries, keys, values = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    distance = torch.rand(2, 4, 6) * 0.01
    with torch.no_grad():
        torch.testing.assert_close(
            stochastic(queries, keys, values, distance),
            deterministic(queries, keys, values, distance),
            atol=1e-3,
            rtol=1e-3,
        )


def test_off_switch_is_the_deterministic_model_bit_for_bit() -> None:
    """Default config = the model before stochastic attention existed: same parameters, same
    outputs; a stochastic model holding those weights differs only by its prior network."""
    torch.manual_seed(3)
    plain = NeuralProcess(NeuralProcessConfig(**TINY))
    torch.manual_seed(3)
    off = NeuralProcess(NeuralProcessConfig(**TINY, stochastic_attention=False))
    assert plain.state_dict().keys() == off.state_dict().keys()
    inputs = _inputs(2, 9, 6)
    torch.manual_seed(4)
    first = plain.eval()(*inputs[:3], samples=2)
    torch.manual_seed(4)
    second = off.eval()(*inputs[:3], samples=2)
    assert torch.equal(first.mean, second.mean) and torch.equal(first.std, second.std)
    assert first.attention_divergence is None
    stochastic = NeuralProcess(NeuralProcessConfig(**STOCHASTIC))
    extra = set(stochastic.state_dict()) - set(plain.state_dict())
    assert extra and all(".attention.prior." in name for name in extra)
    assert set(plain.state_dict()) <= set(stochastic.state_dict())


def test_loss_adds_the_weighted_attention_kl_and_trains() -> None:
    torch.manual_seed(5)
    model = NeuralProcess(NeuralProcessConfig(**STOCHASTIC))
    context_inputs, context_values, target_inputs, target_values = _inputs(2, 9, 6)
    output = model(context_inputs, context_values, target_inputs, target_values)
    assert output.attention_divergence.shape == (2, 6)
    unweighted = neural_process_loss(output, target_values[..., 0], attention_kl_weight=0.0)
    weighted = neural_process_loss(output, target_values[..., 0], attention_kl_weight=0.5)
    assert weighted["attention_kl"] > 0
    torch.testing.assert_close(weighted["loss"], unweighted["loss"] + 0.5 * weighted["attention_kl"])
    weighted["loss"].backward()
    prior = model.deterministic.cross_attention[0].attention.prior
    assert prior[-1].weight.grad is not None and prior[-1].weight.grad.abs().sum() > 0


def _save(model: NeuralProcess, path: Path) -> Path:
    save_checkpoint(
        path, model.state_dict(), architecture=ARCHITECTURE, config=model.config.to_dict(), metadata_={}
    )
    return path


def test_checkpoint_round_trip_keeps_the_stochastic_attention_fields(tmp_path: Path) -> None:
    torch.manual_seed(6)
    config = NeuralProcessConfig(**STOCHASTIC, attention_prior_rate=2.0)
    model = NeuralProcess(config)
    loaded, _ = load_neural_process(_save(model, tmp_path / "stochastic.safetensors"))
    assert loaded.config == config and loaded.config.attention_prior_rate == 2.0
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with pytest.raises(ValueError, match="stochastic_attention needs attention"):
        NeuralProcessConfig(**TINY, attention=False, stochastic_attention=True)
    with pytest.raises(ValueError, match="attention_weibull_shape"):
        NeuralProcessConfig(**TINY, attention_weibull_shape=0.0)


def test_attention_draws_differ_and_their_ensemble_adds_epistemic_variance(tmp_path: Path) -> None:
    torch.manual_seed(7)
    path = _save(NeuralProcess(NeuralProcessConfig(**STOCHASTIC)), tmp_path / "stochastic.safetensors")
    task = _task()
    ensemble = get_model("anp", checkpoint=path, stochastic_attention_samples=3, samples=2)
    assert isinstance(ensemble, EnsembleInterpolator) and len(ensemble.members) == 3
    assert ensemble.name == "anp" and len({member.seed for member in ensemble.members}) == 3
    members = [member.predict(task) for member in ensemble.members]
    means = np.stack([member.transformed_mean.values for member in members])
    assert np.all(means.std(0) > 0)  # the attention draws differ
    mixture = ensemble.predict(task)
    member_latent = np.mean([member.latent_variance.values for member in members], axis=0)
    assert np.all(mixture.latent_variance.values > member_latent)
    np.testing.assert_allclose(mixture.latent_variance.values, member_latent + means.var(0), rtol=1e-10)
    again = get_model("anp", checkpoint=path, stochastic_attention_samples=3, samples=2).members[1]
    np.testing.assert_array_equal(again.predict(task).transformed_mean.values, means[1])  # seeded draws
    with pytest.raises(ValueError, match="no stochastic attention"):
        get_model("anp", stochastic_attention_samples=4)
    with pytest.raises(ValueError, match="at least 2"):
        attention_members(ensemble.members[0], 1)


def test_fine_tuning_copies_the_deterministic_weights(tmp_path: Path) -> None:
    from weatherunc.training.config import TrainingConfig
    from weatherunc.training.loop import architecture_differences, initial_model

    torch.manual_seed(8)
    deterministic = NeuralProcess(NeuralProcessConfig(**TINY, value_centre=0.3, value_scale=0.7))
    source = _save(deterministic, tmp_path / "deterministic.safetensors")
    frames = [{"dataset": "mrms_embedded"}]
    options = {"model": {**STOCHASTIC}, "train": frames, "validation": frames, "initialise_from": source}
    config = TrainingConfig(**options)
    assert architecture_differences(config, deterministic.config) == []
    model = initial_model(config, bank=None)
    assert model.config == replace(
        deterministic.config, stochastic_attention=True, attention_weibull_shape=5.0
    )
    for name, tensor in deterministic.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    prior = model.deterministic.cross_attention[0].attention.prior
    assert torch.all(prior[-1].weight == 0) and torch.all(prior[-1].bias == 0)
    # the fingerprint of a config without stochastic attention does not see its options
    plain = TrainingConfig(train=frames, validation=frames)
    assert (
        plain.fingerprint()
        == TrainingConfig(train=frames, validation=frames, attention_kl_weight=3).fingerprint()
    )
    assert config.fingerprint() != TrainingConfig(**options, attention_kl_weight=3).fingerprint()
