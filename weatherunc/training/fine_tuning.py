"""The steps of a short fine-tune of a trained neural process, for SWAG
(:mod:`weatherunc.training.swag`) and Bayes by Backprop
(:mod:`weatherunc.training.bayes_by_backprop`): the model of a checkpoint (the convolutional one,
or an ANP/CNP) and each step's training losses, on batches drawn apart from the run's own.

The batches of step ``step`` come from ``default_rng([seed, FINE_TUNE_STREAM, step])`` on the run's
training frames (the ConvNP's grid batches) or from the step batches of the seed ``seed +
FINE_TUNE_STREAM`` (the ANP's), so that a fine-tune does not revisit the run's batches in the same
order; an ANP's latent and dropout draws of step ``step`` come from a generator seeded by the same
words, so that a fine-tune is reproducible. The losses are the run's own: the ConvNP's
:func:`~weatherunc.training.convnp_loop.training_losses` (with its ``crps_weight``) and the ANP's
:func:`~weatherunc.models.neural_process.losses.neural_process_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.training.config import TrainingConfig
from weatherunc.training.convnp_config import ConvNPTrainingConfig

#: Second seed word of a fine-tune's batches.
FINE_TUNE_STREAM = 7_919
#: Parameters made random by default in a ConvNP: the decoder and the U-Net's last
#: (full-resolution) block.
CONVNP_PREFIXES = ("decoder.", "unet.up.0.", "unet.lift.0.")
#: Parameters made random by default in an ANP or CNP: its decoder.
NEURAL_PROCESS_PREFIXES = ("decoder.",)

#: The training losses (``"loss"``, ``"nll"``, ...) of step ``step`` computed with ``forward``: the
#: model itself, or a function of the model's inputs that runs it with other weights.
StepLosses = Callable[[Callable[..., Any], int], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class FineTuning:
    """A fine-tune's ``model`` (a ``torch.nn.Module``), its ``losses`` per step and the parameters
    made random by default (``prefixes``)."""

    model: torch.nn.Module
    losses: StepLosses
    prefixes: tuple[str, ...]


def _require_architecture(
    config: ConvNPTrainingConfig | TrainingConfig,
    checkpoint: Path,
    architecture: NeuralProcessConfig | ConvNPConfig,
    what: str,
) -> None:
    """``ValueError`` naming the fields in which ``checkpoint``'s ``architecture`` is not ``config``'s
    (:func:`~weatherunc.training.loop.architecture_differences`)."""
    from weatherunc.training.loop import architecture_differences

    differences = architecture_differences(config, architecture)
    if differences:
        raise ValueError(
            f"{what}: {checkpoint} is not a model of this training config: {'; '.join(differences)}"
        )


def _convolutional(config: ConvNPTrainingConfig, checkpoint: Path, progress: bool, what: str) -> FineTuning:
    from weatherunc.models.convnp.interpolator import load_convnp
    from weatherunc.training.convnp_loop import training_frames, training_losses
    from weatherunc.training.grid_sampling import sample_grid_batch

    model, _ = load_convnp(checkpoint)
    _require_architecture(config, checkpoint, model.config, what)
    if model.config.prior_channels:
        raise ValueError(f"{what}: models with a prior train on their prior bank; not supported here")
    frames = training_frames(config, progress=progress)

    def losses(forward: Callable[..., Any], step: int) -> dict[str, torch.Tensor]:
        generator = np.random.default_rng([config.seed, FINE_TUNE_STREAM, step])
        batch = sample_grid_batch(frames, model.config, config.sampling, config.batch_size, generator)
        return training_losses(
            forward(batch.observed, batch.values, batch.positions), batch, config, model.config
        )

    return FineTuning(model, losses, CONVNP_PREFIXES)


def _neural_process(config: TrainingConfig, checkpoint: Path, progress: bool, what: str) -> FineTuning:
    from weatherunc.models.neural_process.interpolator import load_neural_process
    from weatherunc.models.neural_process.losses import neural_process_loss
    from weatherunc.models.neural_process.randomness import drawing
    from weatherunc.training.sampling import FrameBank, StepBatches

    model, _ = load_neural_process(checkpoint)
    _require_architecture(config, checkpoint, model.config, what)
    bank = FrameBank.load(config.train, progress=progress)
    batches = StepBatches(
        bank, model.config, config.sampling, config.batch_size, config.seed + FINE_TUNE_STREAM
    )

    def losses(forward: Callable[..., Any], step: int) -> dict[str, torch.Tensor]:
        batch = batches[step]
        seed = int(np.random.default_rng([config.seed, FINE_TUNE_STREAM, step]).integers(2**63))
        with drawing(torch.Generator().manual_seed(seed)):  # the latent and dropout draws
            output = forward(
                batch.context_inputs, batch.context_values, batch.target_inputs, batch.target_values
            )
        return neural_process_loss(
            output,
            batch.target_values[..., 0].float(),
            batch.target_bins,
            bin_weight=config.bin_weight,
            attention_kl_weight=config.attention_kl_weight,
        )

    return FineTuning(model, losses, NEURAL_PROCESS_PREFIXES)


def fine_tuning(
    config: ConvNPTrainingConfig | TrainingConfig, checkpoint: Path, *, progress: bool = True, what: str
) -> FineTuning:
    """The fine-tune of ``checkpoint`` on ``config``'s training frames (module docstring):
    ``config`` is the training config of the checkpoint's kind of model (a ConvNP's or an
    ANP's/CNP's); ``what`` names the caller in errors. ``ValueError`` for a checkpoint whose
    architecture is not the config's (:func:`~weatherunc.training.loop.architecture_differences`).
    Sets the ConvNP config's ``threads``."""
    if isinstance(config, ConvNPTrainingConfig):
        if config.threads:
            torch.set_num_threads(config.threads)
        return _convolutional(config, Path(checkpoint), progress, what)
    return _neural_process(config, Path(checkpoint), progress, what)
