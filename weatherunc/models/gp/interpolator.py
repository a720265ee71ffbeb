"""The GP interpolator: per task, choose the options, fit, and predict every target (exact or tile by
tile); or fit once and share that fit across tasks (the tiles of one frame)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr

from weatherunc.models.gp.algebra import FittedGaussianProcess, VarianceEvidence
from weatherunc.models.gp.config import GaussianProcessConfig
from weatherunc.models.gp.fitting import fit_gaussian_process
from weatherunc.models.gp.selection import PredictiveSelection, select_predictive_options
from weatherunc.models.gp.small_network import blocked_variance_factor, is_small_network, small_network_config
from weatherunc.models.predictive import prediction_dataset
from weatherunc.tasks import Task, tile_groups


def _inputs(coordinates: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
    """GP inputs ``[n, d]``: coordinates ``[n, 2]`` [km], then covariates ``[n, c]`` if any."""
    return coordinates if covariates is None else np.hstack([coordinates, covariates])


@dataclass(frozen=True)
class GaussianProcessFit:
    """What fitting one task chose: the transform offset and local variance scale (``selection``,
    :func:`select_predictive_options`), the kernel and its hyperparameters (``fitted``,
    :func:`fit_gaussian_process`), the configuration with the chosen transform, and the fit's
    wall time [s]. ``source``: the task it was fitted on (its description). ``small_network``:
    fitted with the small-network options (:mod:`weatherunc.models.gp.small_network`), and
    ``variance_factor`` the leave-block-out variance factor then applied to the predictive
    variances (:func:`~weatherunc.models.gp.small_network.blocked_variance_factor`; ``None``:
    none). ``evidence``: the variance scale and leave-one-out residuals of the fitted task's
    contexts (:func:`frame_evidence`), used by every task predicted with the fit instead of
    their own (``None``: each task re-estimates them on its own contexts)."""

    selection: PredictiveSelection
    fitted: FittedGaussianProcess
    config: GaussianProcessConfig
    seconds: float
    source: str = ""
    small_network: bool = False
    variance_factor: float | None = None
    evidence: VarianceEvidence | None = None


def fit_task(task: Task, config: GaussianProcessConfig) -> GaussianProcessFit:
    """Choose the transform offset and local variance scale, then the kernel and hyperparameters, on
    ``task``'s contexts only (never its targets).

    Fewer than ``config.small_network_contexts`` contexts: with the small-network options
    (:func:`~weatherunc.models.gp.small_network.small_network_config`) and the variance factor of
    leave-block-out cross-validation of the contexts.
    """
    start = time.perf_counter()
    small = is_small_network(task.n_context, config)
    if small:
        config = small_network_config(config)
    context = _inputs(task.context_coordinates, task.context_covariates)
    rates = np.asarray(task.context_values, dtype=np.float64)
    selection = select_predictive_options(context, rates, config)
    config = replace(config, transform=selection.transform)
    values = selection.transform.forward(rates)
    fitted = fit_gaussian_process(context, values, config, fitted=selection.fits)
    factor = (
        blocked_variance_factor(
            fitted, context, values, config.small_network_blocks, rule=config.small_network_variance_rule
        )
        if small and config.small_network_blocks
        else None
    )
    return GaussianProcessFit(
        selection, fitted, config, time.perf_counter() - start, task.description, small, factor
    )


def _censoring(rates: np.ndarray, config: GaussianProcessConfig) -> np.ndarray | None:
    """The dry contexts ``[n]`` (bool) that are censored at the transform's zero, or ``None`` when none is
    (censoring off, a transform without it, or all or none of the contexts dry)."""
    dry = np.asarray(rates) <= 0.0
    censoring = (
        config.censored_contexts
        and config.transform.censor_at_zero
        and bool(dry.any())
        and not bool(dry.all())
    )
    return dry if censoring else None


def frame_evidence(task: Task, fit: GaussianProcessFit) -> GaussianProcessFit:
    """``fit`` with the variance scale and the leave-one-out residuals of ``task``'s contexts
    (:meth:`FittedGaussianProcess.variance_evidence`; the first ``config.max_exact_context`` of them)
    attached, for every task predicted with it to share.

    Each tile of a frame otherwise re-estimates both on its own contexts. With hyperparameters
    chosen on the frame, a tile whose contexts the frame's model fits badly (a nearly dry tile
    with a few isolated wet pixels) then scales its variance by its worst residuals, and the
    back-transformed mean of that wide a log-rate distribution explodes. One variance field per
    frame keeps the model the frame was fitted as, and leaves no seam in the variance.
    """
    config = fit.config
    keep = slice(0, config.max_exact_context)
    context = _inputs(task.context_coordinates, task.context_covariates)[keep]
    rates = np.asarray(task.context_values, dtype=np.float64)[keep]
    evidence = fit.fitted.variance_evidence(
        context,
        config.transform.forward(rates),
        censored=_censoring(rates, config),
        bound=float(config.transform.forward(0.0)),
    )
    return replace(fit, evidence=evidence)


def predict_with_fit(task: Task, fit: GaussianProcessFit, *, name: str, shared: bool) -> xr.Dataset:
    """Prediction Dataset over ``task``'s targets (see :func:`prediction_dataset`), conditioned on its
    contexts with the options and hyperparameters of ``fit`` (the variance scale and the local
    variance re-estimated on these contexts, :meth:`FittedGaussianProcess.predict`, unless ``fit``
    carries them: :func:`frame_evidence`; sites of that evidence among ``task``'s targets, pixels
    hidden to be predicted, are then left out of it: :meth:`VarianceEvidence.without`).

    Up to ``config.max_exact_context`` contexts: one Cholesky factorisation over all of them; else the
    targets tile by tile from the nearest contexts (local exact GPs with the same hyperparameters).
    ``shared``: the fit was made once for several tasks (recorded in the attributes, with no fit
    time charged to this task).
    """
    config, fitted, selection = fit.config, fit.fitted, fit.selection
    transform = config.transform
    start = time.perf_counter()
    context = _inputs(task.context_coordinates, task.context_covariates)
    targets = _inputs(task.target_coordinates, task.target_covariates)
    values = transform.forward(task.context_values)
    censored = _censoring(task.context_values, config)  # [n] bool, or None
    evidence = fit.evidence.without(targets) if fit.evidence is not None else None

    def conditioned(
        chosen: np.ndarray, members: np.ndarray, number: int
    ) -> tuple[np.ndarray, np.ndarray, float]:
        return fitted.predict(
            context[chosen],
            values[chosen],
            targets[members],
            config.target_batch,
            censored=censored[chosen] if censored is not None else None,
            bound=float(transform.forward(0.0)),
            samples=config.censored_samples,
            burn_in=config.censored_burn_in,
            rng=np.random.default_rng([config.seed, number]),
            local_variance=selection.local_variance,
            evidence=evidence,
        )

    if task.n_context <= config.max_exact_context:
        mean, latent, noise = conditioned(np.arange(task.n_context), np.arange(task.n_target), 0)
        method = "exact"
    else:
        mean, latent, noise = np.empty(task.n_target), np.empty(task.n_target), np.empty(task.n_target)
        for number, members in enumerate(tile_groups(targets, config.tile_km).values()):
            centre = targets[members, :2].mean(axis=0)
            distance = np.linalg.norm(context[:, :2] - centre, axis=1)
            if len(distance) > config.max_local_context:
                nearest = np.argpartition(distance, config.max_local_context)[: config.max_local_context]
            else:
                nearest = np.arange(len(distance))
            mean[members], latent[members], noise[members] = conditioned(nearest, members, number)
        method = f"tiled local ({config.tile_km:g} km tiles, {config.max_local_context} nearest contexts)"
    if fit.variance_factor is not None:
        latent, noise = latent * fit.variance_factor, noise * fit.variance_factor
    hyperparameters = fitted.hyperparameters
    lengthscales = hyperparameters.lengthscale.detach().numpy() * fitted.input_scale
    return prediction_dataset(
        task,
        transformed_mean=mean,
        latent_variance=latent,
        noise_variance=noise,
        transform=transform,
        model=name,
        attrs={
            "kernel": fitted.kernel_name,
            "kernel_selection": config.kernel,
            "prediction": method,
            "hyperparameters": f"shared, fitted once on {fit.source or 'another task'}"
            if shared
            else "per task",
            "lengthscales_km": lengthscales.tolist(),
            "fitted_outputscale": float(hyperparameters.outputscale.detach()) * fitted.output_scale**2,
            "fitted_noise_variance": fitted.noise * fitted.output_scale**2,
            "fit_seconds": 0.0 if shared else fit.seconds,
            "variance_estimated_on": fit.source if fit.evidence is not None else "this task's contexts",
            **({"small_network": 1} if fit.small_network else {}),
            **(
                {
                    "blocked_variance_factor": fit.variance_factor,
                    "blocked_variance_rule": fit.config.small_network_variance_rule,
                }
                if fit.variance_factor is not None
                else {}
            ),
            "predict_seconds": time.perf_counter() - start,
            "censored_contexts": int(censored.sum()) if censored is not None else 0,
            **(
                {
                    "censored_gibbs_samples": config.censored_samples,
                    "censored_gibbs_burn_in": config.censored_burn_in,
                }
                if censored is not None
                else {}
            ),
            **(
                {
                    "transform_offset_selection": "leave-one-out CRPS of the contexts",
                    "transform_offset_candidates": list(selection.offset_scores),
                    "transform_offset_loo_crps": list(selection.offset_scores.values()),
                }
                if selection.offset_scores
                else {}
            ),
            **(
                {
                    "local_variance_candidates": list(selection.variance_scores),
                    "local_variance_loo_crps": list(selection.variance_scores.values()),
                    "local_variance": "none"
                    if selection.local_variance is None
                    else "leave-one-out residuals",
                }
                if selection.variance_scores
                else {}
            ),
            **(selection.local_variance.to_attrs() if selection.local_variance is not None else {}),
        },
    )


@dataclass(frozen=True)
class GaussianProcessInterpolator:
    """Fits a GP per task and predicts every target; see :mod:`weatherunc.models.gp`."""

    config: GaussianProcessConfig = field(default_factory=GaussianProcessConfig)
    name: str = "gp"

    def __post_init__(self) -> None:
        """A mapping for ``config`` (a job's YAML) is read by :meth:`GaussianProcessConfig.from_options`."""
        if isinstance(self.config, Mapping):
            object.__setattr__(self, "config", GaussianProcessConfig.from_options(self.config))
        elif not isinstance(self.config, GaussianProcessConfig):
            raise TypeError(
                f"config must be a GaussianProcessConfig or a mapping, got {type(self.config).__name__}"
            )

    def predict(self, task: Task) -> xr.Dataset:
        """Prediction Dataset over the task's targets (see :func:`prediction_dataset`), with options and
        hyperparameters fitted on this task's contexts."""
        return predict_with_fit(task, fit_task(task, self.config), name=self.name, shared=False)

    def predict_sharing_fit(self, task: Task) -> tuple[xr.Dataset, SharedFitGaussianProcess]:
        """:meth:`predict`'s prediction of ``task`` and a GP that predicts other tasks with the same
        fit, made once (self-calibration predicts ``task``'s pseudo-tasks with it, so that they cost
        a conditioning each, not a fit)."""
        fit = fit_task(task, self.config)
        return predict_with_fit(task, fit, name=self.name, shared=False), SharedFitGaussianProcess(
            fit, self.name
        )

    def shared_fit(self, task: Task) -> SharedFitGaussianProcess:
        """A GP fitted once on ``task``'s contexts whose options and hyperparameters every task it
        predicts shares (e.g. the tiles of one frame: no tile chooses its own kernel, offset or
        lengthscales, so the map does not change character where tiles meet), and with them the
        variance scale and local variance field of ``task``'s contexts (:func:`frame_evidence`)."""
        return SharedFitGaussianProcess(frame_evidence(task, fit_task(task, self.config)), self.name)


@dataclass(frozen=True)
class SharedFitGaussianProcess:
    """A GP with one fit (:class:`GaussianProcessFit`) shared by every task it predicts: per task it
    only conditions on the task's contexts (:func:`predict_with_fit`)."""

    fit: GaussianProcessFit
    name: str = "gp"

    def predict(self, task: Task) -> xr.Dataset:
        """Prediction Dataset over the task's targets with the shared fit."""
        return predict_with_fit(task, self.fit, name=self.name, shared=True)
