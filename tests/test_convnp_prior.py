"""The convolutional neural process with a GP prior: the prior's grids, the bank of training tasks
with their prior, fine-tuning from a model without one, and a tiny training run on the embedded
MRMS sample (no shared data needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_convnp_training import CONFIG, _synthetic_bank
from weatherunc import conventions
from weatherunc.checkpoints import CheckpointError, save_checkpoint
from weatherunc.metrics.kernels import crps_gaussian
from weatherunc.models.convnp.config import PRIOR_LEVELS, ConvNPConfig
from weatherunc.models.convnp.interpolator import ARCHITECTURE, ConvNPInterpolator, load_convnp
from weatherunc.models.convnp.model import ConvNP, ConvNPOutput, rate_crps_loss, read_at
from weatherunc.models.convnp.prior import coarse_cells, prior_moments, prior_quantiles, upsample_prior
from weatherunc.models.gp import GaussianProcessInterpolator
from weatherunc.tasks import Task
from weatherunc.training.convnp_config import ConvNPTrainingConfig, GridSamplingOptions
from weatherunc.training.convnp_loop import initial_convnp, train_convnp
from weatherunc.training.grid_sampling import draw_task
from weatherunc.training.prior_bank import CHUNK_TASKS, PriorBank, build_prior_bank
from weatherunc.transforms import PrecipitationTransform

TINY = {"channels": (8, 8, 8), "decoder_hidden": 8, "set_conv_lengthscales_km": (1.0, 2.0)}
CHEAP_GP = {"kernel": "matern32", "censored_contexts": False, "fit_iterations": 5}


def _smooth_task(n_context: int = 80, seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    field = lambda xy: np.maximum(0.0, 2.0 + np.sin(xy[:, 0] / 6.0) * 2.0 + np.cos(xy[:, 1] / 8.0))  # noqa: E731
    context = rng.uniform(0, 30, (n_context, 2))
    targets = rng.uniform(2, 28, (40, 2))
    return Task(context, field(context), targets, field(targets))


def test_coarse_cells_span_the_grid_and_upsampling_is_exact_on_them() -> None:
    rows, columns = coarse_cells((10, 13), 4)
    assert rows.tolist() == [0, 4, 8, 9] and columns.tolist() == [0, 4, 8, 12]
    coarse = torch.randn(2, 3, rows.size, columns.size)
    fine = upsample_prior(coarse, (10, 13), 4)
    assert fine.shape == (2, 3, 10, 13)
    torch.testing.assert_close(fine[:, :, rows][:, :, :, columns], coarse)
    # halfway between two coarse cells: their mean
    torch.testing.assert_close(fine[:, :, 2, 0], (coarse[:, :, 0, 0] + coarse[:, :, 1, 0]) / 2)
    with pytest.raises(ValueError, match="coarse grids are"):
        upsample_prior(coarse, (20, 13), 4)


def test_prior_moments_of_gaussian_quantiles_are_its_mean_and_std() -> None:
    mean, std = torch.tensor([0.3, -1.0]), torch.tensor([0.5, 2.0])
    levels = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(PRIOR_LEVELS))
    quantiles = mean[:, None] + std[:, None] * levels
    got_mean, got_std = prior_moments(quantiles, minimum_std=0.01)
    torch.testing.assert_close(got_mean, mean)
    torch.testing.assert_close(got_std, std)
    assert prior_moments(torch.zeros(1, 3), minimum_std=0.01)[1].item() == pytest.approx(0.01)


def test_an_untrained_prior_model_predicts_the_prior_gp() -> None:
    """The correction outputs start at zero: the median and the 0.1-0.9 range are the prior GP's
    at each target."""
    config = ConvNPConfig(**TINY, prior="gp", prior_stride=4, prior_gp=CHEAP_GP)
    task = _smooth_task()
    prediction = ConvNPInterpolator(model=ConvNP(config).eval()).predict(task)
    reference = GaussianProcessInterpolator(config.prior_gp_config()).predict(task)
    median = prediction[conventions.PRECIPITATION_QUANTILE].sel(quantile=0.5).values
    expected = reference[conventions.PRECIPITATION_QUANTILE].sel(quantile=0.5).values
    # the prior's GP sees the contexts at their cells' centres (moved by up to half a cell): on a
    # field that varies over 6 km, that moves its median little
    np.testing.assert_allclose(median, expected, rtol=0.05, atol=0.05)
    assert np.all(prediction[conventions.PRECIPITATION_STD].values > 0)
    without = ConvNPConfig(**TINY)
    with pytest.raises(ValueError, match="needs prior grids"):
        ConvNP(config)(*(torch.zeros(1, 1, 8, 8),) * 2, torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="needs the prior at the targets"):
        ConvNP(config)(*(torch.zeros(1, 1, 8, 8),) * 2, torch.zeros(1, 2, 2), torch.zeros(1, 3, 8, 8))
    assert ConvNP(without)(*(torch.zeros(1, 1, 8, 8),) * 2, torch.zeros(1, 2, 2)).mean.shape == (1, 2)


def test_bounded_corrections_stay_within_their_bound_and_start_at_the_prior() -> None:
    config = ConvNPConfig(**TINY, prior="gp", prior_stride=4, prior_gp=CHEAP_GP, correction_bound=0.5)
    model = ConvNP(config)
    target_prior = torch.tensor([[[-0.5, 0.2, 0.9], [1.0, 1.5, 2.0]]])
    prior_mean, prior_std = prior_moments(target_prior, config.minimum_std)
    features = torch.zeros(1, config.channels[0], 8, 8)
    positions = torch.tensor([[[2.0, 3.0], [5.0, 1.0]]])
    start = model.decode(features, positions, target_prior)
    torch.testing.assert_close(start.mean, prior_mean)
    torch.testing.assert_close(start.std, config.minimum_std + prior_std)
    with torch.no_grad():
        model.decoder[-1].bias[:2] = torch.tensor([1e3, -1e3])
    extreme = model.decode(features, positions, target_prior)
    assert torch.all(extreme.mean <= prior_mean + 0.5 * prior_std + 1e-6)
    assert torch.all(extreme.mean >= prior_mean + 0.49 * prior_std)
    torch.testing.assert_close(extreme.std, config.minimum_std + prior_std * math.exp(-0.5))
    with pytest.raises(ValueError, match="correction_bound"):
        ConvNPConfig(**TINY, correction_bound=0.5)
    with pytest.raises(ValueError, match="correction_bound"):
        ConvNPConfig(**TINY, prior="gp", prior_gp=CHEAP_GP, correction_bound=-1.0)


def test_rate_crps_loss_is_the_gaussian_crps_in_rate_units_over_the_task_mean() -> None:
    """Far from zero and with the identity transform, the predictive is a Gaussian in mm/h: the
    loss is its closed-form CRPS (Gneiting & Raftery 2007) over the task's mean rate + 0.1."""
    config = ConvNPConfig(**TINY, transform=PrecipitationTransform("identity", censor_at_zero=False))
    mean, std = torch.tensor([[40.0, 50.0], [60.0, 30.0]]), torch.tensor([[2.0, 1.0], [3.0, 0.5]])
    truth = torch.tensor([[41.0, 47.0], [60.0, 31.0]])
    weights = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    output = ConvNPOutput(mean=mean, std=std, logits=torch.zeros(2, 2, config.bins))
    closed = crps_gaussian(mean.numpy(), std.numpy(), truth.numpy())
    expected = np.mean(
        [closed[0].mean() / (truth[0].mean().item() + 0.1), closed[1, 0] / (truth[1, 0].item() + 0.1)]
    )
    got = rate_crps_loss(output, truth, weights, config).item()
    assert got == pytest.approx(expected, rel=0.03)
    # a sharper forecast at the truth scores better, and the loss has a gradient
    mean.requires_grad_(True)
    better = rate_crps_loss(
        ConvNPOutput(mean=mean, std=std / 4, logits=output.logits), mean.detach(), weights, config
    )
    assert better.item() < got
    better.backward()
    assert mean.grad is not None


