"""The GP's rule for small station networks: fewer options, a noise prior, a blocked variance check.

With fewer than ``small_network_contexts`` contexts (e.g. a network of 100 rain gauges) the
per-task choices that serve dense radar contexts overfit: the marginal likelihood of a few dozen
points picks smooth kernels and drives the noise variance to its floor, and the leave-one-out
CRPS, which scores each context next to its neighbours, favours options that make the intervals
too narrow away from the contexts. :func:`small_network_config` therefore keeps the kernel
family among ``small_network_kernels`` (default the exponential, Matern 1/2, the usual model of
daily rainfall variograms), drops the local variance re-scaling, and puts a Gamma prior on the
noise variance (as a fraction of the contexts' variance) into the marginal likelihood
(maximum a posteriori; Rasmussen & Williams 2006, section 5.2). :func:`blocked_variance_factor`
then calibrates the predictive variance by leaving compact spatial blocks of contexts out in
turn (spatially blocked cross-validation: Roberts et al. 2017, Ecography 40, 913): the variance
is multiplied by the mean squared standardised leave-block-out residual, so that the intervals
hold at the distances from the contexts that a target away from them has.
Tasks with at least ``small_network_contexts`` contexts are not affected.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import stats

from weatherunc.models.gp.algebra import FittedGaussianProcess
from weatherunc.models.gp.config import GaussianProcessConfig
from weatherunc.models.gp.fitting import spatial_blocks

#: Bounds of the leave-block-out variance factor (a guard against a degenerate fold).
VARIANCE_FACTOR_BOUNDS = (0.25, 4.0)


def is_small_network(contexts: int, config: GaussianProcessConfig) -> bool:
    """Whether ``contexts`` contexts are a small network under ``config`` (fewer than
    ``small_network_contexts``)."""
    return contexts < config.small_network_contexts


def small_network_config(config: GaussianProcessConfig) -> GaussianProcessConfig:
    """``config`` with the small-network options: with ``kernel="auto"`` the kernels of
    ``small_network_kernels`` only, no local variance re-scaling, and the Gamma noise prior
    ``small_network_noise_prior`` (a noise prior already set is kept)."""
    return replace(
        config,
        automatic_kernels=config.small_network_kernels,
        local_variance=False,
        noise_prior=config.noise_prior or config.small_network_noise_prior,
    )


def blocked_standardised_residuals(
    fitted: FittedGaussianProcess, inputs: np.ndarray, values: np.ndarray, blocks: int
) -> np.ndarray:
    """Standardised residuals ``[m]`` of ``values`` ``[n]`` at ``inputs`` ``[n, d]`` when compact
    spatial blocks of them are left out in turn (empty with fewer than 2 blocks).

    The contexts are split by :func:`~weatherunc.models.gp.fitting.spatial_blocks` into about
    ``blocks`` blocks (a power of two, at most one context per block left unscored). With the
    hyperparameters fixed, the prediction of block ``S`` from the other contexts is closed form
    from ``A = K^-1`` and ``alpha = A r``: residuals ``A_SS^-1 alpha_S``, covariance
    ``A_SS^-1`` (the block form of Rasmussen & Williams 2006, eq. 5.12), noise included and
    scaled as :meth:`FittedGaussianProcess.predict` scales it. Censoring is ignored here (values
    taken as given). Residuals that are not finite (a block whose left-out variance vanishes, as
    for contexts of one value) are left out.
    """
    size = int(np.ceil(len(values) / max(blocks, 1)))
    members = spatial_blocks(inputs[:, :2], max(size, 1))  # [b, m]
    if blocks < 2 or len(members) < 2:
        return np.zeros(0)
    _, inverse, weights, scale = fitted._inverse_solution(inputs, values, True)
    standardised = []
    for block in members:
        left_out = np.linalg.inv(inverse[np.ix_(block, block)])  # [m, m]: covariance of the residuals
        standardised.append(left_out @ weights[block] / np.sqrt(np.diag(left_out) * scale))
    residuals = np.concatenate(standardised)
    return residuals[np.isfinite(residuals)]


def variance_factor(residuals: np.ndarray, rule: str = "mean_square", level: float = 0.9) -> float:
    """The factor on a GP's variance that calibrates it to standardised ``residuals`` ``[m]`` (1 for
    residuals of a well-calibrated GP): ``rule="mean_square"``, their mean square;
    ``rule="coverage"``, the square of the factor on the std whose central ``level`` interval covers
    a share ``level (1 + 1 / m)`` of them (split conformal prediction's finite-sample level, Vovk et
    al. 2005): that quantile of ``|z|`` over ``Phi^-1((1 + level) / 2)``. The mean square fits the
    variance, not the coverage: residuals whose distribution is not Gaussian near that quantile
    leave the ``level`` intervals too narrow or too wide after it.
    Clipped to :data:`VARIANCE_FACTOR_BOUNDS`; 1 without residuals.
    """
    residuals = np.asarray(residuals, dtype=np.float64)
    if rule not in ("mean_square", "coverage"):
        raise ValueError(f"rule must be 'mean_square' or 'coverage', got {rule!r}")
    if residuals.size == 0:
        return 1.0
    if rule == "mean_square":
        factor = float(np.mean(residuals**2))
    else:
        share = min(level * (1.0 + 1.0 / residuals.size), 1.0)
        quantile = np.quantile(np.abs(residuals), share, method="inverted_cdf")  # the ceil((m + 1) level)-th
        factor = float((quantile / stats.norm.ppf((1.0 + level) / 2.0)) ** 2)
    return float(np.clip(factor, *VARIANCE_FACTOR_BOUNDS))


def blocked_variance_factor(
    fitted: FittedGaussianProcess,
    inputs: np.ndarray,
    values: np.ndarray,
    blocks: int,
    rule: str = "mean_square",
) -> float:
    """:func:`variance_factor` of the leave-block-out residuals
    (:func:`blocked_standardised_residuals`) by ``rule``; 1 with fewer than 2 blocks or no finite
    residual."""
    return variance_factor(blocked_standardised_residuals(fitted, inputs, values, blocks), rule)
