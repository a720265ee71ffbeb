"""Fitting a Bayes by Backprop posterior (:mod:`weatherunc.models.bayes_by_backprop`) to a
trained neural process, the convolutional one or the ANP/CNP (Blundell et al. 2015, "Weight
Uncertainty in Neural Networks", ICML).

From a checkpoint, the variational mean of the chosen parameters starts at the checkpoint's
weights and every std at ``initial_std``; the other parameters are frozen. Each step draws one
weight sample ``mean + softplus(rho) * z`` (the reparameterisation trick, one sample per batch),
runs the model with it (``torch.func.functional_call``) and minimises, by Adam (means at
``learning_rate``, ``rho`` at ``std_learning_rate``),

    training loss (a mean over the batch's targets)
    + kl_weight * KL(q || p) / N,   N = steps * batch_size * target_points,

the run's own loss (:mod:`weatherunc.training.fine_tuning`: the ConvNP's censored likelihood,
plus ``crps_weight`` times its CRPS as in training; the ANP's). ``N`` is the number of targets the
fine-tune draws: with ``M = steps`` batches, each batch carries ``KL / M`` as in the paper's
minibatch weighting (its equation 8 with ``pi_i = 1 / M``), divided by the batch's targets because
the likelihood is a mean. The batches are SWAG's, drawn apart from the run's own
(:mod:`weatherunc.training.fine_tuning`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from weatherunc.checkpoints import sha256_of
from weatherunc.models.bayes_by_backprop import gaussian_kl, initial_posterior, sample_weights, save_posterior
from weatherunc.models.swag import selected_parameters
from weatherunc.training.config import TrainingConfig
from weatherunc.training.convnp_config import ConvNPTrainingConfig
from weatherunc.training.fine_tuning import fine_tuning

#: Steps between two rows of the history kept in the sidecar.
HISTORY_EVERY = 10


@dataclass(frozen=True)
class BayesByBackpropOptions:
    """The fine-tune's settings: ``steps``; Adam's ``learning_rate`` for the means and
    ``std_learning_rate`` for ``rho``; the starting std ``initial_std``; the prior's
    ``prior_std``; ``kl_weight`` (1 is the evidence lower bound); the random parameters'
    ``prefixes`` (None: the model's default, :class:`~weatherunc.training.fine_tuning.FineTuning`);
    ``seed`` of the weight noise."""

    steps: int = 300
    learning_rate: float = 1e-4
    std_learning_rate: float = 1e-2
    initial_std: float = 1e-3
    prior_std: float = 0.1
    kl_weight: float = 1.0
    prefixes: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        positive = {
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "std_learning_rate": self.std_learning_rate,
            "initial_std": self.initial_std,
            "prior_std": self.prior_std,
        }
        bad = [f"{name}={value}" for name, value in positive.items() if not value > 0]
        if bad or not self.kl_weight >= 0:
            raise ValueError(
                f"Bayes by Backprop needs positive steps, rates and stds and kl_weight >= 0, got "
                f"{', '.join(bad) or f'kl_weight={self.kl_weight}'}"
            )


def kl_divisor(config: ConvNPTrainingConfig | TrainingConfig, options: BayesByBackpropOptions) -> int:
    """``N``, the training targets the KL is spread over (module docstring)."""
    return options.steps * config.batch_size * config.sampling.target_points


def fit_bayes_by_backprop(
    config: ConvNPTrainingConfig | TrainingConfig,
    checkpoint: Path,
    output: Path,
    options: BayesByBackpropOptions | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Fit ``q`` over ``checkpoint``'s parameters named by ``options.prefixes`` on ``config``'s
    training frames (module docstring) and write it to ``output``; returns the sidecar. ``config``
    is the training config of the checkpoint's kind of model (a ConvNP's or an ANP's/CNP's)."""
    options = options or BayesByBackpropOptions()
    started = time.perf_counter()
    tune = fine_tuning(config, Path(checkpoint), progress=progress, what="Bayes by Backprop")
    model = tune.model
    prefixes = tune.prefixes if options.prefixes is None else options.prefixes
    names = selected_parameters(model, prefixes)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    posterior = initial_posterior(model, names, options.initial_std, options.prior_std)
    posterior.mean.requires_grad_(True)
    posterior.rho.requires_grad_(True)
    optimiser = torch.optim.Adam(
        [
            {"params": [posterior.mean], "lr": options.learning_rate},
            {"params": [posterior.rho], "lr": options.std_learning_rate},
        ]
    )
    divisor = kl_divisor(config, options)
    history: list[dict[str, float]] = []
    model.train()
    for step in tqdm(range(options.steps), desc="Bayes by Backprop", disable=not progress):
        weights = sample_weights(posterior, torch.Generator().manual_seed(options.seed * 1_000_003 + step))
        losses = tune.losses(
            lambda *inputs, weights=weights: torch.func.functional_call(model, weights, inputs), step
        )
        kl = gaussian_kl(posterior.mean, posterior.std, posterior.prior_std)
        loss = losses["loss"] + options.kl_weight * kl / divisor
        if not math.isfinite(loss.item()):
            raise ValueError(f"Bayes by Backprop: the loss is {loss.item()} at step {step + 1}")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([posterior.mean, posterior.rho], config.gradient_clip)
        optimiser.step()
        if (step + 1) % HISTORY_EVERY == 0 or step + 1 == options.steps:
            history.append(
                {
                    "step": step + 1,
                    "loss": round(loss.item(), 5),
                    "nll": round(losses["nll"].item(), 5),
                    "kl": round(kl.item(), 3),
                    "mean_std": float(posterior.std.detach().mean()),
                }
            )
    posterior.mean.requires_grad_(False)
    posterior.rho.requires_grad_(False)
    std = posterior.std
    return save_posterior(
        Path(output),
        posterior,
        {
            "checkpoint_sha256": sha256_of(Path(checkpoint)),
            "training_config": config.model_dump(mode="json"),
            "options": {**asdict(options), "prefixes": list(prefixes)},
            "kl_divisor": divisor,
            "parameters": int(posterior.mean.numel()),
            "mean_std": float(std.mean()),
            "mean_std_over_prior_std": float(std.mean()) / posterior.prior_std,
            "history": history,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