def test_prior_quantiles_refuse_an_empty_context_grid() -> None:
    config = ConvNPConfig(**TINY, prior="gp")
    with pytest.raises(ValueError, match="'observed' holds no context"):
        prior_quantiles(lambda task: None, config, np.zeros((8, 8)), np.zeros((8, 8)), 4, np.zeros((1, 2)))


def test_prior_options_are_checked() -> None:
    with pytest.raises(ValueError, match="prior must be one of"):
        ConvNPConfig(prior="kriging")
    with pytest.raises(ValueError, match=r"prior_gp: unknown options \['max_exact_context'\]"):
        ConvNPConfig(prior="gp", prior_gp={"max_exact_context": 10**9})
    with pytest.raises(ValueError, match="prior_gp:"):
        ConvNPConfig(prior="gp", prior_gp={"kernel": "no such kernel"})
    assert ConvNPConfig.from_dict(ConvNPConfig(prior="gp").to_dict()) == ConvNPConfig(prior="gp")
    # a sidecar written before the prior existed still reads, as a model without one
    values = ConvNPConfig().to_dict()
    for name in ("prior", "prior_stride", "prior_gp"):
        values.pop(name)
    assert ConvNPConfig.from_dict(values).prior == "none"


def _tiny_bank(directory: Path, count: int = 3) -> tuple[Path, ConvNPConfig]:
    config = ConvNPConfig(**TINY, prior="gp", prior_gp=CHEAP_GP)
    options = GridSamplingOptions(patch_cells=24, target_points=16, block_pixels=(4, 8), halo_pixels=(4, 6))
    folder = build_prior_bank(
        directory, _synthetic_bank(), "frames", config, options, count=count, seed=0, progress=False
    )
    return folder, config


