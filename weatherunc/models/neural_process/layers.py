"""Building blocks: MLPs and multi-head attention blocks with an optional distance bias.

Attention is the scaled dot-product multi-head attention of Vaswani et al. (2017), as used by
Kim et al. (2019). With ``distance_bias`` each head also adds ``-(d / l_h)^2 / 2`` to its
logits, ``d`` the distance between query and key positions and ``l_h`` a learned lengthscale
per head (initialised from 1 to 32 km): a relative-position bias in the spirit of Press et al.
(2022, ALiBi) that gives the heads the locality a spatial interpolator needs from the first
step, instead of having to discover it from coordinates alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from weatherunc.models.neural_process.randomness import DrawnDropout


def multilayer_perceptron(
    inputs: int, hidden: int, outputs: int, layers: int = 2, dropout: float = 0.0
) -> nn.Sequential:
    """``layers`` linear layers with ReLU between them (dropout after each hidden activation,
    :class:`~weatherunc.models.neural_process.randomness.DrawnDropout`)."""
    modules: list[nn.Module] = []
    width = inputs
    for _ in range(layers - 1):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout > 0:
            modules.append(DrawnDropout(dropout))
        width = hidden
    modules.append(nn.Linear(width, outputs))
    return nn.Sequential(*modules)


def squared_distances(query_positions: torch.Tensor, key_positions: torch.Tensor) -> torch.Tensor:
    """``[batch, n_query, 2]``, ``[batch, n_key, 2]`` -> ``[batch, n_query, n_key]`` squared distances."""
    return (query_positions[:, :, None, :] - key_positions[:, None, :, :]).pow(2).sum(-1)


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention with an optional per-head distance bias.

    queries ``[batch, n_query, hidden]``, keys and values ``[batch, n_key, hidden]``,
    squared_distance ``[batch, n_query, n_key]`` (normalised units) -> ``[batch, n_query, hidden]``.
    """

    def __init__(
        self, hidden: int, heads: int, distance_bias: bool, coordinate_scale_km: float = 32.0
    ) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.output = (nn.Linear(hidden, hidden) for _ in range(4))
        self.log_inverse_lengthscale = None
        if distance_bias:
            lengthscales_km = torch.logspace(0.0, math.log10(32.0), heads)
            self.log_inverse_lengthscale = nn.Parameter(torch.log(coordinate_scale_km / lengthscales_km))

    def distance_bias(self, squared_distance: torch.Tensor | None) -> torch.Tensor | None:
        """The additive attention bias ``-d^2 / (2 l_h^2)`` ``[batch, heads, n_query, n_key]`` of
        each head's lengthscale ``l_h`` from ``squared_distance`` ``[batch, n_query, n_key]``, in the
        parameters' dtype; None without a distance bias."""
        if self.log_inverse_lengthscale is None:
            return None
        if squared_distance is None:
            raise ValueError("this attention block has a distance bias: pass squared_distance")
        inverse_squared = torch.exp(2 * self.log_inverse_lengthscale)[None, :, None, None]  # [1, heads, 1, 1]
        return -0.5 * inverse_squared * squared_distance[:, None]

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        squared_distance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch, n_query, hidden = queries.shape
        n_key = keys.shape[1]
        width = hidden // self.heads

        def split(tensor: torch.Tensor, count: int) -> torch.Tensor:
            return tensor.view(batch, count, self.heads, width).transpose(
                1, 2
            )  # [batch, heads, count, width]

        bias = self.distance_bias(squared_distance)
        if bias is not None:
            bias = bias.to(queries.dtype)
        attended = functional.scaled_dot_product_attention(
            split(self.query(queries), n_query),
            split(self.key(keys), n_key),
            split(self.value(values), n_key),
            attn_mask=bias,
        )
        return self.output(attended.transpose(1, 2).reshape(batch, n_query, hidden))


class AttentionBlock(nn.Module):
    """Attention, residual and layer norm, then a residual feed-forward layer (post-norm transformer
    block). ``attention`` replaces the block's :class:`MultiHeadAttention` (e.g. a stochastic one,
    :mod:`~weatherunc.models.neural_process.stochastic_attention`)."""

    def __init__(
        self,
        hidden: int,
        heads: int,
        distance_bias: bool = False,
        coordinate_scale_km: float = 32.0,
        attention: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.attention = (
            MultiHeadAttention(hidden, heads, distance_bias, coordinate_scale_km)
            if attention is None
            else attention
        )
        self.normalise_attention = nn.LayerNorm(hidden)
        self.feed_forward = multilayer_perceptron(hidden, hidden, hidden)
        self.normalise_output = nn.LayerNorm(hidden)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        squared_distance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden = self.normalise_attention(
            queries + self.attention(queries, keys, values, squared_distance)
        )  # [batch, n_query, hidden]
        return self.normalise_output(hidden + self.feed_forward(hidden))
