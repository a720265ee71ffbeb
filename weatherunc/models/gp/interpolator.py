"""The GP interpolator: per task, choose the options, fit, and predict every target (exact or tile by
tile)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr

from weatherunc.models.gp.config import GaussianProcessConfig
from weatherunc.models.gp.fitting import fit_gaussian_process
from weatherunc.models.gp.selection import select_predictive_options
from weatherunc.models.predictive import prediction_dataset
from weatherunc.tasks import Task, tile_groups


@dataclass(frozen=True)
class GaussianProcessInterpolator:
    """Fits a GP per task and predicts every target; see :mod:`weatherunc.models.gp`."""

    config: GaussianProcessConfig = field(default_factory=GaussianProcessConfig)
    name: str = "gp"

    def predict(self, task: Task) -> xr.Dataset:
        """Prediction Dataset over the task's targets (see :func:`prediction_dataset`)."""
        config = self.config
        context = (
            task.context_coordinates
            if task.context_covariates is None
            else np.hstack([task.context_coordinates, task.context_covariates])
        )
        targets = (
            task.target_coordinates
            if task.target_covariates is None
            else np.hstack([task.target_coordinates, task.target_covariates])
        )
        start = time.perf_counter()
        selection = select_predictive_options(
            context, np.asarray(task.context_values, dtype=np.float64), config
        )
        transform = selection.transform
        config = replace(config, transform=transform)
        values = transform.forward(task.context_values)
        fitted = fit_gaussian_process(context, values, config, fitted=selection.fits)
        fitted_at = time.perf_counter()
        dry = np.asarray(task.context_values) <= 0.0
        censoring = (
            config.censored_contexts and transform.censor_at_zero and bool(dry.any()) and not bool(dry.all())
        )

        def conditioned(
            chosen: np.ndarray, members: np.ndarray, number: int
        ) -> tuple[np.ndarray, np.ndarray, float]:
            return fitted.predict(
                context[chosen],
                values[chosen],
                targets[members],
                config.target_batch,
                censored=dry[chosen] if censoring else None,
                bound=float(transform.forward(0.0)),
                samples=config.censored_samples,
                burn_in=config.censored_burn_in,
                rng=np.random.default_rng([config.seed, number]),
                local_variance=selection.local_variance,
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
        predicted_at = time.perf_counter()
        lengthscales = fitted.kernel.base_kernel.lengthscale.detach().numpy().ravel() * fitted.input_scale
        return prediction_dataset(
            task,
            transformed_mean=mean,
            latent_variance=latent,
            noise_variance=noise,
            transform=config.transform,
            model=self.name,
            attrs={
                "kernel": fitted.kernel_name,
                "kernel_selection": config.kernel,
                "prediction": method,
                "lengthscales_km": lengthscales.tolist(),
                "fitted_outputscale": float(fitted.kernel.outputscale.detach()) * fitted.output_scale**2,
                "fitted_noise_variance": fitted.noise * fitted.output_scale**2,
                "fit_seconds": fitted_at - start,
                "predict_seconds": predicted_at - fitted_at,
                "censored_contexts": int(dry.sum()) if censoring else 0,
                **(
                    {
                        "censored_gibbs_samples": config.censored_samples,
                        "censored_gibbs_burn_in": config.censored_burn_in,
                    }
                    if censoring
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
