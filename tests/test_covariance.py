"""The plain-torch covariances and marginal likelihood equal GPyTorch's, values and gradients."""

from __future__ import annotations

import warnings

import pytest
import torch

from weatherunc.models.covariance import (
    GaussianProcessNumericalError,
    cholesky_with_jitter,
    negative_log_marginal_likelihood,
    squared_differences,
)
from weatherunc.models.gp import _kernel
from weatherunc.models.gp.kernels import (
    KERNELS,
    KernelHyperparameters,
    Matern,
    RationalQuadratic,
    kernel_named,
)

KERNEL_NAMES = tuple(KERNELS)


def _hyperparameters(kernel_name: str, dimensions: int = 3):
    kernel = _kernel(kernel_name, dimensions).double()
    kernel.base_kernel.lengthscale = torch.tensor([[0.4, 0.9, 2.0][:dimensions]], dtype=torch.float64)
    kernel.outputscale = torch.tensor(1.7, dtype=torch.float64)
    if kernel_name == "rational_quadratic":
        kernel.base_kernel.alpha = torch.tensor([0.6], dtype=torch.float64)
    return kernel


def _points(count: int, seed: int, dimensions: int = 3) -> torch.Tensor:
    return (
        torch.rand(count, dimensions, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        * 3.0
    )


@pytest.mark.parametrize("kernel_name", KERNEL_NAMES)
@pytest.mark.parametrize("gradient", [False, True], ids=["in-place", "autograd"])
def test_covariance_equals_gpytorch(kernel_name: str, gradient: bool) -> None:
    kernel = _hyperparameters(kernel_name)
    first, second = _points(40, 0), _points(25, 1)
    second[:5] = first[:5]  # coincident points: distance zero
    with torch.set_grad_enabled(gradient):
        ours = kernel_named(kernel_name).module_covariance(kernel, first, second)
        reference = kernel(first, second).to_dense()
    assert ours.shape == (40, 25)
    assert ours.requires_grad == gradient
    # GPyTorch's distances come from |a|^2 + |b|^2 - 2ab, ~1e-8 off at coincident points.
    torch.testing.assert_close(ours, reference, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(
        ours[:5, :5].diagonal(), torch.full((5,), 1.7, dtype=torch.float64), rtol=1e-14, atol=0.0
    )


@pytest.mark.parametrize("kernel_name", KERNEL_NAMES)
def test_covariance_from_precomputed_differences(kernel_name: str) -> None:
    """The fit's path (squared differences computed once) equals the direct one, and its
    gradient stays finite at coincident points."""
    kernel = _hyperparameters(kernel_name)
    first = _points(30, 7)
    first[3] = first[2]
    differences = squared_differences(first, first)
    assert differences.shape == (3, 30, 30)
    family = kernel_named(kernel_name)
    ours = family.covariance_from_differences(differences, family.hyperparameters(kernel))
    with torch.no_grad():
        direct = family.module_covariance(kernel, first, first)
    torch.testing.assert_close(ours.detach(), direct, rtol=1e-12, atol=1e-14)
    gradients = torch.autograd.grad(ours.sum(), list(kernel.parameters()))
    assert all(torch.isfinite(gradient).all() for gradient in gradients)


@pytest.mark.parametrize("kernel_name", KERNEL_NAMES)
def test_likelihood_and_its_gradient_equal_gpytorch(kernel_name: str) -> None:
    """Value and gradient with respect to every hyperparameter (noise, mean, kernel) equal those
    of GPyTorch's ExactMarginalLogLikelihood on the same model, including a duplicated site."""
    import gpytorch

    inputs = _points(60, 2)
    inputs[1] = inputs[0]
    values = torch.sin(2.0 * inputs[:, 0]) + 0.1 * torch.randn(
        60, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )

    def gradients(ours: bool) -> tuple[float, list[torch.Tensor]]:
        kernel = _hyperparameters(kernel_name)
        likelihood = gpytorch.likelihoods.GaussianLikelihood().double()
        likelihood.noise = torch.tensor(0.05, dtype=torch.float64)
        mean = gpytorch.means.ConstantMean().double()
        mean.constant = torch.tensor(0.2, dtype=torch.float64)
        parameters = [*likelihood.parameters(), *mean.parameters(), *kernel.parameters()]
        if ours:
            covariance = kernel_named(kernel_name).module_covariance(
                kernel, inputs, inputs
            ) + likelihood.noise * torch.eye(60, dtype=torch.float64)
            loss = negative_log_marginal_likelihood(covariance, values - mean.constant)
        else:

            class Model(gpytorch.models.ExactGP):
                def forward(self, points):
                    return gpytorch.distributions.MultivariateNormal(mean(points), kernel(points))

            model = Model(inputs, values, likelihood)
            with gpytorch.settings.max_cholesky_size(10**9), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loss = -gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)(model(inputs), values)
        return float(loss.detach()), list(torch.autograd.grad(loss, parameters))

    value, ours = gradients(ours=True)
    reference_value, reference = gradients(ours=False)
    assert value == pytest.approx(reference_value, rel=1e-9)
    assert (
        len(ours) == len(reference) == (5 if kernel_name == "rational_quadratic" else 4)
    )  # noise, constant, outputscale, lengthscale (, alpha)
    for mine, theirs in zip(ours, reference):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-9)


