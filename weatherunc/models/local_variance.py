"""A locally re-estimated variance scale for a Gaussian process, from its leave-one-out residuals.

A stationary GP has one variance level for the whole field. Rain fields are not like that:
a convective cell varies far more, even in log space, than the drizzle or the dry ground
around it, and a field that is mostly dry looks smooth and quiet to the marginal likelihood.
Its intervals then are too narrow in the cells and too wide elsewhere (on the benchmark's
MRMS gauge tasks the 90 % interval held 65-78 % of the wet truths).

Here the GP's own leave-one-out residuals say where it is over- or under-confident. With
``e_i = (z_i - mu_-i) / s_-i`` the standardised leave-one-out residual of context ``i``
(``E[e_i^2] = 1`` under the model), the variance at a point ``t`` is multiplied by

    ``scale(t) = (sum_i w_i(t) e_i^2 + prior_weight) / (sum_i w_i(t) + prior_weight)``,
    ``w_i(t) = exp(-|t - s_i|^2 / (2 h^2))``:

a kernel (Nadaraya-Watson) smoother of the squared residuals, the classical estimator of a
variance function (Fan & Yao 1998, Biometrika 85, 645), shrunk towards 1 (the model's own
variance) by ``prior_weight`` pseudo-residuals so that a point far from every context keeps the
GP's variance. A censored context (a dry site: only ``z_i <= bound`` is known) contributes the
expectation of ``e_i^2`` given that, ``1 - b phi(b) / Phi(b)`` with ``b = (bound - mu_-i) / s_-i``
(the second moment of a standard normal truncated above at ``b``): a dry site where the model
expects dry is no evidence either way, one where it expected rain is. The bandwidth ``h`` and
``prior_weight`` are chosen per task by the leave-one-out CRPS of the contexts
(:func:`weatherunc.models.gp.select_predictive_options`), the scale at a context then computed
from the other contexts' residuals with that context left out too (:func:`left_out_scales`). In geostatistics
the same departure from stationarity is the
"proportional effect" (Journel & Huijbregts 1978, "Mining Geostatistics", section III.B).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy.spatial import distance


@dataclass(frozen=True)
class LocalVarianceScale:
    """Smoothing of squared leave-one-out residuals: Gaussian ``bandwidth_km``, ``prior_weight``
    pseudo-residuals at 1."""

    bandwidth_km: float
    prior_weight: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.bandwidth_km) and self.bandwidth_km > 0):
            raise ValueError(
                f"LocalVarianceScale: bandwidth_km must be finite and > 0, got {self.bandwidth_km}"
            )
        if not (np.isfinite(self.prior_weight) and self.prior_weight > 0):
            raise ValueError(
                f"LocalVarianceScale: prior_weight must be finite and > 0, got {self.prior_weight}"
            )

    def at(
        self, points: np.ndarray, contexts: np.ndarray, squared_residuals: np.ndarray, *, batch: int = 1024
    ) -> np.ndarray:
        """Variance scale ``[m]`` at ``[m, >=2]`` ``points`` from ``[n, >=2]`` ``contexts`` (first two
        columns: x, y in km).

        ``squared_residuals``: ``[n]`` standardised squared leave-one-out residuals of the contexts
        (:func:`squared_residuals`). Memory is bounded by ``batch`` points at a time (``[batch, n]``).
        """
        contexts = np.asarray(contexts, dtype=np.float64)[:, :2]
        squared_residuals = np.asarray(squared_residuals, dtype=np.float64)
        if squared_residuals.shape != (len(contexts),):
            raise ValueError(
                f"squared_residuals must be [n] for n = {len(contexts)} contexts, got shape "
                f"{squared_residuals.shape}"
            )
        points = np.asarray(points, dtype=np.float64)[:, :2]
        scale = np.empty(len(points))
        for start in range(0, len(points), batch):
            weights = np.exp(
                -0.5
                * distance.cdist(points[start : start + batch], contexts, "sqeuclidean")
                / self.bandwidth_km**2
            )  # [b, n]
            scale[start : start + batch] = (weights @ squared_residuals + self.prior_weight) / (
                weights.sum(1) + self.prior_weight
            )
        return scale

    def to_attrs(self) -> dict[str, float]:
        """Attributes that record the smoothing in an output dataset."""
        return {
            "local_variance_bandwidth_km": float(self.bandwidth_km),
            "local_variance_prior_weight": float(self.prior_weight),
        }


def squared_residuals(
    values: np.ndarray,
    mean: np.ndarray,
    variance: np.ndarray,
    censored: np.ndarray | None = None,
    bound: float = 0.0,
) -> np.ndarray:
    """Standardised squared residuals ``(values - mean)^2 / variance``, arrays of any shapes that broadcast.

    Where ``censored`` (bool, broadcasting likewise) only ``value <= bound`` is known; the value there is the
    expectation of the squared residual given that, ``1 - b phi(b) / Phi(b)`` with
    ``b = (bound - mean) / sqrt(variance)`` (truncated standard normal; Johnson, Kotz &
    Balakrishnan 1994, "Continuous Univariate Distributions" 1, section 10.1), which tends to 1
    when the bound is far above the mean and grows like ``b^2`` when it is far below.
    """
    values, mean, variance = (np.asarray(array, dtype=np.float64) for array in (values, mean, variance))
    if np.any(~(variance > 0)):
        raise ValueError("squared_residuals: variance must be > 0 everywhere")
    squared = np.asarray(
        np.subtract(values, mean)
    )  # a new array of the broadcast shape (0-d for scalars), squared and divided in place
    np.square(squared, out=squared)
    squared /= variance
    if censored is None or not np.any(censored):
        return squared
    where = np.broadcast_to(np.asarray(censored, dtype=bool), squared.shape)
    limit = (bound - np.broadcast_to(mean, squared.shape)[where]) / np.sqrt(
        np.broadcast_to(variance, squared.shape)[where]
    )  # only where censored
    # phi(b) / Phi(b) through logs, finite also far in the lower tail (where it tends to -b)
    ratio = np.exp(-0.5 * limit**2 - 0.5 * np.log(2.0 * np.pi) - special.log_ndtr(limit))
    squared[where] = np.maximum(1.0 - limit * ratio, 0.0)
    return squared


def left_out_scales(
    contexts: np.ndarray, pairwise_squared_residuals: np.ndarray, options: Sequence[LocalVarianceScale]
) -> list[np.ndarray]:
    """Each option's variance scale ``[n]`` at every context from the other contexts, for scoring by
    leave-one-out.

    ``contexts``: ``[n, >=2]`` (x, y in km first). ``pairwise_squared_residuals``: ``[n, n]``, row
    ``i`` the other contexts' standardised squared residuals with context ``i`` left out as well as
    themselves (:meth:`weatherunc.models.gp.FittedGaussianProcess.leave_two_out`); the diagonal is
    not used. The distances and each bandwidth's weights are computed once for all options.
    """
    points = np.asarray(contexts, dtype=np.float64)[:, :2]
    if pairwise_squared_residuals.shape != (len(points), len(points)):
        raise ValueError(
            f"pairwise_squared_residuals must be [n, n] for n = {len(points)} contexts, got shape "
            f"{pairwise_squared_residuals.shape}"
        )
    squared = distance.cdist(points, points, "sqeuclidean")  # [n, n]
    sums: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    scales = []
    for option in options:
        if option.bandwidth_km not in sums:
            weights = np.exp(-0.5 * squared / option.bandwidth_km**2)
            np.fill_diagonal(weights, 0.0)
            sums[option.bandwidth_km] = (
                np.einsum("ij,ij->i", weights, pairwise_squared_residuals),
                weights.sum(1),
            )
        weighted, total = sums[option.bandwidth_km]
        scales.append((weighted + option.prior_weight) / (total + option.prior_weight))
    return scales
