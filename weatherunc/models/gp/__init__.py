"""Gaussian-process interpolation with GPyTorch: exact, float64, Cholesky.

Model: ``z(s) = m + f(s) + e``, ``f ~ GP(0, a^2 k_nu(s, s'; l))`` with a Matern (or RBF)
kernel with one lengthscale per input dimension (ARD: x, y and covariates), Gaussian noise
``e ~ N(0, sigma^2)``; ``z`` is the transformed rate. Hyperparameters maximise the exact
marginal likelihood (L-BFGS) on up to ``fit_points`` contexts, and with more contexts a block
composite likelihood over compact spatial blocks of up to ``composite_points`` of them
(:func:`spatial_blocks`, Eidsvik et al. 2014); prediction conditions on
every context by one Cholesky factorisation (Rasmussen & Williams 2006, "Gaussian
Processes for Machine Learning", algorithm 2.1), batched over targets to bound memory.
By default the kernel (Matern 1/2, 3/2, 5/2 or rational quadratic, a scale mixture of squared
exponentials that suits multi-scale rain fields) is chosen per task by marginal likelihood, after
the offset of the log/Box-Cox transform has been chosen per task by the leave-one-out CRPS of
the contexts (:func:`select_predictive_options`).
Above ``max_exact_context`` contexts, targets are predicted tile by tile from the nearest
contexts around each tile (local exact GPs with the global hyperparameters).
Dry contexts are censored (``censored_contexts``): with ``rate = max(g^-1(z), 0)`` a dry site
says ``z <= g(0)``, not ``z = g(0)``, so prediction conditions on that inequality by Gibbs
sampling the dry sites' values (:mod:`weatherunc.models.censoring`) and averaging the exact
GP predictive over the draws (mean of the means; variance plus the variance of the means).
The hyperparameters and the variance scale are those fitted to the values as given.
The variance is then re-scaled locally (``local_variance``): multiplied by a kernel smoother of
the contexts' squared standardised leave-one-out residuals (:mod:`weatherunc.models.local_variance`),
wider where the model under-predicted its errors (convective cells), narrower where it
over-predicted them; the smoothing is chosen per task with the transform offset.

GPyTorch's defaults are deliberately avoided: above 800 points they switch to conjugate
gradients and Lanczos variance estimates, reported to give badly calibrated variances on 2-D
fields; here every solve is a Cholesky factorisation in float64.
The hyperparameters live in GPyTorch kernel, likelihood and mean modules (their constraints and
parametrisation); covariance matrices are evaluated by the kernel families
(:mod:`weatherunc.models.gp.kernels`) and the marginal likelihood with its gradient by
:mod:`weatherunc.models.covariance`, in plain torch, which is checked against GPyTorch's own
and is several times faster on the CPU.

Modules: :mod:`~weatherunc.models.gp.config` (options), :mod:`~weatherunc.models.gp.kernels`
(kernel families as classes, and the registry of their names), :mod:`~weatherunc.models.gp.algebra`
(exact prediction, leave-one-out and leave-two-out), :mod:`~weatherunc.models.gp.fitting`
(hyperparameters and kernel by marginal likelihood), :mod:`~weatherunc.models.gp.selection`
(transform offset and local variance by leave-one-out CRPS), :mod:`~weatherunc.models.gp.small_network`
(fewer options, a noise prior and a leave-block-out variance factor below ``small_network_contexts``
contexts) and :mod:`~weatherunc.models.gp.interpolator` (per task, or one fit shared by several tasks:
:meth:`GaussianProcessInterpolator.shared_fit`); their public names are re-exported here.
"""

from weatherunc.models.covariance import GaussianProcessNumericalError, cholesky_with_jitter
from weatherunc.models.gp.algebra import MINIMUM_VARIANCE_SCALE, FittedGaussianProcess, VarianceEvidence
from weatherunc.models.gp.config import AUTOMATIC_KERNELS, GaussianProcessConfig
from weatherunc.models.gp.fitting import fit_gaussian_process, spatial_blocks
from weatherunc.models.gp.interpolator import (
    GaussianProcessFit,
    GaussianProcessInterpolator,
    SharedFitGaussianProcess,
    fit_task,
    frame_evidence,
    predict_with_fit,
)
from weatherunc.models.gp.kernels import (
    KERNELS,
    KernelHyperparameters,
    Matern,
    RadialBasis,
    RationalQuadratic,
    StationaryKernel,
    gpytorch_kernel,
    kernel_named,
)
from weatherunc.models.gp.selection import (
    OFFSET_SELECTION_KERNEL,
    SELECTION_CRPS_NODES,
    PredictiveSelection,
    select_predictive_options,
    spatial_lengthscale_km,
)

#: Former name of :func:`~weatherunc.models.gp.kernels.gpytorch_kernel` (tests and benchmarks import it).
_kernel = gpytorch_kernel

__all__ = [
    "AUTOMATIC_KERNELS",
    "KERNELS",
    "MINIMUM_VARIANCE_SCALE",
    "OFFSET_SELECTION_KERNEL",
    "SELECTION_CRPS_NODES",
    "FittedGaussianProcess",
    "GaussianProcessFit",
    "GaussianProcessConfig",
    "GaussianProcessInterpolator",
    "GaussianProcessNumericalError",
    "KernelHyperparameters",
    "Matern",
    "PredictiveSelection",
    "RadialBasis",
    "RationalQuadratic",
    "SharedFitGaussianProcess",
    "StationaryKernel",
    "VarianceEvidence",
    "cholesky_with_jitter",
    "fit_gaussian_process",
    "fit_task",
    "frame_evidence",
    "gpytorch_kernel",
    "kernel_named",
    "predict_with_fit",
    "select_predictive_options",
    "spatial_blocks",
    "spatial_lengthscale_km",
]
