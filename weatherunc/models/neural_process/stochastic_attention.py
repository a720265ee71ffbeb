"""Stochastic cross-attention: attention weights as latent variables (Kim et al. 2022, "Neural
Processes with Stochastic Attention: Paying more attention to the context dataset", ICLR; after the
Bayesian attention modules of Fan et al. 2020, NeurIPS).

For each head, query ``i`` and key ``j`` the deterministic attention has the score ``s_ij`` (scaled
dot product plus the distance bias of :class:`~weatherunc.models.neural_process.layers.MultiHeadAttention`)
and the weights ``softmax_j(s_ij)``. Here the unnormalised weight is drawn from a Weibull
distribution whose mean is that deterministic weight,

    W_ij ~ Weibull(k, lambda_ij),  lambda_ij = softmax_j(s_ij) / Gamma(1 + 1/k),

by reparameterisation, ``W = lambda (-log(1 - u))^(1/k)`` with ``u ~ U(0, 1)``, and normalised over
the keys, ``A_ij = W_ij / sum_j W_ij`` (computed as a softmax of ``log W``). The shape ``k`` sets the
spread: the coefficient of variation of ``W`` is about ``1.28 / k`` for large ``k``.

The prior of ``W_ij`` is ``Gamma(alpha_ij, beta)`` (shape, rate) with the mean
``alpha_ij / beta = p_ij = softmax_j(c_j + b_ij)`` (Fan et al.'s contextual prior,
``alpha_ij = beta p_ij``): ``c_j`` a score of key ``j`` alone from a small network on the keys (Kim et
al.'s key-based prior: what a context is, whichever target asks) and ``b_ij`` the attention's
distance bias, so that the prior is as local as the attention. The network's last layer starts at
zero, so the prior starts as the distance bias alone. The KL of the Weibull to the Gamma is in closed
form (Zhang et al. 2018, "WHAI", ICLR; Fan et al. 2020):

    KL = gamma_e alpha / k - alpha log lambda + log k + beta lambda Gamma(1 + 1/k) - gamma_e - 1
         - alpha log beta + log Gamma(alpha),

``gamma_e`` Euler's constant. As a function of the Weibull's mean ``m = lambda Gamma(1 + 1/k)`` it is
``beta m - alpha log m`` plus terms of the prior alone: the weights are drawn to the prior's mean with
a force ``beta (m - p)`` that stays bounded (both are at most one). Shapes are floored at
:data:`PRIOR_SHAPE_FLOOR`, as ``log Gamma(alpha)`` grows as ``-log alpha``: the KL of a context that
neither gives weight is about ``log Gamma(floor)``, a constant.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from weatherunc.models.neural_process.layers import MultiHeadAttention, multilayer_perceptron
from weatherunc.models.neural_process.randomness import uniform_like

#: Euler-Mascheroni constant.
EULER_GAMMA = 0.5772156649015329
#: Smallest Gamma prior shape used in the KL.
PRIOR_SHAPE_FLOOR = 1e-4
#: Uniform draws are kept in ``[UNIFORM_FLOOR, 1)`` so that ``log(-log(1 - u))`` is finite.
UNIFORM_FLOOR = 1e-7


def weibull_log_scale(log_mean: torch.Tensor, shape: float) -> torch.Tensor:
    """``log lambda`` of the Weibull with shape ``k = shape`` and mean ``exp(log_mean)`` (any shape
    of tensor): ``log_mean - log Gamma(1 + 1/k)``."""
    return log_mean - math.lgamma(1.0 + 1.0 / shape)


def sample_log_weibull(log_scale: torch.Tensor, shape: float) -> torch.Tensor:
    """``log W`` for ``W ~ Weibull(shape, exp(log_scale))``, one draw per element, reparameterised
    (differentiable in ``log_scale``): ``log lambda + log(-log(1 - u)) / k``, ``u`` drawn by
    :func:`~weatherunc.models.neural_process.randomness.uniform_like`."""
    uniform = uniform_like(log_scale).clamp_min(UNIFORM_FLOOR)
    return log_scale + torch.log(-torch.log1p(-uniform)) / shape


def weibull_gamma_kl(
    log_scale: torch.Tensor, shape: float, prior_shape: torch.Tensor, prior_rate: float
) -> torch.Tensor:
    """``KL(Weibull(shape, exp(log_scale)) || Gamma(prior_shape, prior_rate))`` elementwise (module
    docstring; the Gamma's rate, not scale). Tensors broadcast; the result has their shape."""
    return (
        EULER_GAMMA * prior_shape / shape
        - prior_shape * log_scale
        + math.log(shape)
        + prior_rate * torch.exp(log_scale + math.lgamma(1.0 + 1.0 / shape))
        - EULER_GAMMA
        - 1.0
        - prior_shape * math.log(prior_rate)
        + torch.lgamma(prior_shape)
    )


class StochasticMultiHeadAttention(MultiHeadAttention):
    """:class:`~weatherunc.models.neural_process.layers.MultiHeadAttention` with Weibull attention
    weights (module docstring): the same parameters, plus the prior's key network.

    queries ``[batch, n_query, hidden]``, keys and values ``[batch, n_key, hidden]``, squared_distance
    ``[batch, n_query, n_key]`` -> ``[batch, n_query, hidden]``. While gradients are recorded the
    forward pass also sets :attr:`divergence`, the KL of the weights to their prior averaged over heads
    and keys (per attention weight, so that its size does not grow with the number of contexts),
    ``[batch, n_query]`` (None otherwise, e.g. at prediction under ``torch.inference_mode``).
    :attr:`last_weights` keeps the normalised weights ``[batch, heads, n_query, n_key]`` of the last
    call.
    """

    def __init__(
        self,
        hidden: int,
        heads: int,
        distance_bias: bool,
        coordinate_scale_km: float = 32.0,
        *,
        weibull_shape: float = 10.0,
        prior_rate: float = 1.0,
    ) -> None:
        super().__init__(hidden, heads, distance_bias, coordinate_scale_km)
        self.weibull_shape, self.prior_rate = weibull_shape, prior_rate
        self.prior = multilayer_perceptron(hidden, hidden, heads)
        nn.init.zeros_(self.prior[-1].weight)  # the prior starts as the distance bias alone
        nn.init.zeros_(self.prior[-1].bias)
        self.divergence: torch.Tensor | None = None
        self.last_weights: torch.Tensor | None = None

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
            return tensor.view(batch, count, self.heads, width).transpose(1, 2).float()

        bias = self.distance_bias(squared_distance)
        bias = torch.zeros((), device=queries.device) if bias is None else bias.float()
        scores = (
            split(self.query(queries), n_query) @ split(self.key(keys), n_key).transpose(-1, -2)
        ) / math.sqrt(width) + bias  # [batch, heads, n_query, n_key]
        log_scale = weibull_log_scale(functional.log_softmax(scores, dim=-1), self.weibull_shape)
        weights = torch.softmax(sample_log_weibull(log_scale, self.weibull_shape), dim=-1)
        self.last_weights = weights.detach()
        self.divergence = None
        if torch.is_grad_enabled():
            key_scores = self.prior(keys).float().transpose(1, 2)[:, :, None, :]  # [batch, heads, 1, n_key]
            prior_mean = torch.softmax(key_scores + bias, dim=-1)  # [batch, heads, n_query or 1, n_key]
            prior_shape = (self.prior_rate * prior_mean).clamp_min(PRIOR_SHAPE_FLOOR)  # alpha = beta p
            divergence = weibull_gamma_kl(log_scale, self.weibull_shape, prior_shape, self.prior_rate)
            self.divergence = divergence.mean(dim=(1, 3))  # [batch, n_query]
        attended = weights @ split(self.value(values), n_key)  # [batch, heads, n_query, width]
        return self.output(attended.transpose(1, 2).reshape(batch, n_query, hidden))