def test_prior_bank_builds_resumes_and_rebuilds_for_other_options(tmp_path: Path) -> None:
    folder, config = _tiny_bank(tmp_path / "bank")
    assert sorted(path.name for path in folder.glob("chunk-*.npz")) == ["chunk-000000.npz"]
    bank = PriorBank.load(folder, config)
    assert len(bank) == 3 and bank.prior.shape == (3, 3, 7, 7) and bank.observed.shape == (3, 24, 24)
    assert bank.target_prior.shape == (3, 16, 3) and np.all(np.diff(bank.target_prior, axis=-1) >= 0)
    chunk = folder / "chunk-000000.npz"
    stamp = chunk.stat().st_mtime_ns
    _tiny_bank(tmp_path / "bank")  # complete: nothing redrawn
    assert chunk.stat().st_mtime_ns == stamp
    build_prior_bank(
        folder,
        _synthetic_bank(),
        "other frames",
        config,
        GridSamplingOptions(patch_cells=24, target_points=16, block_pixels=(4, 8), halo_pixels=(4, 6)),
        count=2,
        seed=0,
        progress=False,
    )
    assert (
        json.loads((folder / "bank.json").read_text())["count"] == 2
        and len(PriorBank.load(folder, config)) == 2
    )
    (folder / "chunk-000000.npz").unlink()
    with pytest.raises(FileNotFoundError, match="1 chunks missing"):
        PriorBank.load(folder, config)
    assert CHUNK_TASKS > 2


def test_prior_bank_batches_turn_grids_and_positions_together(tmp_path: Path) -> None:
    """Whatever the turn and mirror, each target reads the same prior value as before."""
    folder, config = _tiny_bank(tmp_path / "bank", count=2)
    bank = PriorBank.load(folder, config)
    size = bank.observed.shape[-1]
    reference = upsample_prior(torch.as_tensor(bank.prior), (size, size), bank.stride)
    expected = read_at(reference, torch.as_tensor(bank.positions))  # [2, n, 3]
    seen = set()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        chosen = np.random.default_rng(seed).integers(len(bank), size=4)
        batch = bank.sample(config, 4, rng)
        got = read_at(batch.prior, batch.positions)
        torch.testing.assert_close(got, expected[chosen], rtol=1e-4, atol=1e-4)
        assert torch.equal(
            batch.observed.sum((1, 2, 3)),
            torch.as_tensor(bank.observed[chosen].sum((1, 2)), dtype=torch.float32),
        )
        seen.add(tuple(batch.prior[:, 0, 0, 0].tolist()))
    assert len(seen) > 1  # the grids were turned: their corner differs between draws


def test_fine_tuning_a_prior_model_from_a_model_without_one(tmp_path: Path) -> None:
    plain = ConvNP(ConvNPConfig(**TINY, value_centre=0.4, value_scale=0.8))
    path = tmp_path / "plain.safetensors"
    save_checkpoint(
        path,
        plain.state_dict(),
        architecture=ARCHITECTURE,
        config=plain.config.to_dict(),
    )
    config = ConvNPTrainingConfig(
        **{
            **CONFIG,
            "model": {**CONFIG["model"], "prior": "gp", "prior_gp": CHEAP_GP},
            "output_dir": tmp_path / "run",
            "initialise_from": path,
        }
    )
    model = initial_convnp(config, _synthetic_bank())
    assert (model.config.value_centre, model.config.value_scale) == (0.4, 0.8)
    # the normalisation comes from the checkpoint: the frames' bank is not needed
    torch.testing.assert_close(initial_convnp(config, None).state_dict(), model.state_dict())
    with pytest.raises(ValueError, match="needs the training frames' bank"):
        initial_convnp(ConvNPTrainingConfig(**{**config.model_dump(), "initialise_from": None}), None)
    stem = model.unet.stem.weight
    torch.testing.assert_close(stem[:, : plain.unet.stem.weight.shape[1]], plain.unet.stem.weight)
    assert torch.all(stem[:, plain.unet.stem.weight.shape[1] :] == 0)
    assert torch.all(model.decoder[-1].weight[:2] == 0)
    torch.testing.assert_close(model.decoder[-1].weight[2:], plain.decoder[-1].weight[2:])
    wider = ConvNPTrainingConfig(
        **{**config.model_dump(), "model": {**config.model.model_dump(), "channels": (8, 8)}}
    )
    with pytest.raises(CheckpointError, match="initialise_from: .* not in this model"):
        initial_convnp(wider, _synthetic_bank())
    with pytest.raises(CheckpointError, match="initialise_from"):
        initial_convnp(
            ConvNPTrainingConfig(**{**config.model_dump(), "initialise_from": tmp_path / "none"}),
            _synthetic_bank(),
        )


