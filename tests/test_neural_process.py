"""Neural-process modules, loss, normalisation and interpolator (no data needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from weatherunc.metrics.kernels import rate_bin_index
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import NeuralProcessInterpolator, TileOptions, tile_context
from weatherunc.models.neural_process.losses import neural_process_loss
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.models.neural_process.normalisation import denormalise, normalise_values
from weatherunc.tasks import Task

TINY = {"hidden": 16, "latent_dimension": 4, "heads": 2, "self_attention_layers": 1}


def _inputs(batch: int = 3, n_context: int = 7, n_target: int = 5) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, n_context, 2, generator=generator),
        torch.randn(batch, n_context, 1, generator=generator),
        torch.randn(batch, n_target, 2, generator=generator),
        torch.randn(batch, n_target, 1, generator=generator),
    )


@pytest.mark.parametrize("attention, latent", [(True, True), (False, False), (True, False)])
def test_forward_shapes_and_std_floor(attention: bool, latent: bool) -> None:
    torch.manual_seed(0)
    config = NeuralProcessConfig(**TINY, attention=attention, latent=latent, minimum_std=0.2)
    model = NeuralProcess(config)
    context_inputs, context_values, target_inputs, target_values = _inputs()
    output = model(context_inputs, context_values, target_inputs, target_values, samples=4)
    assert output.mean.shape == output.std.shape == (4, 3, 5)
    assert output.logits.shape == (4, 3, 5, config.bins)
    assert torch.all(output.std >= 0.2)
    assert (output.prior is not None) == latent and (output.posterior is not None) == latent
    batched = model(context_inputs, context_values, target_inputs, samples=1, target_batch=2)
    assert batched.mean.shape == (1, 3, 5)


def test_config_kinds_and_checks() -> None:
    assert NeuralProcessConfig(**TINY).kind == "anp"
    assert NeuralProcessConfig(**TINY, attention=False, latent=False).kind == "cnp"
    with pytest.raises(ValueError, match="divisible by heads"):
        NeuralProcessConfig(hidden=10, heads=4)
    with pytest.raises(ValueError, match="bin_edges must start at 0"):
        NeuralProcessConfig(bin_edges=(0.1, 1.0))
    config = NeuralProcessConfig(**TINY, value_centre=0.3)
    assert NeuralProcessConfig.from_dict(config.to_dict()) == config


def test_task_statistics_are_the_context_mean_and_floored_spread() -> None:
    model = NeuralProcess(NeuralProcessConfig(**TINY, task_normalisation=True, task_scale_floor=0.3))
    _, context_values, _, _ = _inputs(batch=2, n_context=9)
    centre, scale = model.task_statistics(context_values)
    values = context_values[..., 0].double().numpy()
    np.testing.assert_allclose(centre[:, 0, 0].numpy(), values.mean(1), rtol=1e-6)
    np.testing.assert_allclose(scale[:, 0, 0].numpy(), np.sqrt(values.var(1) + 0.09), rtol=1e-6)
    _, dry_scale = model.task_statistics(torch.zeros(1, 5, 1))
    assert float(dry_scale) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="task_scale_floor"):
        NeuralProcessConfig(task_scale_floor=0.0)


def _without_statistics_input(model: NeuralProcess) -> NeuralProcess:
    """Zero the decoder weights that read ``(centre, log scale)``, so only the normalised task matters."""
    first = model.decoder.network[0]
    statistics_columns = slice(
        2 + model.config.hidden + int(model.config.distance_bias),
        2 + model.config.hidden + int(model.config.distance_bias) + 2,
    )
    with torch.no_grad():
        first.weight[:, statistics_columns] = 0.0
    return model


@pytest.mark.parametrize("attention, latent", [(True, True), (False, False)])
def test_task_normalisation_is_equivariant_to_shift_and_scale(attention: bool, latent: bool) -> None:
    """``mean * s + m`` and ``std * s``: shifting every value shifts the mean and keeps the std;
    scaling (floor negligible) scales both. Only the decoder's statistics input breaks this,
    so it is zeroed here; the std floor scales with the task."""
    torch.manual_seed(0)
    config = NeuralProcessConfig(
        **{**TINY, "latent_dimension": 4},
        attention=attention,
        latent=latent,
        task_normalisation=True,
        task_scale_floor=1e-6,
        minimum_std=0.2,
    )
    model = _without_statistics_input(NeuralProcess(config)).eval()
    context_inputs, context_values, target_inputs, _ = _inputs()

    def predict(values: torch.Tensor):
        torch.manual_seed(1)
        return model(context_inputs, values, target_inputs, samples=2)

    base, shifted, scaled = (
        predict(context_values),
        predict(context_values + 5.0),
        predict(3.0 * context_values - 1.0),
    )
    torch.testing.assert_close(shifted.mean, base.mean + 5.0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(shifted.std, base.std, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scaled.mean, 3.0 * base.mean - 1.0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(scaled.std, 3.0 * base.std, rtol=1e-4, atol=1e-5)
    _, scale = model.task_statistics(context_values)
    assert torch.all(base.std >= 0.2 * scale[:, 0] * (1 - 1e-6))
    full = NeuralProcess(config).eval()  # with the statistics input the level is seen, so no equivariance
    torch.manual_seed(1)
    first = full(context_inputs, context_values, target_inputs, samples=1).mean
    torch.manual_seed(1)
    assert not torch.allclose(
        full(context_inputs, context_values + 5.0, target_inputs, samples=1).mean, first + 5.0, atol=1e-3
    )


def test_loss_terms_and_one_batch_overfit() -> None:
    torch.manual_seed(0)
    model = NeuralProcess(NeuralProcessConfig(**TINY))
    context_inputs, context_values, target_inputs, target_values = _inputs(batch=4, n_context=20, n_target=20)
    target_values = torch.sin(3 * target_inputs[..., :1])
    context_values = torch.sin(3 * context_inputs[..., :1])
    bins = torch.zeros(4, 20, dtype=torch.long)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        output = model(context_inputs, context_values, target_inputs, target_values)
        terms = neural_process_loss(output, target_values[..., 0], bins)
        assert terms["kl"] >= 0 and torch.isfinite(terms["loss"])
        optimiser.zero_grad()
        terms["loss"].backward()
        optimiser.step()
        losses.append(terms["loss"].item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_cnp_has_no_kl() -> None:
    model = NeuralProcess(NeuralProcessConfig(**TINY, attention=False, latent=False))
    context_inputs, context_values, target_inputs, target_values = _inputs()
    terms = neural_process_loss(
        model(context_inputs, context_values, target_inputs, target_values), target_values[..., 0]
    )
    assert terms["kl"] == 0 and terms["cross_entropy"] == 0


def test_normalisation_round_trip_and_bins() -> None:
    config = NeuralProcessConfig(**TINY, value_centre=0.4, value_scale=0.8)
    rate = np.array([0.0, 0.05, 0.1, 0.99, 1.0, 55.0])
    standardised = normalise_values(config, rate).astype(np.float64)
    mean, variance = denormalise(config, standardised, np.ones_like(standardised))
    np.testing.assert_allclose(config.transform.inverse(mean), rate, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variance, 0.64)
    np.testing.assert_array_equal(rate_bin_index(rate, config.bin_edges), [0, 0, 1, 3, 4, 9])


def test_tile_context_takes_the_box_and_caps_by_distance() -> None:
    context = np.array([[0.0, 0.0], [5.0, 5.0], [50.0, 50.0], [9.0, 9.0]])
    chosen = tile_context(context, np.array([0.0, 0.0]), np.array([10.0, 10.0]), halo_km=1.0, max_context=2)
    np.testing.assert_array_equal(chosen, [1, 3])  # the two nearest to the centre (5, 5) inside the box
    far = tile_context(
        context, np.array([200.0, 200.0]), np.array([210.0, 210.0]), halo_km=1.0, max_context=1
    )
    np.testing.assert_array_equal(far, [2])  # nothing inside: the nearest


def _task(seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 50, size=(150, 2))
    values = np.maximum(np.sin(points[:, 0] / 8) * 3, 0)
    return Task(
        points[:100],
        values[:100],
        points[100:],
        values[100:],
        target_coords={"x": points[100:, 0], "y": points[100:, 1]},
    )


def _interpolator(**options) -> NeuralProcessInterpolator:
    torch.manual_seed(1)
    return NeuralProcessInterpolator(model=NeuralProcess(NeuralProcessConfig(**TINY)), samples=4, **options)


def test_prediction_invariant_to_context_order_and_to_other_targets() -> None:
    task = _task()
    interpolator = _interpolator(tiles=TileOptions(tile_km=20, halo_km=20))
    full = interpolator.predict(task)
    order = np.random.default_rng(3).permutation(task.n_context)
    shuffled = Task(
        task.context_coordinates[order],
        task.context_values[order],
        task.target_coordinates,
        task.target_values,
        target_coords=task.target_coords,
    )
    np.testing.assert_allclose(
        interpolator.predict(shuffled).transformed_mean.values,
        full.transformed_mean.values,
        rtol=1e-5,
        atol=1e-6,
    )
    subset = Task(
        task.context_coordinates,
        task.context_values,
        task.target_coordinates[:7],
        task.target_values[:7],
        target_coords={k: v[:7] for k, v in task.target_coords.items()},
    )
    np.testing.assert_allclose(
        interpolator.predict(subset).transformed_std.values, full.transformed_std.values[:7], rtol=1e-5
    )


def test_bin_probabilities_sum_to_one_and_mc_dropout_adds_epistemic_variance() -> None:
    torch.manual_seed(2)
    config = NeuralProcessConfig(**TINY, latent=False, dropout=0.3)
    task = _task()
    plain = NeuralProcessInterpolator(model=NeuralProcess(config), samples=8).predict(task)
    assert np.all(plain.latent_variance.values == 0)  # deterministic model, no draws
    np.testing.assert_allclose(plain.bin_probability.sum("bin").values, 1.0, rtol=1e-10)
    assert plain.bin_lower.values[0] == 0 and np.isinf(plain.bin_upper.values[-1])
    dropout = NeuralProcessInterpolator(model=NeuralProcess(config), samples=8, mc_dropout=True)
    predicted = dropout.predict(task)
    assert np.all(predicted.latent_variance.values > 0) and predicted.attrs["mc_dropout"] == 1


def test_ensemble_of_members_is_their_mixture() -> None:
    from weatherunc.models.ensemble import EnsembleInterpolator

    task = _task()
    members = []
    for seed in (5, 6):
        torch.manual_seed(seed)
        members.append(NeuralProcessInterpolator(model=NeuralProcess(NeuralProcessConfig(**TINY)), samples=4))
    ensemble = EnsembleInterpolator(members).predict(task)
    single = [member.predict(task) for member in members]
    means = np.stack([prediction.transformed_mean.values for prediction in single])
    np.testing.assert_allclose(ensemble.transformed_mean.values, means.mean(0))
    total = np.mean([p.transformed_std.values**2 for p in single], axis=0) + means.var(0)
    np.testing.assert_allclose(ensemble.transformed_std.values**2, total, rtol=1e-10)
    np.testing.assert_allclose(ensemble.bin_probability.sum("bin"), 1.0)
    assert np.all(ensemble.mutual_information.values >= 0) and ensemble.mutual_information.values.max() > 0
    with pytest.raises(ValueError, match="at least 2 members"):
        EnsembleInterpolator(members[:1])
