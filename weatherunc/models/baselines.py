"""Baselines scored on the same tasks as the GP: ordinary kriging, inverse distance, climatology.

Each works on the transformed rate and returns a Gaussian there, back-transformed by
:func:`weatherunc.models.predictive.prediction_dataset` exactly like the GP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from weatherunc.models.predictive import prediction_dataset
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform

#: Variance floor [transformed units^2] so that a prediction at a context site keeps std > 0.
VARIANCE_FLOOR = 1e-10
# : Fewest contexts ordinary kriging accepts: two give one pair, too few to fit a variogram (nugget, sill,
# range).
MINIMUM_KRIGING_CONTEXTS = 3


@dataclass(frozen=True)
class ClimatologyInterpolator:
    """The same Gaussian everywhere: mean and variance of the transformed context values."""

    transform: PrecipitationTransform = field(default_factory=PrecipitationTransform)
    name: str = "climatology"

    def predict(self, task: Task) -> xr.Dataset:
        """Prediction Dataset; latent variance is the sampling variance of the mean."""
        start = time.perf_counter()
        values = self.transform.forward(task.context_values)
        variance = max(float(values.var(ddof=1)) if values.size > 1 else 0.0, VARIANCE_FLOOR)
        return prediction_dataset(
            task,
            transformed_mean=np.full(task.n_target, values.mean()),
            latent_variance=np.full(task.n_target, variance / values.size),
            noise_variance=variance,
            transform=self.transform,
            model=self.name,
            attrs={"fit_seconds": time.perf_counter() - start, "predict_seconds": 0.0},
        )


@dataclass(frozen=True)
class InverseDistanceInterpolator:
    """Inverse-distance weighting (Shepard 1968) over the ``neighbours`` nearest contexts.

    Its spread is the leave-one-out mean squared error of the same scheme on the contexts.
    """

    transform: PrecipitationTransform = field(default_factory=PrecipitationTransform)
    power: float = 2.0
    neighbours: int = 16
    name: str = "idw"

    def _interpolate(
        self, tree: cKDTree, values: np.ndarray, points: np.ndarray, skip_self: bool
    ) -> np.ndarray:
        count = min(self.neighbours + int(skip_self), len(values))
        distance, index = tree.query(points, k=count)
        distance, index = distance.reshape(len(points), count), index.reshape(len(points), count)
        if skip_self:
            distance, index = distance[:, 1:], index[:, 1:]
        weights = 1.0 / np.maximum(distance, 1e-9) ** self.power  # [n_points, k]
        return (weights * values[index]).sum(axis=1) / weights.sum(axis=1)

    def predict(self, task: Task) -> xr.Dataset:
        """Prediction Dataset over the task's targets."""
        values = self.transform.forward(task.context_values)
        start = time.perf_counter()
        tree = cKDTree(task.context_coordinates)
        if len(values) > 1:
            leave_one_out = self._interpolate(tree, values, task.context_coordinates, skip_self=True)
            variance = max(float(np.mean((leave_one_out - values) ** 2)), VARIANCE_FLOOR)
        else:
            variance = 1.0
        fitted_at = time.perf_counter()
        mean = self._interpolate(tree, values, task.target_coordinates, skip_self=False)
        predicted_at = time.perf_counter()
        return prediction_dataset(
            task,
            transformed_mean=mean,
            latent_variance=np.zeros(task.n_target),
            noise_variance=variance,
            transform=self.transform,
            model=self.name,
            attrs={
                "power": self.power,
                "neighbours": self.neighbours,
                "fit_seconds": fitted_at - start,
                "predict_seconds": predicted_at - fitted_at,
            },
        )


@dataclass(frozen=True)
class OrdinaryKrigingInterpolator:
    """Ordinary kriging with PyKrige: variogram fitted to the contexts, kriging variance as spread.

    Exponential or spherical variograms (PyKrige's Gaussian variogram auto-fits a zero nugget and
    goes singular). Above ``moving_window`` contexts each target uses its nearest ones.
    A task with fewer than :data:`MINIMUM_KRIGING_CONTEXTS` contexts (``minimum_contexts``) raises
    ``ValueError``: no
    variogram can be fitted to it, and a fallback would report a spread it has no basis for
    (one context gave a standard deviation of 1e-5). A constant field (every context value
    equal) is predicted by :class:`ClimatologyInterpolator`.
    Reference: Cressie (1993), "Statistics for Spatial Data", section 3.2; Murphy et al., PyKrige.
    """

    transform: PrecipitationTransform = field(default_factory=PrecipitationTransform)
    variogram_model: Literal["exponential", "spherical"] = "exponential"
    nlags: int = 12
    moving_window: int = 3000
    window_points: int = 200
    name: str = "kriging"
    minimum_contexts: ClassVar[int] = MINIMUM_KRIGING_CONTEXTS

    def predict(self, task: Task) -> xr.Dataset:
        """Prediction Dataset over the task's targets."""
        from pykrige.ok import OrdinaryKriging

        if task.n_context < MINIMUM_KRIGING_CONTEXTS:
            raise ValueError(
                f"kriging needs at least {MINIMUM_KRIGING_CONTEXTS} contexts to fit a variogram, got "
                f"{task.n_context}"
            )
        values = self.transform.forward(task.context_values)
        if np.ptp(values) == 0:  # PyKrige cannot fit a variogram to a constant field
            return ClimatologyInterpolator(self.transform, name=self.name).predict(task)
        context, target = task.context_coordinates, task.target_coordinates
        start = time.perf_counter()
        kriging = OrdinaryKriging(
            context[:, 0],
            context[:, 1],
            values,
            variogram_model=self.variogram_model,
            nlags=self.nlags,
            enable_plotting=False,
            verbose=False,
        )
        options = (
            {"backend": "loop", "n_closest_points": self.window_points}
            if len(values) > self.moving_window
            else {"backend": "vectorized"}
        )
        fitted_at = time.perf_counter()
        mean, variance = kriging.execute("points", target[:, 0], target[:, 1], **options)
        predicted_at = time.perf_counter()
        return prediction_dataset(
            task,
            transformed_mean=np.asarray(mean, dtype=np.float64),
            latent_variance=np.maximum(np.asarray(variance, dtype=np.float64), 0.0),
            noise_variance=VARIANCE_FLOOR,
            transform=self.transform,
            model=self.name,
            attrs={
                "variogram_model": self.variogram_model,
                "variogram_parameters": [float(p) for p in kriging.variogram_model_parameters],
                "fit_seconds": fitted_at - start,
                "predict_seconds": predicted_at - fitted_at,
            },
        )
