"""Refitting a neural process's bin head in prediction mode (no shared data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy import stats
from typer.testing import CliRunner

from tests.test_training import CONFIG as TINY_TRAINING
from weatherunc.checkpoints import read_sidecar, sha256_of
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import load_neural_process
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.training.config import TrainingConfig
from weatherunc.training.head_refit import (
    GAUSSIAN_ROWS,
    DecoderFeatures,
    HeadRefitOptions,
    decoder_features,
    fit_bin_rows,
    gaussian_nll,
    mixture_nll,
    output_layer,
    refit_head,
)
from weatherunc.training.loop import train
from weatherunc.training.sampling import FrameBank, StepBatches

CONFIG = {
    **TINY_TRAINING,
    "model": {**TINY_TRAINING["model"], "task_normalisation": True},
    "steps": 4,
    "batch_size": 4,
    "checkpoint_every": 4,
}
OPTIONS = HeadRefitOptions(batches=6, targets_per_task=16, latent_samples=3, seed=5, max_iterations=50)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingConfig, Path, FrameBank]:
    root = tmp_path_factory.mktemp("head_refit")
    config = TrainingConfig(**{**CONFIG, "output_dir": root / "run"})
    result = train(config, progress=False)
    return config, result.best_checkpoint, FrameBank.load(list(config.train), progress=False)


def _batches(config: TrainingConfig, model: NeuralProcess, bank: FrameBank):
    batches = StepBatches(bank, model.config, config.sampling, config.batch_size, OPTIONS.seed)
    return (batches[step] for step in range(OPTIONS.batches))


def test_mixture_nll_is_the_negative_log_of_the_mean_softmax() -> None:
    rng = np.random.default_rng(0)
    features, weight, bias = rng.normal(size=(2, 5, 3)), rng.normal(size=(4, 3)), rng.normal(size=4)
    bins = np.array([0, 3, 1, 1, 2])
    logits = features @ weight.T + bias
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)  # [2, 5, 4]
    expected = -np.mean(np.log(softmax.mean(0)[np.arange(5), bins]))
    found = mixture_nll(
        torch.tensor(weight), torch.tensor(bias), torch.tensor(features), torch.tensor(bins), chunk=2
    )
    assert float(found) == pytest.approx(expected, rel=1e-12)


def test_fit_bin_rows_recovers_a_planted_head() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(1, 40_000, 3))
    weight, bias = (
        np.array([[1.5, 0.0, -1.0], [0.0, 1.0, 0.5], [-1.0, -0.5, 0.0]]),
        np.array([0.3, 0.0, -0.3]),
    )
    logits = features[0] @ weight.T + bias
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    bins = (probabilities.cumsum(-1) < rng.uniform(size=(40_000, 1))).sum(-1)
    start_weight, start_bias = torch.zeros(3, 3), torch.zeros(3)
    fitted_weight, fitted_bias = fit_bin_rows(
        torch.tensor(features, dtype=torch.float16), torch.tensor(bins), start_weight, start_bias
    )
    # softmax logits are identified up to a constant per column: compare differences to the first row
    np.testing.assert_allclose((fitted_weight - fitted_weight[0]).numpy(), weight - weight[0], atol=0.06)
    np.testing.assert_allclose((fitted_bias - fitted_bias[0]).numpy(), bias - bias[0], atol=0.06)
    with pytest.raises(ValueError, match="observed bins must lie in 0..2"):
        fit_bin_rows(
            torch.tensor(features, dtype=torch.float16), torch.tensor(bins + 1), start_weight, start_bias
        )


def test_gaussian_nll_is_the_density_of_the_mixture_moments() -> None:
    rng = np.random.default_rng(4)
    features = torch.tensor(rng.normal(size=(3, 6, 2)))
    weight, bias = torch.tensor(rng.normal(size=(2, 2))), torch.tensor([0.1, -0.2])
    centre, scale, values = (
        torch.tensor(rng.normal(size=6)),
        torch.tensor(rng.uniform(0.5, 2, size=6)),
        torch.tensor(rng.normal(size=6)),
    )
    data = DecoderFeatures(
        features=features, bins=torch.zeros(6, dtype=torch.long), values=values, centre=centre, scale=scale
    )
    outputs = features.numpy() @ weight.numpy().T + bias.numpy()  # [3, 6, 2]
    means = outputs[..., 0] * scale.numpy() + centre.numpy()
    stds = (0.05 + 0.95 * np.log1p(np.exp(outputs[..., 1]))) * scale.numpy()
    variance = means.var(0) + (stds**2).mean(0)
    expected = -np.mean(stats.norm.logpdf(values.numpy(), means.mean(0), np.sqrt(variance)))
    assert float(gaussian_nll(weight, bias, data, 0.05, chunk=4)) == pytest.approx(expected, rel=1e-12)


def test_gaussian_refit_changes_only_the_output_layer_and_lowers_its_training_nll(trained) -> None:
    config, checkpoint, bank = trained
    model, _ = load_neural_process(checkpoint)
    options = HeadRefitOptions(**{**OPTIONS.__dict__, "gaussian": True})
    refitted, report = refit_head(model, _batches(config, model, bank), options)
    assert report["training_gaussian_nll_after"] < report["training_gaussian_nll_before"]
    assert report["training_mixture_nll_after"] < report["training_mixture_nll_before"]
    changed = {
        name
        for name, tensor in refitted.state_dict().items()
        if not torch.equal(tensor, model.state_dict()[name])
    }
    assert changed == {"decoder.network.9.weight", "decoder.network.9.bias"}
    assert not torch.equal(
        output_layer(refitted).weight[:GAUSSIAN_ROWS], output_layer(model).weight[:GAUSSIAN_ROWS]
    )


def test_refit_changes_only_the_bin_rows_and_lowers_the_training_nll(trained) -> None:
    config, checkpoint, bank = trained
    model, _ = load_neural_process(checkpoint)
    original = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    refitted, report = refit_head(model, _batches(config, model, bank), OPTIONS)
    assert report["targets"] == OPTIONS.batches * config.batch_size * OPTIONS.targets_per_task
    assert report["training_mixture_nll_after"] < report["training_mixture_nll_before"]
    for name, tensor in model.state_dict().items():  # the input model is left as it was
        assert torch.equal(tensor, original[name]), name
    changed = {
        name for name, tensor in refitted.state_dict().items() if not torch.equal(tensor, original[name])
    }
    assert (
        changed == {"decoder.network.9.weight", "decoder.network.9.bias"}
        and output_layer(refitted) is refitted.decoder.network[9]
    )
    assert torch.equal(
        output_layer(refitted).weight[:GAUSSIAN_ROWS], original["decoder.network.9.weight"][:GAUSSIAN_ROWS]
    )
    batch = next(_batches(config, model, bank))
    with torch.inference_mode():
        torch.manual_seed(0)
        before = model(batch.context_inputs, batch.context_values, batch.target_inputs, samples=2)
        torch.manual_seed(0)
        after = refitted(batch.context_inputs, batch.context_values, batch.target_inputs, samples=2)
    assert torch.equal(before.mean, after.mean) and torch.equal(before.std, after.std)  # the Gaussian is kept
    assert not torch.equal(before.logits, after.logits)
    again, _ = refit_head(model, _batches(config, model, bank), OPTIONS)
    assert all(
        torch.equal(tensor, again.state_dict()[name]) for name, tensor in refitted.state_dict().items()
    )


def test_decoder_features_are_prediction_mode_features_and_need_a_head(trained) -> None:
    config, checkpoint, bank = trained
    model, _ = load_neural_process(checkpoint)
    data = decoder_features(model.eval(), _batches(config, model, bank), OPTIONS)
    n = OPTIONS.batches * config.batch_size * OPTIONS.targets_per_task
    assert data.features.shape == (OPTIONS.latent_samples, n, config.model.hidden)
    assert (
        data.bins.shape == data.values.shape == data.centre.shape == data.scale.shape == (n,)
        and int(data.bins.max()) < model.config.bins
    )
    batch = next(_batches(config, model, bank))
    centre, scale = model.task_statistics(
        batch.context_values
    )  # the first task's normalisation, repeated per kept target
    assert torch.all(data.centre[: OPTIONS.targets_per_task] == centre[0, 0, 0]) and torch.all(
        data.scale[: OPTIONS.targets_per_task] == scale[0, 0, 0]
    )
    assert set(data.values[: OPTIONS.targets_per_task].tolist()) <= set(batch.target_values[0, :, 0].tolist())
    model.train()  # dropout 0.1 in this config: the features must still be the prediction-mode ones
    again = decoder_features(model, _batches(config, model, bank), OPTIONS)
    assert model.training  # mode restored
    assert torch.equal(data.features, again.features)
    headless = NeuralProcess(NeuralProcessConfig(hidden=16, latent_dimension=4, heads=2, bin_edges=()))
    with pytest.raises(ValueError, match="no categorical head .* nothing to refit"):
        decoder_features(headless, _batches(config, model, bank), OPTIONS)
    plain = decoder_features(
        headless, _batches(config, model, bank), HeadRefitOptions(**{**OPTIONS.__dict__, "gaussian": True})
    )
    assert torch.all(plain.centre == 0) and torch.all(plain.scale == 1)  # no task normalisation
    with pytest.raises(ValueError, match="head refit option batches must be >= 1"):
        HeadRefitOptions(batches=0)


def test_cli_refit_head_writes_a_checked_checkpoint_and_refuses_bad_calls(trained, tmp_path: Path) -> None:
    from weatherunc.cli import app

    config, checkpoint, _ = trained
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**config.model_dump(mode="json"), "output_dir": str(tmp_path / "run")}))
    output = tmp_path / "refitted.safetensors"
    result = CliRunner().invoke(
        app, ["refit-head", str(path), str(checkpoint), str(output), "--batches", "4"]
    )
    assert result.exit_code == 0, result.output
    model, sidecar = load_neural_process(output)  # sha256 and layout checked
    report = sidecar["metadata"]["head_refit"]
    assert report["from_sha256"] == sha256_of(checkpoint) == read_sidecar(checkpoint)["sha256"]
    assert report["options"]["batches"] == 4 and not report["options"]["gaussian"]
    assert set(report["validation_after"]) == {"targets", "nll", "ece", "crps", "nlpd", "rmse", "coverage_90"}
    assert report["validation_after"]["crps"] == report["validation_before"]["crps"]  # the Gaussian is kept
    assert report["validation_before"]["targets"] == report["validation_after"]["targets"] > 0
    assert sidecar["metadata"]["fingerprint"] == read_sidecar(checkpoint)["metadata"]["fingerprint"]
    gaussian = CliRunner().invoke(
        app,
        [
            "refit-head",
            str(path),
            str(checkpoint),
            str(tmp_path / "gaussian.safetensors"),
            "--batches",
            "2",
            "--gaussian",
        ],
    )
    assert gaussian.exit_code == 0, gaussian.output
    report = read_sidecar(tmp_path / "gaussian.safetensors")["metadata"]["head_refit"]
    assert (
        report["options"]["gaussian"]
        and report["training_gaussian_nll_after"] < report["training_gaussian_nll_before"]
    )
    same = CliRunner().invoke(app, ["refit-head", str(path), str(checkpoint), str(checkpoint)])
    assert same.exit_code == 2 and "never overwrites the weights it starts from" in same.output
    other = tmp_path / "other.yaml"
    other.write_text(
        yaml.safe_dump(
            {
                **config.model_dump(mode="json"),
                "model": {**CONFIG["model"], "hidden": 8},
                "output_dir": str(tmp_path / "run"),
            }
        )
    )
    refused = CliRunner().invoke(
        app, ["refit-head", str(other), str(checkpoint), str(tmp_path / "x.safetensors")]
    )
    assert (
        refused.exit_code == 2
        and "was not trained with this training config: hidden 16 vs 8" in refused.output
    )
    assert not (tmp_path / "x.safetensors").exists()
