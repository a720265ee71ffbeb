"""The GPU path for real: these run only where CUDA is present (skipped on CPU-only machines and CI).

Training in bfloat16 and float16 (with the gradient scaler) on CUDA, training with batches drawn
ahead by worker processes into pinned memory, a neural process's prediction on CUDA against the
same prediction on the CPU, and the head refit's decoder features on CUDA against the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_training import CONFIG as TINY_TRAINING
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import NeuralProcessInterpolator
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.tasks import Task
from weatherunc.training.config import TrainingConfig
from weatherunc.training.loop import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CONFIG = {
    **TINY_TRAINING,
    "model": {**TINY_TRAINING["model"], "task_normalisation": True},
    "steps": 6,
    "validate_every": 3,
    "checkpoint_every": 3,
}


@pytest.mark.parametrize("precision", ["auto", "float16"])
def test_training_on_cuda_with_mixed_precision(tmp_path: Path, precision: str) -> None:
    result = train(
        TrainingConfig(**CONFIG, precision=precision, output_dir=tmp_path / precision), progress=False
    )
    assert result.steps == 6 and result.best_checkpoint.exists()
    assert all(np.isfinite(entry["crps"]) and np.isfinite(entry["train_loss"]) for entry in result.history)


def test_training_on_cuda_with_sampling_workers_and_pinned_batches(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    plain = train(TrainingConfig(**CONFIG, output_dir=tmp_path / "plain"), progress=False)
    ahead = train(TrainingConfig(**CONFIG, sampling_workers=2, output_dir=tmp_path / "ahead"), progress=False)
    assert ahead.steps == plain.steps == 6
    first, second = (
        load_file(str(tmp_path / "plain" / "last-00000006.safetensors")),
        load_file(str(tmp_path / "ahead" / "last-00000006.safetensors")),
    )
    for name in first:  # the same batches; CUDA kernels are not bitwise reproducible, so compared closely
        torch.testing.assert_close(first[name], second[name], rtol=1e-3, atol=1e-4, msg=name)


def test_prediction_on_cuda_matches_the_cpu() -> None:
    torch.manual_seed(0)
    # no latent path: CUDA and CPU random streams differ, so latent draws would not match
    model = NeuralProcess(
        NeuralProcessConfig(
            hidden=16, heads=2, self_attention_layers=1, latent=False, task_normalisation=True
        )
    )
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 50, size=(300, 2))
    rate = np.maximum(0.0, 3 * np.sin(points[:, 0] / 7) + 2 * np.cos(points[:, 1] / 11))
    task = Task(points[:200], rate[:200], points[200:], rate[200:])
    on_cpu = NeuralProcessInterpolator(model=model, samples=4, device="cpu").predict_moments(task)
    on_cuda = NeuralProcessInterpolator(model=model, samples=4, device="cuda").predict_moments(task)
    assert next(model.parameters()).device.type == "cuda"
    for name in ("transformed_mean", "noise_variance", "bin_probability"):
        np.testing.assert_allclose(on_cuda[name], on_cpu[name], rtol=1e-3, atol=1e-4, err_msg=name)


def test_decoder_features_on_cuda_match_the_cpu_and_come_back_on_the_cpu() -> None:
    from weatherunc.training.head_refit import HeadRefitOptions, decoder_features
    from weatherunc.training.sampling import FrameBank, StepBatches

    torch.manual_seed(0)
    # no latent path: CUDA and CPU random streams differ, so latent draws would not match
    model = NeuralProcess(
        NeuralProcessConfig(
            hidden=16, heads=2, self_attention_layers=1, latent=False, task_normalisation=True
        )
    )
    config = TrainingConfig(**CONFIG, output_dir=Path("unused"))
    bank = FrameBank.load(list(config.train), progress=False)
    options = HeadRefitOptions(batches=3, targets_per_task=8, latent_samples=1, gaussian=True)
    batches = StepBatches(bank, model.config, config.sampling, config.batch_size, options.seed)
    on_cpu = decoder_features(model, (batches[step] for step in range(3)), options)
    on_cuda = decoder_features(model.to("cuda"), (batches[step] for step in range(3)), options)
    assert on_cuda.features.device.type == "cpu" and torch.equal(on_cuda.bins, on_cpu.bins)
    torch.testing.assert_close(on_cuda.features.float(), on_cpu.features.float(), rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(on_cuda.scale, on_cpu.scale)
