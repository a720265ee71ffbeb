"""Score a model's prediction for a task with the verification metrics.

CRPS is evaluated on the back-transformed (censored) predictive distribution in mm/h from
100 equally weighted quantiles (the quantile form of the CRPS, Laio & Tamea 2007, Hydrol.
Earth Syst. Sci. 11, 1267); NLPD is the Gaussian density of the transformed observation;
coverage uses the central intervals of the rate distribution.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from weatherunc import metrics
from weatherunc.tasks import Task
from weatherunc.transforms import PrecipitationTransform, quantile_nodes, quantiles

CRPS_NODES = 100


def transform_of(prediction: xr.Dataset) -> PrecipitationTransform:
    """The transform recorded in a prediction's attributes."""
    attrs = prediction.attrs
    return PrecipitationTransform(kind=attrs["transform"], offset=float(attrs["transform_offset"]), lam=float(attrs["transform_lambda"]), censor_at_zero=bool(attrs["censored_at_zero"]))


def score_prediction(prediction: xr.Dataset, task: Task) -> dict[str, float]:
    """crps, nlpd, rmse, mae, bias, coverage_50/80/90/95 over the task's targets with known truth."""
    transform = transform_of(prediction)
    dim = task.target_dim
    truth = xr.DataArray(task.target_values, dims=dim)
    known = np.isfinite(task.target_values)
    if not known.any():
        raise ValueError("the task has no target with known truth to score")
    mean, std = prediction["transformed_mean"].values, prediction["transformed_std"].values
    nodes = quantiles(transform, mean, std, quantile_nodes(CRPS_NODES))  # [n_target, nodes]
    ensemble = xr.DataArray(nodes, dims=(dim, "sample"))
    gaussian = xr.Dataset({"precipitation_mean": (dim, mean), "precipitation_std": (dim, std)})
    transformed_truth = xr.DataArray(transform.forward(task.target_values), dims=dim)
    scores = {
        "crps": float(metrics.crps_ensemble(ensemble, truth)),
        "nlpd": float(metrics.negative_log_predictive_density(gaussian, transformed_truth)),
        "rmse": float(metrics.root_mean_squared_error(prediction["precipitation_mean"], truth)),
        "mae": float(metrics.mean_absolute_error(prediction["precipitation_mean"], truth)),
        "bias": float(metrics.bias(prediction["precipitation_mean"], truth)),
    }
    for level in (0.5, 0.8, 0.9, 0.95):
        lower, upper = quantiles(transform, mean, std, np.array([0.5 - level / 2, 0.5 + level / 2])).T
        inside = (task.target_values >= lower) & (task.target_values <= upper)
        scores[f"coverage_{round(level * 100)}"] = float(inside[known].mean())
    return scores


def distance_to_nearest_context(task: Task) -> np.ndarray:
    """Distance [km] from each target to its nearest context point, ``[n_target]``."""
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(task.context_coordinates).query(task.target_coordinates, k=1)
    return distance


def scores_by_distance(prediction: xr.Dataset, task: Task, edges_km: tuple[float, ...] = (0, 2, 4, 8, 16, 32, np.inf)) -> xr.Dataset:
    """CRPS, 90 % coverage and count per bin of distance to the nearest context (dim ``distance``,
    labelled by the bin's mean distance; empty bins are NaN)."""
    transform = transform_of(prediction)
    mean, std = prediction["transformed_mean"].values, prediction["transformed_std"].values
    truth = task.target_values
    nodes = quantiles(transform, mean, std, quantile_nodes(CRPS_NODES))
    from weatherunc.metrics.kernels import crps_ensemble as crps_kernel

    crps = crps_kernel(nodes, truth)
    lower, upper = quantiles(transform, mean, std, np.array([0.05, 0.95])).T
    covered = (truth >= lower) & (truth <= upper)
    distance = distance_to_nearest_context(task)
    known = np.isfinite(truth)
    rows = []
    for low, high in zip(edges_km[:-1], edges_km[1:]):
        members = known & (distance >= low) & (distance < high)
        count = int(members.sum())
        rows.append((float(distance[members].mean()) if count else np.nan, float(crps[members].mean()) if count else np.nan, float(covered[members].mean()) if count else np.nan, count))
    centres, crps_values, coverage, counts = (np.array(column) for column in zip(*rows))
    return xr.Dataset(
        {"crps": ("distance", crps_values, {"units": "mm h-1"}), "coverage_90": ("distance", coverage), "count": ("distance", counts), "mean_distance": ("distance", centres, {"units": "km"})},
        coords={"distance": ("distance", np.arange(len(rows))), "distance_lower": ("distance", np.asarray(edges_km[:-1], dtype=float), {"units": "km"}), "distance_upper": ("distance", np.asarray(edges_km[1:], dtype=float), {"units": "km"})},
    )
