"""Decoder: per-target predictive Gaussian of the standardised transformed rate, and bin logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.layers import multilayer_perceptron


@dataclass
class DecoderOutput:
    """mean, std ``[batch, n_target]`` (standardised transformed rate); logits ``[batch, n_target, bins]``
    or None."""

    mean: torch.Tensor
    std: torch.Tensor
    logits: torch.Tensor | None


class Decoder(nn.Module):
    """``[target inputs, r, z]`` -> Gaussian (std >= ``minimum_std``) and optional bin logits.

    The std is ``minimum_std + (1 - minimum_std) * softplus(.)`` (Kim et al. 2019 use 0.1 / 0.9),
    bounded below so the model cannot claim certainty it does not have.
    """

    def __init__(self, config: NeuralProcessConfig, inputs: int) -> None:
        super().__init__()
        self.config = config
        width = (
            inputs
            + config.hidden
            + (config.latent_dimension if config.latent else 0)
            + int(config.distance_bias)
            + 2 * int(config.task_normalisation)
        )
        self.network = multilayer_perceptron(
            width, config.hidden, 2 + config.bins, layers=4, dropout=config.dropout
        )

    def forward(
        self,
        target_inputs: torch.Tensor,
        representation: torch.Tensor,
        latent: torch.Tensor | None,
        nearest: torch.Tensor | None = None,
        task_statistics: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """target_inputs ``[batch, n_target, inputs]``, representation ``[batch, n_target, hidden]``,
        latent ``[batch, latent]`` or None, nearest ``[batch, n_target, 1]`` (log distance to the
        nearest context) or None, task_statistics ``[batch, 2]`` (context centre and log scale,
        with ``task_normalisation``) or None."""
        parts = [target_inputs, representation]
        if nearest is not None:
            parts.append(nearest)
        if task_statistics is not None:
            parts.append(task_statistics[:, None, :].expand(-1, target_inputs.shape[1], -1))
        if latent is not None:
            parts.append(latent[:, None, :].expand(-1, target_inputs.shape[1], -1))
        output = self.network(torch.cat(parts, dim=-1))  # [batch, n_target, 2 + bins]
        minimum = self.config.minimum_std
        std = minimum + (1.0 - minimum) * functional.softplus(output[..., 1])
        logits = output[..., 2:] if self.config.bins else None
        return DecoderOutput(mean=output[..., 0], std=std, logits=logits)
