"""Stopping a training run whose loss, outputs or weights are no longer finite."""

from __future__ import annotations

from typing import Protocol

import torch


class LoopSettings(Protocol):
    """What a divergence message names of a training config."""

    learning_rate: float
    gradient_clip: float
    output_dir: object


class TrainingDivergedError(ValueError):
    """Training produced a non-finite loss or non-finite weights; the run folder keeps the
    checkpoints written before (none is written from the diverged weights)."""


def diverged(config: LoopSettings, step: int, what: str) -> TrainingDivergedError:
    """The error for a run that diverged at ``step`` because of ``what``, naming the settings to lower."""
    return TrainingDivergedError(
        f"training diverged at step {step}: {what}; lower learning_rate ({config.learning_rate}) or "
        "gradient_clip "
        f"({config.gradient_clip}); {config.output_dir} keeps the checkpoints written before"
    )


def require_finite_weights(model: torch.nn.Module, config: LoopSettings, step: int) -> None:
    """Raise :class:`TrainingDivergedError` if any weight of ``model`` is NaN or infinite (one
    device synchronisation when all are finite)."""
    if bool(torch.stack([torch.isfinite(parameter).all() for parameter in model.parameters()]).all()):
        return
    bad = [name for name, parameter in model.named_parameters() if not bool(torch.isfinite(parameter).all())]
    raise diverged(
        config, step, f"non-finite weights in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}"
    )