def test_likelihood_gradient_passes_gradcheck() -> None:
    """The analytic backward (R&W eq. 5.9) against finite differences, through a parametrised
    positive-definite matrix ``A A^T + I`` and a residual."""
    generator = torch.Generator().manual_seed(4)
    factor = torch.randn(6, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    residual = torch.randn(6, generator=generator, dtype=torch.float64, requires_grad=True)

    def function(factor: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return negative_log_marginal_likelihood(
            factor @ factor.T + torch.eye(6, dtype=torch.float64), residual
        )

    assert torch.autograd.gradcheck(function, (factor, residual))


def test_likelihood_is_the_gaussian_log_density() -> None:
    generator = torch.Generator().manual_seed(5)
    root = torch.randn(8, 8, generator=generator, dtype=torch.float64)
    covariance = root @ root.T + 0.5 * torch.eye(8, dtype=torch.float64)
    residual = torch.randn(8, generator=generator, dtype=torch.float64)
    expected = (
        -torch.distributions.MultivariateNormal(torch.zeros(8, dtype=torch.float64), covariance).log_prob(
            residual
        )
        / 8
    )
    torch.testing.assert_close(negative_log_marginal_likelihood(covariance, residual), expected)


def test_bad_kernel_arguments_are_named() -> None:
    points = _points(3, 6)
    one = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="valid kernels: matern12"):
        kernel_named("periodic")
    with pytest.raises(ValueError, match="needs alpha"):
        RationalQuadratic().covariance(points, points, KernelHyperparameters(one, one[0]))
    with pytest.raises(ValueError, match="nu must be 0.5, 1.5 or 2.5"):
        Matern(2.0)


def test_batched_likelihood_is_the_sum_over_blocks() -> None:
    """A ``[b, n, n]`` batch gives the summed block log likelihoods per point of all blocks, and the
    same gradients as the blocks taken one by one (the block composite likelihood)."""
    generator = torch.Generator().manual_seed(6)
    roots = torch.randn(3, 7, 7, generator=generator, dtype=torch.float64)
    residuals = torch.randn(3, 7, generator=generator, dtype=torch.float64)

    def batched(roots: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        return negative_log_marginal_likelihood(
            roots @ roots.transpose(-1, -2) + torch.eye(roots.shape[-1], dtype=torch.float64), residuals
        )

    def one_by_one(roots: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        blocks = [
            negative_log_marginal_likelihood(root @ root.T + torch.eye(7, dtype=torch.float64), residual)
            for root, residual in zip(roots, residuals)
        ]
        return sum(blocks) / len(blocks)

    first = [tensor.clone().requires_grad_() for tensor in (roots, residuals)]
    second = [tensor.clone().requires_grad_() for tensor in (roots, residuals)]
    value, reference = batched(*first), one_by_one(*second)
    torch.testing.assert_close(value, reference)
    value.backward()
    reference.backward()
    for mine, theirs in zip(first, second):
        torch.testing.assert_close(mine.grad, theirs.grad)
    assert torch.autograd.gradcheck(
        batched, tuple(tensor.clone().requires_grad_() for tensor in (roots[:2, :4, :4], residuals[:2, :4]))
    )


def test_batched_cholesky_retries_every_block_with_jitter() -> None:
    singular = torch.ones(4, 4, dtype=torch.float64)  # rank one
    batch = torch.stack([torch.eye(4, dtype=torch.float64), singular])
    factor = cholesky_with_jitter(batch)
    assert factor.shape == (2, 4, 4)
    assert torch.isfinite(factor).all()
    with pytest.raises(GaussianProcessNumericalError, match="not positive definite"):
        cholesky_with_jitter(
            torch.stack([torch.eye(2, dtype=torch.float64), -torch.eye(2, dtype=torch.float64)])
        )
