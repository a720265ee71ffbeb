"""Per-task choice of the transform offset and the local variance scale by the leave-one-out CRPS of the
contexts."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from weatherunc.metrics.kernels import crps_ensemble
from weatherunc.models.gp.algebra import FittedGaussianProcess
from weatherunc.models.gp.config import GaussianProcessConfig
from weatherunc.models.gp.fitting import fit_kernel
from weatherunc.models.local_variance import LocalVarianceScale, left_out_scales, squared_residuals
from weatherunc.transforms import PrecipitationTransform, quantile_nodes, quantiles

#: Equally weighted quantiles of the leave-one-out CRPS (the quantile form of the CRPS).
SELECTION_CRPS_NODES = 64

#: Kernel with which the transform offsets are compared (flexible over scales, one fit each).
OFFSET_SELECTION_KERNEL = "rational_quadratic"


@dataclass(frozen=True)
class PredictiveSelection:
    """What :func:`select_predictive_options` chose for a task, and the scores it chose by.

    ``offset_scores``: leave-one-out CRPS [mm/h] per transform offset (each with its best
    variance option, or without re-scaling when none was chosen; empty when the offset was not a
    choice), lowest at the chosen offset. ``variance_scores``: leave-one-out
    CRPS per variance option (``"none"`` or ``"bandwidth B x lengthscale, prior weight W"``) at the
    chosen offset (empty when ``local_variance`` is off). ``fits``: the fit made with the chosen
    transform, by kernel name (for :func:`fit_gaussian_process` to reuse).
    """

    transform: PrecipitationTransform
    local_variance: LocalVarianceScale | None
    offset_scores: dict[float, float]
    variance_scores: dict[str, float]
    fits: dict[str, FittedGaussianProcess]


def spatial_lengthscale_km(fitted: FittedGaussianProcess) -> float:
    """Geometric mean of the fitted x and y lengthscales [km] (the units of the inputs)."""
    lengthscales = fitted.hyperparameters.lengthscale.detach().numpy()[:2] * fitted.input_scale[:2]
    return float(np.sqrt(np.prod(lengthscales)))


def select_predictive_options(
    inputs: np.ndarray, rates: np.ndarray, config: GaussianProcessConfig
) -> PredictiveSelection:
    """The transform offset and local variance scale with the lowest leave-one-out CRPS [mm/h] of the
    contexts.

    For each offset of ``config.offset_candidates`` (log/Box-Cox transforms; otherwise the
    configured transform only): transform the ``[n]`` context ``rates``, fit a GP by marginal
    likelihood (``config.kernel``; :data:`OFFSET_SELECTION_KERNEL` when that is ``"auto"``), and
    score the closed-form leave-one-out predictive distribution of (up to ``selection_points``)
    contexts, back-transformed to mm/h, with the CRPS: a proper score in the units users are
    scored in. With ``config.local_variance`` each offset is scored with its variance as it is and
    re-scaled by every :class:`LocalVarianceScale` of the configured bandwidths (multiples of
    :func:`spatial_lengthscale_km`) and prior weights; the best pair wins, unless its mean gain
    over the best pair without re-scaling is within one standard error of the contexts' paired
    CRPS differences: then that one does (the one-standard-error rule, Hastie, Tibshirani &
    Friedman 2009, "The Elements of Statistical Learning", section 7.10: on few contexts the
    best of many re-scalings otherwise wins by chance). The scale at context
    ``i`` smooths the other contexts' residuals with ``i`` left out too
    (:meth:`FittedGaussianProcess.leave_two_out`): their leave-one-out residuals would share
    ``i``'s value and error, and on a stationary field (where no re-scaling is right) that
    spurious agreement would make the most local smoother win.
    The marginal likelihood itself cannot compare transforms (each lives on its own scale),
    and with many exact zeros its Jacobian correction is ill-defined. Only contexts are used,
    never targets.
    References: Rasmussen & Williams (2006), section 5.4.2 (leave-one-out model selection);
    Gneiting & Raftery (2007), JASA 102, 359 (CRPS).
    """
    base = config.transform
    offsets = tuple(float(offset) for offset in config.offset_candidates) if base.kind != "identity" else ()
    if not offsets and not config.local_variance:
        return PredictiveSelection(base, None, {}, {}, {})
    rng = np.random.default_rng(config.seed)
    scored = (
        rng.choice(len(rates), size=config.selection_points, replace=False)
        if len(rates) > config.selection_points
        else np.arange(len(rates))
    )
    kernel = OFFSET_SELECTION_KERNEL if config.kernel == "auto" else config.kernel
    dry = rates <= 0.0
    censored = (
        dry[scored]
        if config.censored_contexts and base.censor_at_zero and dry.any() and not dry.all()
        else None
    )
    nodes = quantile_nodes(SELECTION_CRPS_NODES)
    pointwise: dict[tuple[float, str], np.ndarray] = {}
    fits: dict[float, FittedGaussianProcess] = {}
    options: dict[float, dict[str, LocalVarianceScale | None]] = {}
    for offset in offsets or (float(base.offset),):
        transform = replace(base, offset=offset)
        values = transform.forward(rates)
        fitted = fits[offset] = fit_kernel(inputs, values, replace(config, transform=transform), kernel)
        options[offset] = {"none": None}
        if config.local_variance:
            length = spatial_lengthscale_km(fitted)
            options[offset].update(
                {
                    f"bandwidth {bandwidth:g} x lengthscale, prior weight {weight:g}": LocalVarianceScale(
                        bandwidth * length, weight
                    )
                    for bandwidth in config.local_variance_bandwidths
                    for weight in config.local_variance_prior_weights
                }
            )
            pair_mean, pair_variance = fitted.leave_two_out(inputs[scored], values[scored])  # [n, n]
            mean, variance = pair_mean.diagonal().copy(), pair_variance.diagonal().copy()  # leave one out
            residuals = squared_residuals(
                values[scored][None, :],
                pair_mean,
                pair_variance,
                None if censored is None else censored[None, :],
                float(transform.forward(0.0)),
            )
            del pair_mean, pair_variance
        else:
            mean, variance = fitted.leave_one_out(inputs[scored], values[scored])
        factors = (
            dict(
                zip(
                    list(options[offset])[1:],
                    left_out_scales(inputs[scored], residuals, list(options[offset].values())[1:]),
                )
            )
            if config.local_variance
            else {}
        )
        for label in options[offset]:
            factor = factors.get(label, 1.0)
            predicted = quantiles(transform, mean, np.sqrt(variance * factor), nodes)  # [n, nodes]
            pointwise[(offset, label)] = crps_ensemble(predicted, rates[scored])  # [n]
    scores = {key: float(values.mean()) for key, values in pointwise.items()}
    offset, label = min(scores, key=scores.__getitem__)
    if (
        label != "none"
    ):  # the one-standard-error rule: re-scaling must beat the best plain option by more than its noise
        plain = min((key for key in scores if key[1] == "none"), key=scores.__getitem__)
        gain = pointwise[plain] - pointwise[(offset, label)]
        if len(gain) < 2 or gain.mean() <= gain.std(ddof=1) / np.sqrt(len(gain)):
            offset, label = plain
    return PredictiveSelection(
        transform=replace(base, offset=offset),
        local_variance=options[offset][label],
        offset_scores={
            candidate: min(
                score
                for (other, name), score in scores.items()
                if other == candidate and (label != "none" or name == "none")
            )
            for candidate in offsets
        },
        variance_scores={name: score for (other, name), score in scores.items() if other == offset}
        if config.local_variance
        else {},
        fits={kernel: fits[offset]},
    )
