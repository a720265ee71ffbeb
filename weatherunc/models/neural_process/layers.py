"""Building blocks: MLPs and multi-head attention blocks (Vaswani et al. 2017) with residuals."""

from __future__ import annotations

import torch
from torch import nn


def multilayer_perceptron(inputs: int, hidden: int, outputs: int, layers: int = 2, dropout: float = 0.0) -> nn.Sequential:
    """``layers`` linear layers with ReLU between them (dropout after each hidden activation)."""
    modules: list[nn.Module] = []
    width = inputs
    for _ in range(layers - 1):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout > 0:
            modules.append(nn.Dropout(dropout))
        width = hidden
    modules.append(nn.Linear(width, outputs))
    return nn.Sequential(*modules)


class AttentionBlock(nn.Module):
    """Multi-head attention, residual and layer norm, then a residual feed-forward layer.

    queries ``[batch, n_query, hidden]``, keys ``[batch, n_key, hidden]``, values
    ``[batch, n_key, hidden]`` -> ``[batch, n_query, hidden]``.
    """

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.normalise_attention = nn.LayerNorm(hidden)
        self.feed_forward = multilayer_perceptron(hidden, hidden, hidden)
        self.normalise_output = nn.LayerNorm(hidden)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(queries, keys, values, need_weights=False)
        hidden = self.normalise_attention(queries + attended)  # [batch, n_query, hidden]
        return self.normalise_output(hidden + self.feed_forward(hidden))
