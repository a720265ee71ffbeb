"""What the head refit is fitted to: decoder features of training tasks in prediction mode.

The decoder's last linear layer maps features ``h`` to ``[mean, std, bin logits...]``;
:func:`decoder_features` records ``h`` for ``latent_samples`` prior latent draws with dropout off
(as :class:`~weatherunc.models.neural_process.interpolator.NeuralProcessInterpolator` predicts), with
the observed bins, values and task normalisation of the kept targets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.training.sampling import Batch

#: Rows of the decoder's output layer before the bin logits: the Gaussian mean and std.
GAUSSIAN_ROWS = 2


@dataclass(frozen=True)
class HeadRefitOptions:
    """How the head is refitted: training batches drawn (their stream's ``seed``), targets kept
    per task, prior latent draws per task (the fitted mixture has this many components; the
    interpolator averages 16), L-BFGS iterations, and whether the Gaussian rows are refitted too."""

    batches: int = 300
    targets_per_task: int = 64
    latent_samples: int = 4
    seed: int = 1
    max_iterations: int = 200
    gaussian: bool = False

    def __post_init__(self) -> None:
        for name in ("batches", "targets_per_task", "latent_samples", "max_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"head refit option {name} must be >= 1, got {getattr(self, name)}")


#: The options :func:`~weatherunc.training.head_refit.fitting.refit_head` uses unless given others.
DEFAULT_OPTIONS = HeadRefitOptions()


def output_layer(model: NeuralProcess) -> torch.nn.Linear:
    """The decoder's last linear layer: rows ``[mean, std, bin logits...]``."""
    return model.decoder.network[-1]


@dataclass(frozen=True)
class DecoderFeatures:
    """What the refit is fitted to, per kept target (``n`` of them).

    features ``[latent_samples, n, hidden]`` (float16, to bound memory), bins ``[n]`` (long,
    observed bin), values ``[n]`` (observed standardised transformed rate), centre and scale
    ``[n]`` (the task's normalisation, 0 and 1 without ``task_normalisation``).
    """

    features: torch.Tensor
    bins: torch.Tensor
    values: torch.Tensor
    centre: torch.Tensor
    scale: torch.Tensor


def decoder_features(
    model: NeuralProcess, batches: Iterable[Batch], options: HeadRefitOptions, *, progress: bool = False
) -> DecoderFeatures:
    """Decoder features in prediction mode (prior latents, dropout off) and what was observed.

    ``n = batches x batch x targets_per_task``: the targets kept per task are drawn with
    ``default_rng([seed, batch number])``.
    """
    if not model.config.bins and not options.gaussian:
        raise ValueError(
            "the model has no categorical head (config.bins == 0) and gaussian=False: nothing to refit"
        )
    captured: list[torch.Tensor] = []
    hook = output_layer(model).register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0].detach())
    )
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in DecoderFeatures.__dataclass_fields__}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
            for number, batch in enumerate(
                tqdm(
                    batches, total=options.batches, desc="decoder features", disable=not progress, leave=False
                )
            ):
                torch.manual_seed(options.seed * 1_000_003 + number)
                captured.clear()
                batch = batch.to(device)
                model(
                    batch.context_inputs,
                    batch.context_values,
                    batch.target_inputs,
                    samples=options.latent_samples,
                )
                stacked = torch.stack(captured).float().cpu()  # [samples, batch, n_target, hidden]
                keep = min(options.targets_per_task, stacked.shape[2])
                chosen = torch.as_tensor(
                    np.sort(
                        np.random.default_rng([options.seed, number]).choice(
                            stacked.shape[2], keep, replace=False
                        )
                    )
                )
                parts["features"].append(
                    stacked[:, :, chosen].reshape(stacked.shape[0], -1, stacked.shape[-1]).half()
                )
                parts["bins"].append(batch.target_bins.cpu()[:, chosen].reshape(-1))
                parts["values"].append(batch.target_values.float().cpu()[:, chosen, 0].reshape(-1))
                if model.config.task_normalisation:
                    centre, scale = (
                        statistic.cpu()[:, 0, 0] for statistic in model.task_statistics(batch.context_values)
                    )  # [batch] each
                else:
                    centre, scale = torch.zeros(stacked.shape[1]), torch.ones(stacked.shape[1])
                parts["centre"].append(centre.repeat_interleave(keep))
                parts["scale"].append(scale.repeat_interleave(keep))
    finally:
        hook.remove()
        model.train(was_training)
    return DecoderFeatures(
        **{name: torch.cat(values, dim=1 if name == "features" else 0) for name, values in parts.items()}
    )
