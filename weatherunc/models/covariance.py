"""Dense stationary covariances and the exact Gaussian marginal likelihood, in plain torch.

The GP (:mod:`weatherunc.models.gp`) keeps its hyperparameters in GPyTorch kernel and
likelihood modules (their positivity constraints and parametrisation), but evaluates the
covariance matrices and the marginal likelihood here: on this CPU, GPyTorch's lazy-tensor
machinery spends more time than the algebra (a 2,000 x 10,000 Matern cross-covariance took
about 1.2 s through ``kernel(x1, x2).to_dense()`` against 0.15 s here), and the gradient of the
marginal likelihood is cheaper from ``K^-1`` than through autograd's Cholesky backward.
Tests check every kernel here against GPyTorch's ``to_dense()`` and the likelihood and its
gradient against GPyTorch's ``ExactMarginalLogLikelihood``.
"""

from __future__ import annotations

import math

import torch

#: Diagonal jitters tried in turn, as multiples of the mean diagonal.
JITTERS = (0.0, 1e-8, 1e-6, 1e-4, 1e-2)
KERNEL_NAMES = ("matern12", "matern32", "matern52", "rbf", "rational_quadratic")


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


def _check_kernel(kernel_name: str, alpha: torch.Tensor | None) -> None:
    if kernel_name not in KERNEL_NAMES:
        raise ValueError(
            f"stationary_covariance: kernel_name must be one of {KERNEL_NAMES}, got {kernel_name!r}"
        )
    if kernel_name == "rational_quadratic" and alpha is None:
        raise ValueError("stationary_covariance: the rational quadratic kernel needs alpha")


def stationary_covariance(
    kernel_name: str,
    first: torch.Tensor,
    second: torch.Tensor,
    lengthscale: torch.Tensor,
    outputscale: torch.Tensor,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """Covariance ``[n, m]`` between points ``first`` ``[n, d]`` and ``second`` ``[m, d]``.

    With ``r`` the Euclidean distance after dividing each dimension by its ``lengthscale``
    ``[d]`` (ARD) and ``a^2 = outputscale``: Matern 1/2 ``a^2 exp(-r)``, Matern 3/2
    ``a^2 (1 + sqrt3 r) exp(-sqrt3 r)``, Matern 5/2 ``a^2 (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r)``,
    RBF ``a^2 exp(-r^2 / 2)``, rational quadratic ``a^2 (1 + r^2 / (2 alpha))^-alpha``
    (Rasmussen & Williams 2006, eqs. 4.14, 4.17, 4.19; the same forms as GPyTorch's kernels).
    Differentiable in every argument when one of them requires a gradient (then through
    :func:`covariance_from_differences`); otherwise computed in place, to save memory traffic.
    """
    _check_kernel(kernel_name, alpha)
    if torch.is_grad_enabled() and any(
        tensor.requires_grad
        for tensor in (first, second, lengthscale, outputscale, alpha)
        if tensor is not None
    ):
        return covariance_from_differences(
            kernel_name, squared_differences(first, second), lengthscale, outputscale, alpha
        )
    # Direct differences, not the |a|^2 + |b|^2 - 2ab matrix product: exact at coincident points
    # (the product form leaves distances ~1e-8 there) and no slower for 2-4 input dimensions.
    scale = lengthscale.reshape(-1)
    distance = torch.cdist(
        first / scale, second / scale, compute_mode="donot_use_mm_for_euclid_dist"
    )  # [n, m]
    return _correlation_in_place(kernel_name, distance, alpha).mul_(outputscale)


def squared_differences(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Squared coordinate differences ``[d, n, m]`` between ``first`` ``[n, d]`` and ``second`` ``[m, d]``.

    They do not depend on the hyperparameters, so a fit computes them once and every
    evaluation of :func:`covariance_from_differences` only rescales them.
    """
    return (first.T[:, :, None] - second.T[:, None, :]).square()


def covariance_from_differences(
    kernel_name: str,
    differences: torch.Tensor,
    lengthscale: torch.Tensor,
    outputscale: torch.Tensor,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`stationary_covariance` ``[n, m]`` from :func:`squared_differences` ``[d, n, m]``,
    differentiable.

    The squared scaled distance is ``sum_j differences_j / lengthscale_j^2``, whose gradient is
    one contraction per dimension (cheaper than differentiating a distance matrix). For the
    Matern kernels ``r = sqrt(max(r^2, 1e-30))``: coincident points keep a finite gradient
    (their distance does not depend on the lengthscales anyway).
    """
    _check_kernel(kernel_name, alpha)
    squared = torch.tensordot(lengthscale.reshape(-1).pow(-2), differences, dims=1)  # [n, m]
    if kernel_name == "rbf":
        return outputscale * torch.exp(-0.5 * squared)
    if kernel_name == "rational_quadratic":
        alpha = alpha.reshape(())
        return outputscale * (1.0 + squared / (2.0 * alpha)).pow(-alpha)
    distance = squared.clamp_min(1e-30).sqrt()
    if kernel_name == "matern12":
        return outputscale * torch.exp(-distance)
    scaled = math.sqrt(3.0 if kernel_name == "matern32" else 5.0) * distance
    polynomial = 1.0 + scaled if kernel_name == "matern32" else 1.0 + scaled + scaled.square() / 3.0
    return outputscale * polynomial * torch.exp(-scaled)


def _correlation_in_place(
    kernel_name: str, distance: torch.Tensor, alpha: torch.Tensor | None
) -> torch.Tensor:
    """Correlation as a function of the scaled distance ``[n, m]``, overwriting it (no autograd)."""
    if kernel_name == "matern12":
        return distance.neg_().exp_()
    if kernel_name == "rbf":
        return distance.square_().mul_(-0.5).exp_()
    if kernel_name == "rational_quadratic":
        alpha = alpha.reshape(())
        return distance.square_().div_(2.0 * alpha).add_(1.0).pow_(-alpha)
    scaled = distance.mul_(math.sqrt(3.0 if kernel_name == "matern32" else 5.0))
    decay = torch.exp(-scaled)
    if kernel_name == "matern32":
        return scaled.add_(1.0).mul_(decay)
    return scaled.square().div_(3.0).add_(scaled).add_(1.0).mul_(decay)


def kernel_hyperparameters(kernel: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    """``lengthscale`` ``[d]``, ``outputscale`` and ``alpha`` (rational quadratic, else None) of a GPyTorch
    ``ScaleKernel``."""
    base = kernel.base_kernel
    return {
        "lengthscale": base.lengthscale.reshape(-1),
        "outputscale": kernel.outputscale,
        "alpha": getattr(base, "alpha", None),
    }


def module_covariance(
    kernel: torch.nn.Module, kernel_name: str, first: torch.Tensor, second: torch.Tensor
) -> torch.Tensor:
    """:func:`stationary_covariance` with the hyperparameters of a GPyTorch ``ScaleKernel``."""
    return stationary_covariance(kernel_name, first, second, **kernel_hyperparameters(kernel))


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
