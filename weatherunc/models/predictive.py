"""The output every model returns: a Gaussian in transformed space, back-transformed to mm/h.

Shared by the GP, the baselines and the neural processes, so that their outputs are
interchangeable and scored the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform, exceedance_probability, moments, quantiles

DEFAULT_QUANTILES = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)
DEFAULT_THRESHOLDS = (0.1, 1.0, 5.0, 10.0)


def prediction_dataset(
    task: Task,
    *,
    transformed_mean: np.ndarray,
    latent_variance: np.ndarray,
    noise_variance: np.ndarray,
    transform: PrecipitationTransform,
    model: str,
    quantile_levels: Sequence[float] = DEFAULT_QUANTILES,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    attrs: dict[str, object] | None = None,
) -> xr.Dataset:
    """Build the prediction Dataset from transformed-space moments, each ``[n_target]``.

    The predictive distribution of the observed rate is ``max(g^-1(Z), 0)`` with
    ``Z ~ N(transformed_mean, latent_variance + noise_variance)``. The transform is recorded in
    the attributes and its offset also per target (``transform_offset``), so that predictions
    of tasks with different offsets (e.g. tiles of one frame) stay interpretable when pooled.
    """
    latent_variance = np.maximum(np.asarray(latent_variance, dtype=np.float64), 0.0)
    noise_variance = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), latent_variance.shape)
    transformed_std = np.sqrt(latent_variance + noise_variance)
    if not np.all(transformed_std > 0):
        raise FloatingPointError(f"{model}: predictive standard deviation must be > 0 everywhere")
    levels = np.asarray(quantile_levels, dtype=np.float64)
    limits = np.asarray(thresholds, dtype=np.float64)
    mean, std = moments(transform, transformed_mean, transformed_std)
    dim = task.target_dim
    rate = {"units": conventions.PRECIPITATION_UNITS}
    dataset = xr.Dataset(
        {
            "precipitation_mean": (dim, mean, {**rate, "long_name": "predictive mean of precipitation rate"}),
            "precipitation_std": (
                dim,
                std,
                {**rate, "long_name": "predictive standard deviation of precipitation rate"},
            ),
            "precipitation_quantile": (
                (dim, "quantile"),
                quantiles(transform, transformed_mean, transformed_std, levels),
                {**rate, "long_name": "predictive quantiles of precipitation rate"},
            ),
            "exceedance_probability": (
                (dim, "threshold"),
                exceedance_probability(transform, transformed_mean, transformed_std, limits),
                {"units": "1", "long_name": "P(precipitation rate > threshold)"},
            ),
            "transformed_mean": (
                dim,
                transformed_mean,
                {"long_name": "predictive mean of the transformed rate"},
            ),
            "transformed_std": (
                dim,
                transformed_std,
                {"long_name": "predictive standard deviation of the transformed rate (latent and noise)"},
            ),
            "latent_variance": (
                dim,
                latent_variance,
                {"long_name": "epistemic (latent) variance of the transformed rate"},
            ),
            "noise_variance": (
                dim,
                np.array(noise_variance),
                {"long_name": "aleatoric (noise) variance of the transformed rate"},
            ),
            "transform_offset": (
                dim,
                np.full(latent_variance.shape, float(transform.offset)),
                {**rate, "long_name": "offset of the transform of the rate (models may choose it per task)"},
            ),
        },
        coords={
            "quantile": ("quantile", levels, {"long_name": "probability level"}),
            "threshold": ("threshold", limits, {**rate, "long_name": "precipitation rate threshold"}),
            **{name: (dim, values) for name, values in task.target_coords.items()},
        },
        attrs={"model": model, "task": task.description, **transform.to_attrs(), **(attrs or {})},
    )
    return dataset


def to_grid(prediction: xr.Dataset, template: xr.DataArray) -> xr.Dataset:
    """Scatter a grid task's prediction (coords ``row``, ``column``) onto ``template``'s (y, x).

    Pixels that were not targets are NaN.
    """
    ny, nx = template.shape
    rows, columns = prediction["row"].values, prediction["column"].values
    out = {}
    for name, variable in prediction.data_vars.items():
        extra = [dim for dim in variable.dims if dim != "target"]
        shape = (ny, nx, *[prediction.sizes[dim] for dim in extra])
        grid = np.full(shape, np.nan)
        grid[rows, columns] = variable.transpose("target", *extra).values
        out[name] = ((conventions.Y, conventions.X, *extra), grid, variable.attrs)
    coords = {conventions.Y: template[conventions.Y], conventions.X: template[conventions.X]}
    coords.update({dim: prediction[dim] for dim in ("quantile", "threshold") if dim in prediction.coords})
    return xr.Dataset(out, coords=coords, attrs=prediction.attrs)
