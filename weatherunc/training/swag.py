"""Collecting SWAG moments (:mod:`weatherunc.models.swag`) of a trained convolutional neural process.

From a checkpoint, the chosen parameters (the others frozen) are trained further on the run's
training tasks at a constant learning rate (Adam), and collected every ``every`` steps after a
``burn_in``. Batches come from ``default_rng([seed, SWAG_STREAM, step])``, a stream apart from the
run's own, so that the collection does not revisit the run's batches in the same order.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from weatherunc.checkpoints import sha256_of
from weatherunc.models.convnp.interpolator import load_convnp
from weatherunc.models.convnp.model import censored_loss
from weatherunc.models.swag import SwagCollector, save_swag, selected_parameters
from weatherunc.training.convnp_config import ConvNPTrainingConfig
from weatherunc.training.convnp_loop import training_frames
from weatherunc.training.grid_sampling import sample_grid_batch

#: Second seed word of the collection's batches.
SWAG_STREAM = 7_919
#: Parameters collected by default: the decoder and the U-Net's last (full-resolution) block.
DEFAULT_PREFIXES = ("decoder.", "unet.up.0.", "unet.lift.0.")


def collect_swag(
    config: ConvNPTrainingConfig,
    checkpoint: Path,
    output: Path,
    *,
    steps: int = 300,
    every: int = 10,
    burn_in: int = 50,
    rank: int = 20,
    learning_rate: float = 1e-4,
    prefixes: tuple[str, ...] = DEFAULT_PREFIXES,
    progress: bool = True,
) -> Path:
    """Collect SWAG moments of ``checkpoint``'s parameters named by ``prefixes`` on ``config``'s
    training frames and write them to ``output`` (see the module docstring); returns the sidecar."""
    if not 1 <= every <= steps or not 0 <= burn_in < steps:
        raise ValueError(
            f"need 1 <= every <= steps and 0 <= burn_in < steps, got {every}, {burn_in}, {steps}"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    model, _ = load_convnp(Path(checkpoint))
    if model.config.prior_channels:
        raise ValueError("collect_swag: models with a prior train on their prior bank; not supported here")
    names = selected_parameters(model, prefixes)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in names)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    collector = SwagCollector(model, names, rank)
    frames = training_frames(config, progress=progress)
    dry_bound = model.config.dry_bound
    model.train()
    for step in tqdm(range(steps), desc="SWAG", disable=not progress):
        generator = np.random.default_rng([config.seed, SWAG_STREAM, step])
        batch = sample_grid_batch(frames, model.config, config.sampling, config.batch_size, generator)
        losses = censored_loss(
            model(batch.observed, batch.values, batch.positions),
            batch.target_values,
            batch.target_bins,
            batch.weights,
            dry_bound=dry_bound,
            bin_weight=config.bin_weight,
        )
        optimiser.zero_grad(set_to_none=True)
        losses["loss"].backward()
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
