"""Exact GP algebra of a fitted GP: prediction, leave-one-out and leave-two-out, in float64.

:class:`FittedGaussianProcess` holds the hyperparameters and the input/output scaling of a fit
(:mod:`weatherunc.models.gp.fitting`) and conditions on contexts by one Cholesky factorisation
(Rasmussen & Williams 2006, "Gaussian Processes for Machine Learning", algorithm 2.1), with dry
contexts censored (:mod:`weatherunc.models.censoring`) and the variance re-scaled locally
(:mod:`weatherunc.models.local_variance`) on request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from weatherunc.models.censoring import sample_censored
from weatherunc.models.covariance import cholesky_with_jitter
from weatherunc.models.gp.config import GaussianProcessConfig
from weatherunc.models.gp.kernels import KernelHyperparameters, StationaryKernel, kernel_named
from weatherunc.models.local_variance import LocalVarianceScale, squared_residuals

#: Floor of the re-estimated variance scale, so that a constant (e.g. all-dry) context keeps std > 0.
MINIMUM_VARIANCE_SCALE = 1e-4


@dataclass(frozen=True)
class VarianceEvidence:
    """What the variance of a GP's predictions is scaled by, estimated on one set of contexts
    (:meth:`FittedGaussianProcess.variance_evidence`).

    ``scale``: the common variance scale ``r^T K^-1 r / n``; ``sites``: the contexts ``[n, d]`` (x, y
    in km first); ``squared_residuals``: their standardised squared leave-one-out residuals
    ``[n]`` (:func:`~weatherunc.models.local_variance.squared_residuals`), which a
    :class:`~weatherunc.models.local_variance.LocalVarianceScale` smooths.
    """

    scale: float
    sites: np.ndarray
    squared_residuals: np.ndarray

    def without(self, points: np.ndarray) -> VarianceEvidence:
        """The evidence without the sites at any of ``[m, d]`` ``points`` (exact coordinates): a task
        that hides observed pixels to predict them (self-calibration's pseudo-targets) must not
        have their own residuals in the variance field it is predicted with. ``self`` when no
        site is hidden."""
        hidden = {tuple(point) for point in np.asarray(points, dtype=np.float64)}
        keep = np.array([tuple(site) not in hidden for site in self.sites], dtype=bool)
        if keep.all():
            return self
        return VarianceEvidence(self.scale, self.sites[keep], self.squared_residuals[keep])


@dataclass
class FittedGaussianProcess:
    """Hyperparameters and input/output scaling of a fitted GP; predicts with exact algebra."""

    kernel: torch.nn.Module
    kernel_name: str
    log_marginal_likelihood: float
    constant: float
    noise: float
    input_centre: np.ndarray
    input_scale: np.ndarray
    output_centre: float
    output_scale: float

    def _inputs(self, points: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((points - self.input_centre) / self.input_scale, dtype=torch.float64)

    @property
    def family(self) -> StationaryKernel:
        """The kernel family of ``kernel`` (the one called ``kernel_name``)."""
        return kernel_named(self.kernel_name)

    @property
    def hyperparameters(self) -> KernelHyperparameters:
        """Lengthscales ``[d]`` and outputscale (and the family's shape parameters) of ``kernel``, on the
        scaled inputs and outputs."""
        return self.family.hyperparameters(self.kernel)

    def _covariance(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Covariance ``[n, m]`` of scaled inputs ``first`` ``[n, d]`` and ``second`` ``[m, d]``."""
        return self.family.module_covariance(self.kernel, first, second)

    def _factor(self, context: np.ndarray, values: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Scaled inputs ``[n, d]``, standardised residual ``r`` ``[n]`` and the Cholesky factor ``L``
        ``[n, n]`` of ``K_f + sigma^2 I`` over the contexts."""
        inputs = self._inputs(context)
        residual = torch.as_tensor(
            (values - self.output_centre) / self.output_scale - self.constant, dtype=torch.float64
        )
        covariance = self._covariance(inputs, inputs) + self.noise * torch.eye(
            len(inputs), dtype=torch.float64
        )
        return inputs, residual, cholesky_with_jitter(covariance)

    def _factorised(self, context: np.ndarray, values: np.ndarray) -> tuple[torch.Tensor, ...]:
        """:meth:`_factor`'s inputs, residual and factor, and ``K^-1 r`` ``[n, 1]``."""
        inputs, residual, factor = self._factor(context, values)
        return inputs, residual, factor, torch.cholesky_solve(residual[:, None], factor)

    @staticmethod
    def _variance_scale(residual: torch.Tensor, weights: torch.Tensor, rescale_variance: bool) -> float:
        """``r^T K^-1 r / n`` (at least :data:`MINIMUM_VARIANCE_SCALE`), or 1 without ``rescale_variance``."""
        if not rescale_variance:
            return 1.0
        return max(float((residual[:, None] * weights).sum()) / len(residual), MINIMUM_VARIANCE_SCALE)

    @staticmethod
    def _squared_residuals(
        residual: torch.Tensor,
        weights: torch.Tensor,
        inverse: np.ndarray,
        scale: float,
        censored: np.ndarray | None,
        limit: float,
    ) -> np.ndarray:
        """Standardised squared leave-one-out residuals ``[n]`` (censored contexts by their expectation below
        ``limit``) from ``r``, ``K^-1 r`` and ``K^-1`` (Rasmussen & Williams 2006, eq. 5.12)."""
        diagonal = inverse.diagonal()
        loo_mean = residual.numpy() - weights[:, 0].numpy() / diagonal
        return squared_residuals(residual.numpy(), loo_mean, scale / diagonal, censored, limit)

    def variance_evidence(
        self,
        context: np.ndarray,
        values: np.ndarray,
        *,
        censored: np.ndarray | None = None,
        bound: float = 0.0,
        rescale_variance: bool = True,
    ) -> VarianceEvidence:
        """The variance scale and the squared standardised leave-one-out residuals of ``[n, d]`` contexts with
        ``[n]`` ``values`` (``censored``: ``[n]`` bool, known only to be ``<= bound``), as :meth:`predict`
        computes them for its own contexts; :meth:`predict` can use them for other contexts
        (``evidence``)."""
        with torch.no_grad():
            _, residual, factor, weights = self._factorised(context, values)
            scale = self._variance_scale(residual, weights, rescale_variance)
            limit = (bound - self.output_centre) / self.output_scale - self.constant
            censoring = censored is not None and bool(np.any(censored))
            residuals = self._squared_residuals(
                residual,
                weights,
                torch.cholesky_inverse(factor).numpy(),
                scale,
                censored if censoring else None,
                limit,
            )
        return VarianceEvidence(scale, np.asarray(context, dtype=np.float64), residuals)

    def predict(
        self,
        context: np.ndarray,
        values: np.ndarray,
        targets: np.ndarray,
        batch: int,
        *,
        rescale_variance: bool = True,
        censored: np.ndarray | None = None,
        bound: float = 0.0,
        samples: int = GaussianProcessConfig.censored_samples,
        burn_in: int = GaussianProcessConfig.censored_burn_in,
        rng: np.random.Generator | None = None,
        local_variance: LocalVarianceScale | None = None,
        evidence: VarianceEvidence | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """Posterior mean ``[m]``, latent variance ``[m]`` and noise variance of ``z`` at ``targets``.

        Conditions on all ``[n, d]`` contexts. The common scale of signal and noise variance is
        re-estimated on all of them: for fixed lengthscales and noise ratio its maximum-likelihood
        value is ``r^T K^-1 r / n`` (one Cholesky that prediction needs anyway), which corrects the
        variance of hyperparameters fitted on a subset. The mean does not depend on it.
        ``rescale_variance=False`` keeps the hyperparameters exactly as given.

        ``censored`` (``[n]`` bool, optional): contexts known only to satisfy ``z <= bound``
        (their ``values`` at or below it). Their values are drawn by Gibbs sampling from the
        context distribution truncated there (``samples`` sweeps kept after ``burn_in``, seeded by
        ``rng``); the predictive mean is the mean over draws of the exact posterior means, the
        latent variance the exact one plus the variance of those means (the law of total
        variance, moment-matched to one Gaussian).

        ``local_variance`` (optional): both variances are multiplied at each target by the local
        scale of the contexts' squared standardised leave-one-out residuals (censored ones by
        their expectation below the bound; :mod:`weatherunc.models.local_variance`); the noise
        variance is then ``[m]`` instead of one number.

        ``evidence`` (optional, :meth:`variance_evidence`): the variance scale and the residuals
        the local scale smooths are taken from it (another, larger set of contexts: the frame a
        shared fit was made on) instead of being re-estimated on these contexts, so that every
        task conditioned with one fit has one variance field (``rescale_variance`` is then not
        used).
        """
        with torch.no_grad():
            inputs, residual, factor, weights = self._factorised(context, values)
            scale = (
                evidence.scale
                if evidence is not None
                else self._variance_scale(residual, weights, rescale_variance)
            )
            limit = (bound - self.output_centre) / self.output_scale - self.constant
            censoring = censored is not None and bool(np.any(censored))
            own_residuals = local_variance is not None and evidence is None
            inverse = torch.cholesky_inverse(factor).numpy() if censoring or own_residuals else None  # [n, n]
            local_scale = np.ones(len(targets))
            if own_residuals:
                residuals = self._squared_residuals(
                    residual, weights, inverse, scale, censored if censoring else None, limit
                )
                local_scale = local_variance.at(targets, context, residuals, batch=batch)
            elif local_variance is not None:
                local_scale = local_variance.at(
                    targets, evidence.sites, evidence.squared_residuals, batch=batch
                )
            if censoring:
                precision = np.divide(inverse, scale, out=inverse)  # [n, n] of the scaled residual, in place
                draws = sample_censored(
                    precision,
                    np.minimum(residual.numpy(), np.where(censored, limit, np.inf)),
                    censored,
                    limit,
                    samples=samples,
                    burn_in=burn_in,
                    rng=rng if rng is not None else np.random.default_rng(0),
                )
                del precision
                weights = torch.cholesky_solve(torch.as_tensor(draws), factor)  # [n, samples]
            del inverse
            prior_variance = float(self.hyperparameters.outputscale)
            # Written into preallocated outputs: small per-batch tensors kept alive between the
            # large temporaries fragment the heap (glibc then keeps the freed batches).
            mean, variance, spread = np.empty(len(targets)), np.empty(len(targets)), np.zeros(len(targets))
            for start in range(0, len(targets), batch):
                stop = min(start + batch, len(targets))
                cross = self._covariance(inputs, self._inputs(targets[start:stop]))  # [n, b]
                means = cross.T @ weights  # [b, draws]
                mean[start:stop] = means.mean(1).numpy()
                if means.shape[1] > 1:
                    spread[start:stop] = means.var(1, correction=0).numpy()
                solved = torch.linalg.solve_triangular(factor, cross, upper=False)  # [n, b]
                variance[start:stop] = torch.clamp(prior_variance - solved.square_().sum(0), min=0.0).numpy()
                del cross, solved, means
            mean = mean + self.constant
            variance = (variance * scale + spread) * local_scale
            noise = self.noise * scale * self.output_scale**2
        return (
            mean * self.output_scale + self.output_centre,
            variance * self.output_scale**2,
            noise * local_scale if local_variance is not None else noise,
        )

    def leave_one_out(
        self, context: np.ndarray, values: np.ndarray, *, rescale_variance: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-out predictive mean and variance (noise included) of ``z`` at each context.

        Closed form from one inverse of ``K = K_f + sigma^2 I`` over the ``[n, d]`` contexts,
        without refitting: ``mu_i = z_i - [K^-1 r]_i / [K^-1]_ii``, ``var_i = 1 / [K^-1]_ii``
        (Rasmussen & Williams 2006, eq. 5.12), with the variance scale re-estimated as in
        :meth:`predict` (``rescale_variance``). Returns two ``[n]`` arrays.
        """
        residual, inverse, weights, scale = self._inverse_solution(context, values, rescale_variance)
        diagonal = inverse.diagonal()
        mean = residual - weights / diagonal + self.constant
        variance = 1.0 / diagonal * scale
        return mean * self.output_scale + self.output_centre, variance * self.output_scale**2

    def _inverse_solution(
        self, context: np.ndarray, values: np.ndarray, rescale_variance: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Standardised residual ``r`` ``[n]``, ``K^-1`` ``[n, n]``, ``K^-1 r`` ``[n]`` and the variance scale
        (``r^T K^-1 r / n``, or 1 without ``rescale_variance``) over the ``[n, d]`` contexts."""
        with torch.no_grad():
            _, residual, factor = self._factor(context, values)
            inverse = torch.cholesky_inverse(factor).numpy()  # [n, n]
        residual = residual.numpy()
        weights = inverse @ residual
        scale = (
            max(float(residual @ weights) / len(residual), MINIMUM_VARIANCE_SCALE)
            if rescale_variance
            else 1.0
        )
        return residual, inverse, weights, scale

    def leave_two_out(
        self, context: np.ndarray, values: np.ndarray, *, rescale_variance: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and variance ``[n, n]`` of ``z_j`` (column) with contexts ``i`` (row) and ``j``
        both left out.

        From the ``2 x 2`` blocks of ``A = K^-1`` over the ``[n, d]`` contexts, ``alpha = A r``: the
        pair's left-out residuals are ``A_SS^-1 alpha_S`` with covariance ``A_SS^-1``, so
        ``z_j - mu_j = (a_ii alpha_j - a_ij alpha_i) / D``, ``var_j = a_ii / D``,
        ``D = a_ii a_jj - a_ij^2`` (the block form of Rasmussen & Williams 2006, eq. 5.12; Sundararajan
        & Keerthi 2001, Neural Computation 13, 1103). The diagonal (``i = j``) is the leave-one-out
        prediction. ``z_j``'s error there is independent of context ``i``'s leave-one-out error
        under the model (that one is independent of every other value), which is what scoring a
        smoother of the other contexts' residuals at ``i`` needs. Memory: a few ``[n, n]`` arrays.
        """
        residual, inverse, weights, scale = self._inverse_solution(context, values, rescale_variance)
        diagonal = inverse.diagonal().copy()
        product = np.multiply.outer(diagonal, diagonal)  # [n, n]; the [n, n] arrays below are reused in place
        determinant = np.square(inverse)
        np.subtract(product, determinant, out=determinant)
        product *= 1e-12
        np.maximum(determinant, product, out=determinant)
        del product
        np.fill_diagonal(
            determinant, diagonal**2
        )  # i = j: leave one out (1 / a_jj for the variance, alpha_j / a_jj for the residual)
        left_out = np.multiply(
            inverse, weights[:, None], out=inverse
        )  # a_ij alpha_i, over K^-1 (no longer needed)
        np.subtract(np.multiply.outer(diagonal, weights), left_out, out=left_out)
        left_out /= determinant
        np.fill_diagonal(left_out, weights / diagonal)
        mean = np.subtract(residual + self.constant, left_out, out=left_out)
        mean *= self.output_scale
        mean += self.output_centre
        variance = np.divide((scale * self.output_scale**2) * diagonal[:, None], determinant, out=determinant)
        return mean, variance
