"""The two encoder paths of an attentive neural process (Kim et al. 2019, figure 2).

Deterministic path: per-context representation, self-attention among contexts, then
cross-attention from each target's position to the contexts' positions (a learned,
non-stationary kernel regression), optionally with stochastic attention weights
(:mod:`~weatherunc.models.neural_process.stochastic_attention`). Latent path: self-attention,
mean pooling, and a diagonal Gaussian over a global latent ``z``. Without attention both paths mean-pool
(the conditional / latent-variable neural process of Garnelo et al. 2018).
"""

from __future__ import annotations

import torch
from torch import nn

from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.layers import AttentionBlock, multilayer_perceptron, squared_distances
from weatherunc.models.neural_process.stochastic_attention import StochasticMultiHeadAttention


def _blocks(config: NeuralProcessConfig, distance_bias: bool) -> nn.ModuleList:
    """Self-attention layers among a set of points."""
    return nn.ModuleList(
        AttentionBlock(config.hidden, config.heads, distance_bias, config.coordinate_scale_km)
        for _ in range(config.self_attention_layers)
    )


def _stochastic_attention(config: NeuralProcessConfig) -> StochasticMultiHeadAttention:
    """A cross-attention with Weibull weights (Kim et al. 2022)."""
    return StochasticMultiHeadAttention(
        config.hidden,
        config.heads,
        config.distance_bias,
        config.coordinate_scale_km,
        weibull_shape=config.attention_weibull_shape,
        prior_rate=config.attention_prior_rate,
    )


class DeterministicEncoder(nn.Module):
    """Context pairs -> one representation per target ``[batch, n_target, hidden]``."""

    def __init__(self, config: NeuralProcessConfig, inputs: int) -> None:
        super().__init__()
        self.config = config
        self.pairs = multilayer_perceptron(inputs + 1, config.hidden, config.hidden, layers=3)
        if config.attention:
            self.self_attention = _blocks(config, config.distance_bias)
            self.position = multilayer_perceptron(inputs, config.hidden, config.hidden)
            self.cross_attention = nn.ModuleList(
                AttentionBlock(
                    config.hidden,
                    config.heads,
                    config.distance_bias,
                    config.coordinate_scale_km,
                    _stochastic_attention(config) if config.stochastic_attention else None,
                )
                for _ in range(config.cross_attention_layers)
            )

    def encode_context(self, context_inputs: torch.Tensor, context_values: torch.Tensor) -> torch.Tensor:
        """``[batch, n_context, inputs]``, ``[batch, n_context, 1]`` -> ``[batch, n_context, hidden]``."""
        representation = self.pairs(torch.cat([context_inputs, context_values], dim=-1))
        if self.config.attention:
            distance = (
                squared_distances(context_inputs[..., :2], context_inputs[..., :2])
                if self.config.distance_bias
                else None
            )
            for block in self.self_attention:
                representation = block(representation, representation, representation, distance)
        return representation

    def attend(
        self, context_inputs: torch.Tensor, representation: torch.Tensor, target_inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Representation per target ``[batch, n_target, hidden]`` from encoded contexts, and (with
        ``distance_bias``) the log distance to the nearest context ``[batch, n_target, 1]``."""
        distance = (
            squared_distances(target_inputs[..., :2], context_inputs[..., :2])
            if self.config.distance_bias
            else None
        )  # [batch, n_target, n_context]
        nearest = (
            None if distance is None else 0.5 * torch.log(distance.min(dim=-1, keepdim=True).values + 1e-6)
        )
        if not self.config.attention:
            return representation.mean(dim=1, keepdim=True).expand(-1, target_inputs.shape[1], -1), nearest
        keys = self.position(context_inputs)  # [batch, n_context, hidden]
        queries = self.position(target_inputs)  # [batch, n_target, hidden]
        for block in self.cross_attention:  # stacked blocks refine the query with what it attended to
            queries = block(queries, keys, representation, distance)
        return queries, nearest

    def attention_divergence(self) -> torch.Tensor | None:
        """With ``stochastic_attention``, the KL of the last :meth:`attend`'s attention weights to their
        prior, averaged over heads and contexts and summed over layers, ``[batch, n_target]``; None
        without stochastic attention or when the last call recorded no gradients."""
        if not self.config.stochastic_attention:
            return None
        divergences = [block.attention.divergence for block in self.cross_attention]
        if not divergences or any(divergence is None for divergence in divergences):
            return None
        return torch.stack(divergences).sum(0)


class LatentEncoder(nn.Module):
    """Pairs -> diagonal Gaussian ``q(z | pairs)``: mean and std, each ``[batch, latent]``."""

    def __init__(self, config: NeuralProcessConfig, inputs: int) -> None:
        super().__init__()
        self.config = config
        self.pairs = multilayer_perceptron(inputs + 1, config.hidden, config.hidden, layers=3)
        if config.attention:
            self.self_attention = _blocks(config, False)  # global summary: no locality bias needed
        self.to_gaussian = multilayer_perceptron(config.hidden, config.hidden, 2 * config.latent_dimension)

    def forward(self, inputs: torch.Tensor, values: torch.Tensor) -> torch.distributions.Normal:
        representation = self.pairs(torch.cat([inputs, values], dim=-1))  # [batch, n, hidden]
        if self.config.attention:
            for block in self.self_attention:
                representation = block(representation, representation, representation)
        mean, raw_std = self.to_gaussian(representation.mean(dim=1)).chunk(2, dim=-1)  # [batch, latent] each
        return torch.distributions.Normal(mean, 0.1 + 0.9 * torch.sigmoid(raw_std))
