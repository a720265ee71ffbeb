"""Fitting the GP's hyperparameters by (block composite) marginal likelihood, and the choice of kernel by it.

:func:`fit_kernel` maximises the exact marginal likelihood of one kernel family (L-BFGS, float64,
:mod:`weatherunc.models.covariance`) on up to ``fit_points`` contexts, or a block composite
likelihood over compact :func:`spatial_blocks` (Eidsvik et al. 2014) with more;
:func:`fit_gaussian_process` keeps the kernel with the highest one.
"""

from __future__ import annotations

import numpy as np
import torch

from weatherunc.models.covariance import (
    GaussianProcessNumericalError,
    negative_log_marginal_likelihood,
    squared_differences,
)
from weatherunc.models.gp.algebra import FittedGaussianProcess
from weatherunc.models.gp.config import GaussianProcessConfig
from weatherunc.models.gp.kernels import kernel_named


def fit_gaussian_process(
    inputs: np.ndarray,
    values: np.ndarray,
    config: GaussianProcessConfig,
    *,
    fitted: dict[str, FittedGaussianProcess] | None = None,
) -> FittedGaussianProcess:
    """Maximise the exact marginal likelihood of ``values`` ``[n]`` at ``inputs`` ``[n, d]``.

    With ``kernel="auto"`` every kernel of ``config.automatic_kernels`` is fitted on the same
    points and the one with the highest marginal likelihood is kept (model selection by
    evidence, Rasmussen & Williams 2006, section 5.4). ``fitted``: fits already made on the same
    points, values and configuration, by kernel name (not repeated). Above ``config.fit_points``
    values each fit's ``log_marginal_likelihood`` is the block composite one per point; every
    kernel is fitted on the same seeded subset and blocks, so the comparison stays like for like.
    """
    kernels = config.automatic_kernels if config.kernel == "auto" else (config.kernel,)
    fitted = fitted or {}
    fits = [
        fitted[kernel] if kernel in fitted else fit_kernel(inputs, values, config, kernel)
        for kernel in kernels
    ]
    return max(fits, key=lambda fit: fit.log_marginal_likelihood)


def spatial_blocks(points: np.ndarray, size: int) -> np.ndarray:
    """Indices ``[blocks, m]`` of equal, compact spatial blocks of at most ``size`` of ``[n, 2]`` ``points``.

    Recursive coordinate bisection: a set larger than ``size`` is split at the median of its
    wider extent into two halves, until every set fits; all sets end at the same depth with sizes
    that differ by at most one, and each is trimmed to the smallest (at most one point dropped per
    block, the last along the last split) so that the blocks stack into one batch. Deterministic.
    """
    if size < 1:
        raise ValueError(f"spatial_blocks: size must be >= 1, got {size}")
    sets = [np.arange(len(points))]
    while max(len(members) for members in sets) > size:
        halves = []
        for members in sets:
            order = members[
                np.argsort(points[members, int(np.argmax(np.ptp(points[members], axis=0)))], kind="stable")
            ]
            halves += [order[: len(order) // 2], order[len(order) // 2 :]]
        sets = halves
    smallest = min(len(members) for members in sets)
    return np.stack([members[:smallest] for members in sets])


def fit_kernel(
    inputs: np.ndarray, values: np.ndarray, config: GaussianProcessConfig, kernel_name: str
) -> FittedGaussianProcess:
    """One kernel's hyperparameters by exact or block composite marginal likelihood (see the config).

    With ``config.noise_prior`` (shape ``a``, rate ``b``) the objective adds the log density of a
    Gamma prior on the noise variance of the standardised values, ``(a - 1) log s2 - b s2``, per
    point (maximum a posteriori; Rasmussen & Williams 2006, section 5.2); the returned
    ``log_marginal_likelihood`` then includes it.
    """
    import gpytorch

    rng = np.random.default_rng(config.seed)
    composite = len(values) > config.fit_points and config.composite_points > config.fit_points
    limit = config.composite_points if composite else config.fit_points
    if len(values) > limit:
        chosen = rng.choice(len(values), size=limit, replace=False)
        inputs, values = inputs[chosen], values[chosen]
    blocks = torch.as_tensor(
        spatial_blocks(inputs[:, :2], config.block_points) if composite else np.arange(len(values))[None, :]
    )  # [b, m]
    input_centre = inputs.mean(axis=0)
    input_scale = np.maximum(inputs.std(axis=0), 1e-6)
    input_scale[:2] = max(
        float(np.sqrt(np.mean(inputs[:, :2].var(axis=0)))), 1e-6
    )  # one spatial scale: x and y alike
    output_centre = float(values.mean())
    output_scale = float(values.std()) if values.std() > 1e-9 else 1.0
    x = torch.as_tensor((inputs - input_centre) / input_scale, dtype=torch.float64)  # [n, d]
    y = torch.as_tensor((values - output_centre) / output_scale, dtype=torch.float64)[blocks]  # [b, m]
    family = kernel_named(kernel_name)
    kernel = family.module(x.shape[1]).double()
    likelihood = gpytorch.likelihoods.GaussianLikelihood(
        noise_constraint=gpytorch.constraints.GreaterThan(config.minimum_noise)
    ).double()
    mean = gpytorch.means.ConstantMean().double()
    kernel.base_kernel.lengthscale = torch.full((1, x.shape[1]), 0.3, dtype=torch.float64)
    kernel.outputscale = torch.tensor(1.0, dtype=torch.float64)
    likelihood.noise = torch.tensor(0.1, dtype=torch.float64)
    identity = torch.eye(blocks.shape[1], dtype=torch.float64)
    differences = torch.stack(
        [squared_differences(x[members], x[members]) for members in blocks], dim=1
    )  # [d, b, m, m], fixed during the fit

    def objective() -> torch.Tensor:  # negative log (composite) marginal likelihood per point
        covariance = (
            family.covariance_from_differences(differences, family.hyperparameters(kernel))
            + likelihood.noise * identity
        )  # [b, m, m]
        loss = negative_log_marginal_likelihood(covariance, y - mean.constant)
        if config.noise_prior is not None:  # Gamma(shape, rate) log density, per point
            shape, rate = config.noise_prior
            loss = (
                loss
                - ((shape - 1.0) * torch.log(likelihood.noise) - rate * likelihood.noise).sum() / y.numel()
            )
        return loss

    parameters = [*likelihood.parameters(), *mean.parameters(), *kernel.parameters()]
    optimiser = torch.optim.LBFGS(
        parameters, lr=1.0, max_iter=config.fit_iterations, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    try:
        optimiser.step(closure)
        with torch.no_grad():
            log_marginal_likelihood = -float(objective())  # per point, standardised values
    except (GaussianProcessNumericalError, RuntimeError) as error:
        raise GaussianProcessNumericalError(
            f"marginal-likelihood fit failed on {len(values)} points: {error}"
        ) from error
    return FittedGaussianProcess(
        kernel=kernel,
        kernel_name=kernel_name,
        log_marginal_likelihood=log_marginal_likelihood,
        constant=float(mean.constant.detach()),
        noise=float(likelihood.noise.detach()),
        input_centre=input_centre,
        input_scale=input_scale,
        output_centre=output_centre,
        output_scale=output_scale,
    )
