"""Collecting SWAG moments (:mod:`weatherunc.models.swag`) of a trained neural process: the
convolutional one or the ANP/CNP.

From a checkpoint, the chosen parameters (the others frozen) are trained further on the run's
training frames at a constant learning rate (Adam), with the run's own loss, and collected every
``every`` steps after a ``burn_in``. Batches come from the stream ``[seed, SWAG_STREAM, step]``
(the ConvNP) or from the seed ``seed + SWAG_STREAM`` (the ANP's step batches), apart from the
run's own, so that the collection does not revisit the run's batches in the same order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from weatherunc.checkpoints import sha256_of
from weatherunc.models.swag import SwagCollector, save_swag, selected_parameters
from weatherunc.training.config import TrainingConfig
from weatherunc.training.convnp_config import ConvNPTrainingConfig

#: Second seed word of the collection's batches.
SWAG_STREAM = 7_919
#: Parameters collected by default from a ConvNP: the decoder and the U-Net's last (full-resolution)
#: block.
DEFAULT_PREFIXES = ("decoder.", "unet.up.0.", "unet.lift.0.")
#: Parameters collected by default from an ANP or CNP: its decoder.
NEURAL_PROCESS_PREFIXES = ("decoder.",)

#: One collection step: the loss of step ``step`` for ``model`` (in training mode).
StepLoss = Callable[[torch.nn.Module, int], torch.Tensor]


def _convolutional_steps(
    config: ConvNPTrainingConfig, checkpoint: Path, progress: bool
) -> tuple[torch.nn.Module, StepLoss]:
    """The ConvNP of ``checkpoint`` and its censored loss on grid batches of the run's frames."""
    from weatherunc.models.convnp.interpolator import load_convnp
    from weatherunc.models.convnp.model import censored_loss
    from weatherunc.training.convnp_loop import training_frames
    from weatherunc.training.grid_sampling import sample_grid_batch

    model, _ = load_convnp(checkpoint)
    if model.config.prior_channels:
        raise ValueError("collect_swag: models with a prior train on their prior bank; not supported here")
    frames = training_frames(config, progress=progress)

    def step_loss(network: torch.nn.Module, step: int) -> torch.Tensor:
        generator = np.random.default_rng([config.seed, SWAG_STREAM, step])
        batch = sample_grid_batch(frames, network.config, config.sampling, config.batch_size, generator)
        return censored_loss(
            network(batch.observed, batch.values, batch.positions),
            batch.target_values,
            batch.target_bins,
            batch.weights,
            dry_bound=network.config.dry_bound,
            bin_weight=config.bin_weight,
        )["loss"]

    return model, step_loss


def _neural_process_steps(
    config: TrainingConfig, checkpoint: Path, progress: bool
) -> tuple[torch.nn.Module, StepLoss]:
    """The ANP (or CNP) of ``checkpoint`` and its training loss on the run's step batches."""
    from weatherunc.models.neural_process.interpolator import load_neural_process
    from weatherunc.models.neural_process.losses import neural_process_loss
    from weatherunc.training.sampling import FrameBank, StepBatches

    model, _ = load_neural_process(checkpoint)
    bank = FrameBank.load(config.train, progress=progress)
    batches = StepBatches(bank, model.config, config.sampling, config.batch_size, config.seed + SWAG_STREAM)

    def step_loss(network: torch.nn.Module, step: int) -> torch.Tensor:
        batch = batches[step]
        output = network(batch.context_inputs, batch.context_values, batch.target_inputs, batch.target_values)
        return neural_process_loss(
            output,
            batch.target_values[..., 0].float(),
            batch.target_bins,
            bin_weight=config.bin_weight,
            attention_kl_weight=config.attention_kl_weight,
        )["loss"]

    return model, step_loss


def collect_swag(
    config: ConvNPTrainingConfig | TrainingConfig,
    checkpoint: Path,
    output: Path,
    *,
    steps: int = 300,
    every: int = 10,
    burn_in: int = 50,
    rank: int = 20,
    learning_rate: float = 1e-4,
    prefixes: tuple[str, ...] | None = None,
    progress: bool = True,
) -> Path:
    """Collect SWAG moments of ``checkpoint``'s parameters named by ``prefixes`` (by default
    :data:`DEFAULT_PREFIXES` for a ConvNP, :data:`NEURAL_PROCESS_PREFIXES` for an ANP or CNP) on
    ``config``'s training frames and write them to ``output`` (see the module docstring); returns
    the sidecar. ``config`` is the training config of the checkpoint's kind of model."""
    if not 1 <= every <= steps or not 0 <= burn_in < steps:
        raise ValueError(
            f"need 1 <= every <= steps and 0 <= burn_in < steps, got {every}, {burn_in}, {steps}"
        )
    convolutional = isinstance(config, ConvNPTrainingConfig)
    if convolutional and config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    steps_of = _convolutional_steps if convolutional else _neural_process_steps
    model, step_loss = steps_of(config, Path(checkpoint), progress)
    if prefixes is None:
        prefixes = DEFAULT_PREFIXES if convolutional else NEURAL_PROCESS_PREFIXES
    names = selected_parameters(model, prefixes)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in names)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    collector = SwagCollector(model, names, rank)
    model.train()
    for step in tqdm(range(steps), desc="SWAG", disable=not progress):
        loss = step_loss(model, step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip)
        optimiser.step()
        if step + 1 > burn_in and (step + 1 - burn_in) % every == 0:
            collector.collect(model)
    moments = collector.moments()
    return save_swag(
        Path(output),
        moments,
        {
            "checkpoint_sha256": sha256_of(Path(checkpoint)),
            "training_config": config.model_dump(mode="json"),
            "steps": steps,
            "every": every,
            "burn_in": burn_in,
            "learning_rate": learning_rate,
            "prefixes": list(prefixes),
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
