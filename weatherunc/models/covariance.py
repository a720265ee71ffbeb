"""Distances between points and the exact Gaussian marginal likelihood, in plain torch.

The GP (:mod:`weatherunc.models.gp`) keeps its hyperparameters in GPyTorch kernel and
likelihood modules (their positivity constraints and parametrisation), but evaluates the
covariance matrices and the marginal likelihood in plain torch: on this CPU, GPyTorch's lazy-tensor
machinery spends more time than the algebra (a 2,000 x 10,000 Matern cross-covariance took
about 1.2 s through ``kernel(x1, x2).to_dense()`` against 0.15 s), and the gradient of the
marginal likelihood is cheaper from ``K^-1`` than through autograd's Cholesky backward.
Here are what every kernel family shares (scaled distances, the Cholesky factor with jitter, the
marginal likelihood); each family's correlation is in :mod:`weatherunc.models.gp.kernels`.
Tests check every kernel against GPyTorch's ``to_dense()`` and the likelihood and its
gradient against GPyTorch's ``ExactMarginalLogLikelihood``.
"""

from __future__ import annotations

import math

import torch

#: Diagonal jitters tried in turn, as multiples of the mean diagonal.
JITTERS = (0.0, 1e-8, 1e-6, 1e-4, 1e-2)


class GaussianProcessNumericalError(ArithmeticError):
    """The covariance matrix stayed singular after every jitter retry."""


def cholesky_with_jitter(matrix: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of ``matrix`` ``[..., n, n]``, adding diagonal jitter on failure.

    A batch of matrices is retried together, with the jitter scaled by the mean diagonal of all.
    """
    scale = float(matrix.diagonal(dim1=-2, dim2=-1).mean())
    size = matrix.shape[-1]
    for jitter in JITTERS:
        factor, info = torch.linalg.cholesky_ex(
            matrix + jitter * scale * torch.eye(size, dtype=matrix.dtype) if jitter else matrix
        )
        if not bool(info.any()):
            return factor
    raise GaussianProcessNumericalError(
        f"covariance of {size} points is not positive definite even with jitter {JITTERS[-1]:g} x mean "
        "diagonal"
    )


def scaled_distance(first: torch.Tensor, second: torch.Tensor, lengthscale: torch.Tensor) -> torch.Tensor:
    """Euclidean distance ``[n, m]`` between ``first`` ``[n, d]`` and ``second`` ``[m, d]`` after
    dividing each dimension by its ``lengthscale`` ``[d]`` (ARD).

    Direct differences, not the ``|a|^2 + |b|^2 - 2ab`` matrix product: exact at coincident points
    (the product form leaves distances ~1e-8 there) and no slower for 2-4 input dimensions.
    """
    scale = lengthscale.reshape(-1)
    return torch.cdist(first / scale, second / scale, compute_mode="donot_use_mm_for_euclid_dist")


def squared_differences(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Squared coordinate differences ``[d, n, m]`` between ``first`` ``[n, d]`` and ``second`` ``[m, d]``.

    They do not depend on the hyperparameters, so a fit computes them once and every
    evaluation of :func:`scaled_squared_distance` only rescales them.
    """
    return (first.T[:, :, None] - second.T[:, None, :]).square()


def scaled_squared_distance(differences: torch.Tensor, lengthscale: torch.Tensor) -> torch.Tensor:
    """Squared scaled distance ``[..., n, m]`` from :func:`squared_differences` ``[d, ..., n, m]`` and the
    ``lengthscale`` ``[d]``: ``sum_j differences_j / lengthscale_j^2``, differentiable.

    Its gradient is one contraction per dimension (cheaper than differentiating a distance matrix).
    """
    return torch.tensordot(lengthscale.reshape(-1).pow(-2), differences, dims=1)


class _NegativeLogMarginalLikelihood(torch.autograd.Function):
    """``-log N(r; 0, K) / n`` with the analytic gradient (Rasmussen & Williams 2006, eq. 5.9)."""

    @staticmethod
    def forward(
        context, covariance: torch.Tensor, residual: torch.Tensor
    ) -> torch.Tensor:  # [..., n, n], [..., n] -> []
        factor = cholesky_with_jitter(covariance)
        weights = torch.cholesky_solve(residual[..., None], factor)[..., 0]  # K^-1 r, [..., n]
        count = residual.numel()
        value = (
            0.5 * (residual * weights).sum()
            + torch.log(factor.diagonal(dim1=-2, dim2=-1)).sum()
            + 0.5 * count * math.log(2.0 * math.pi)
        )
        context.save_for_backward(factor, weights)
        return value / count

    @staticmethod
    def backward(context, gradient: torch.Tensor):
        factor, weights = context.saved_tensors
        count = weights.numel()
        # d/dK = (K^-1 - a a^T) / 2n, d/dr = a / n with a = K^-1 r (n: points of all blocks).
        covariance_gradient = (
            0.5 * (torch.cholesky_inverse(factor) - weights[..., :, None] * weights[..., None, :]) / count
        )
        return gradient * covariance_gradient, gradient * weights / count


def negative_log_marginal_likelihood(covariance: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Negative log marginal likelihood per point, ``-log N(residual; 0, covariance) / n``.

    ``covariance`` ``[n, n]`` (signal plus noise), ``residual`` ``[n]`` (values minus the
    mean). Equals GPyTorch's ``ExactMarginalLogLikelihood`` (negated) for the same model.
    Batched, ``[b, n, n]`` and ``[b, n]``: the blocks' summed negative log likelihoods over all
    ``b n`` points (a block composite likelihood of independent blocks). One
    Cholesky factorisation forward; the backward pass uses ``dL/dK = (K^-1 - a a^T) / 2n``
    (R&W eq. 5.9, ``a = K^-1 r``) from the same factor instead of differentiating through it.
    Jitter is added as in :func:`cholesky_with_jitter` if ``covariance`` is singular.
    """
    return _NegativeLogMarginalLikelihood.apply(covariance, residual)