def test_random_new_weights_differ_by_seed_and_keep_the_checkpoint(tmp_path: Path) -> None:
    plain = ConvNP(ConvNPConfig(**TINY, value_centre=0.4, value_scale=0.8))
    path = tmp_path / "plain.safetensors"
    save_checkpoint(path, plain.state_dict(), architecture=ARCHITECTURE, config=plain.config.to_dict())
    zero = ConvNPTrainingConfig(
        **{
            **CONFIG,
            "model": {**CONFIG["model"], "prior": "gp", "prior_gp": CHEAP_GP},
            "output_dir": tmp_path / "run",
            "initialise_from": path,
        }
    )
    random = {**zero.model_dump(), "new_weights": "random"}
    first, again, second = (
        initial_convnp(ConvNPTrainingConfig(**{**random, "seed": seed}), None) for seed in (1, 1, 2)
    )
    torch.testing.assert_close(first.state_dict(), again.state_dict())  # drawn with the seed
    width = plain.unet.stem.weight.shape[1]
    fan_in = first.unet.stem.weight[0].numel()
    for model in (first, second):
        new_inputs = model.unet.stem.weight[:, width:]
        assert torch.all(new_inputs != 0) and new_inputs.abs().max() <= fan_in**-0.5
        corrections, hidden = model.decoder[-1].weight[:2], model.decoder[-1].in_features
        assert torch.all(corrections != 0) and corrections.abs().max() <= hidden**-0.5
        torch.testing.assert_close(model.unet.stem.weight[:, :width], plain.unet.stem.weight)
        torch.testing.assert_close(model.decoder[-1].weight[2:], plain.decoder[-1].weight[2:])
    assert not torch.equal(first.unet.stem.weight, second.unet.stem.weight)
    assert not torch.equal(first.decoder[-1].weight[:2], second.decoder[-1].weight[:2])
    assert zero.fingerprint() != ConvNPTrainingConfig(**random).fingerprint()  # no resuming across


def test_a_prior_model_trains_resumably_and_predicts(tmp_path: Path) -> None:
    config = ConvNPTrainingConfig(
        **{
            **CONFIG,
            "model": {**CONFIG["model"], "prior": "gp", "prior_gp": CHEAP_GP},
            "output_dir": tmp_path / "run",
            "steps": 4,
            "prior_tasks": 4,
        }
    )
    result = train_convnp(config, progress=False, stop_after=2)
    assert result.steps == 2 and len(list((tmp_path / "run" / "prior_bank").glob("chunk-*.npz"))) == 1
    result = train_convnp(config, progress=False)
    assert result.steps == 4 and [entry["step"] for entry in result.history] == [3, 4]
    model, _ = load_convnp(result.best_checkpoint)
    assert model.config.prior == "gp"
    prediction = ConvNPInterpolator(model=model).predict(_smooth_task())
    assert np.all(np.isfinite(prediction[conventions.PRECIPITATION_MEAN].values))
    # the prior options count in the fingerprint only for a prior model
    plain = ConvNPTrainingConfig(**CONFIG)
    assert plain.fingerprint() == ConvNPTrainingConfig(**{**CONFIG, "prior_tasks": 7}).fingerprint()
    assert (
        config.fingerprint()
        != ConvNPTrainingConfig(**{**config.model_dump(), "prior_tasks": 7}).fingerprint()
    )


def test_drawn_contexts_are_the_observed_cells_before_rounding() -> None:
    config = ConvNPConfig(**TINY)
    options = GridSamplingOptions(patch_cells=24, target_points=16, block_pixels=(4, 8), halo_pixels=(4, 6))
    observed, values, _, _, cells, rates = draw_task(
        _synthetic_bank(), config, options, np.random.default_rng(5), with_contexts=True
    )
    rounded = np.rint(cells).astype(int)
    assert len(cells) == len(rates) and observed[rounded[:, 0], rounded[:, 1]].all()
    assert int(observed.sum()) == len({tuple(cell) for cell in rounded})
    assert np.all(np.abs(cells - rounded) <= 0.5 + 1e-9)


def test_the_prior_gp_keeps_the_small_network_rule_off_unless_asked() -> None:
    """Priors of tasks with few contexts stay those the shipped GP-prior networks were trained on."""
    assert ConvNPConfig(prior="gp").prior_gp_config().small_network_contexts == 0
    asked = ConvNPConfig(prior="gp", prior_gp={**CHEAP_GP, "small_network_contexts": 300})
    assert asked.prior_gp_config().small_network_contexts == 300
