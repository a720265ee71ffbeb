"""Collecting SWAG moments (:mod:`weatherunc.models.swag`) of a trained neural process: the
convolutional one or the ANP/CNP.

From a checkpoint, the chosen parameters (the others frozen) are trained further on the run's
training frames at a constant learning rate (Adam), with the run's own loss, and collected every
``every`` steps after a ``burn_in``; the batches are drawn apart from the run's own
(:mod:`weatherunc.training.fine_tuning`).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from weatherunc.checkpoints import sha256_of
from weatherunc.models.swag import SwagCollector, save_swag, selected_parameters
from weatherunc.training.config import TrainingConfig
from weatherunc.training.convnp_config import ConvNPTrainingConfig
from weatherunc.training.fine_tuning import fine_tuning


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
    """Collect SWAG moments of ``checkpoint``'s parameters named by ``prefixes`` (by default the
    ConvNP's decoder and last U-Net block, or the ANP's or CNP's decoder:
    :class:`~weatherunc.training.fine_tuning.FineTuning`) on ``config``'s training frames and write
    them to ``output`` (see the module docstring); returns the sidecar. ``config`` is the training
    config of the checkpoint's kind of model."""
    if not 1 <= every <= steps or not 0 <= burn_in < steps:
        raise ValueError(
            f"SWAG needs 1 <= every <= steps and 0 <= burn_in < steps, got --every {every}, "
            f"--burn-in {burn_in}, --steps {steps}"
        )
    started = time.perf_counter()
    tune = fine_tuning(config, Path(checkpoint), progress=progress, what="collect_swag")
    model = tune.model
    prefixes = tune.prefixes if prefixes is None else prefixes
    names = selected_parameters(model, prefixes)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in names)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    collector = SwagCollector(model, names, rank)
    model.train()
    for step in tqdm(range(steps), desc="SWAG", disable=not progress):
        loss = tune.losses(model, step)["loss"]
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
