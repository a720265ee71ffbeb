"""The output every model returns: a Gaussian in transformed space, back-transformed to mm/h.

Shared by the GP, the baselines and the neural processes, so that their outputs are
interchangeable and scored the same way. The schema itself is
:class:`weatherunc.prediction.Prediction`'s; this module builds it from a task.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.prediction import DEFAULT_QUANTILES, DEFAULT_THRESHOLDS, Prediction
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform

__all__ = ["DEFAULT_QUANTILES", "DEFAULT_THRESHOLDS", "prediction_dataset", "task_prediction", "to_grid"]


def task_prediction(
    task: Task,
    *,
    transformed_mean: np.ndarray,
    latent_variance: np.ndarray,
    noise_variance: np.ndarray | float,
    transform: PrecipitationTransform,
    model: str,
    quantile_levels: Sequence[float] = DEFAULT_QUANTILES,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    attrs: dict[str, object] | None = None,
) -> Prediction:
    """The :class:`~weatherunc.prediction.Prediction` of ``task``'s targets from transformed-space
    moments, each ``[n_target]`` (noise may be a number), on the task's target dim and coordinates.

    The predictive distribution of the observed rate is ``max(g^-1(Z), 0)`` with
    ``Z ~ N(transformed_mean, latent_variance + noise_variance)``. The transform is recorded in
    the attributes and its offset also per target (``transform_offset``), so that predictions
    of tasks with different offsets (e.g. tiles of one frame) stay interpretable when pooled.
    """
    dim = task.target_dim
    return Prediction.from_moments(
        (dim,),
        transformed_mean=transformed_mean,
        latent_variance=latent_variance,
        noise_variance=noise_variance,
        transform=transform,
        model=model,
        description=task.description,
        quantile_levels=quantile_levels,
        thresholds=thresholds,
        coords={name: (dim, values) for name, values in task.target_coords.items()},
        attrs=attrs,
    )


def prediction_dataset(task: Task, **moments: object) -> xr.Dataset:
    """:func:`task_prediction` written as a Dataset (:meth:`~weatherunc.prediction.Prediction.to_dataset`)."""
    return task_prediction(task, **moments).to_dataset()


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
    coords.update(
        {
            dim: prediction[dim]
            for dim in (conventions.QUANTILE, conventions.THRESHOLD)
            if dim in prediction.coords
        }
    )
    return xr.Dataset(out, coords=coords, attrs=prediction.attrs)
