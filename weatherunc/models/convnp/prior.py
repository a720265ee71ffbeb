"""The GP's predictive distribution as input channels of the convolutional neural process.

With ``config.prior == "gp"`` the network sees, beside the context grids, the quantiles at levels
:data:`PRIOR_LEVELS` of the GP's Gaussian in the transformed space (the GP uses the network's
transform), standardised as the network's values are, and its outputs are corrections of that
prior: the network starts at the GP and learns
what the GP misses (Petersen et al. 2021, "GP-ConvCNP: better generalization for convolutional
conditional neural processes on time series data", UAI, put a GP inside a ConvCNP in the same way).

The GP is evaluated on a coarser grid, every ``stride`` cells, whose quantile grids are
interpolated bilinearly to the network's grid as input channels, and at the targets themselves:
the corrections start from the GP's own prediction at each target, not from an interpolation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import xarray as xr
from scipy import stats
from torch.nn import functional

from weatherunc import conventions
from weatherunc.models.convnp.config import PRIOR_LEVELS, ConvNPConfig
from weatherunc.tasks import Task

#: Standard-normal quantile at 0.9: half the 0.1-0.9 range of a Gaussian is this many stds.
NORMAL_QUANTILE_90 = 1.2815515655446004


def coarse_cells(shape: tuple[int, int], stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices ``[h]``, ``[w]`` of the coarse grid over a ``shape`` grid: every
    ``stride``-th cell from 0, plus the last cell so that the coarse grid spans the whole grid."""
    rows = np.unique(np.append(np.arange(0, shape[0], stride), shape[0] - 1))
    columns = np.unique(np.append(np.arange(0, shape[1], stride), shape[1] - 1))
    return rows, columns


def prior_quantiles(
    predict: Callable[[Task], xr.Dataset],
    config: ConvNPConfig,
    observed: np.ndarray,
    values: np.ndarray,
    stride: int,
    positions: np.ndarray,
    contexts: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The GP's standardised predictive quantiles on the coarse grid of :func:`coarse_cells`,
    ``[len(PRIOR_LEVELS), h, w]``, and at the targets at ``positions`` ``[n, 2]`` (row, column in
    cells), ``[n, len(PRIOR_LEVELS)]`` (both float32), from the context grids ``observed``,
    ``values`` ``[H, W]`` (see :func:`~weatherunc.models.convnp.grids.context_grids`): each
    observed cell is a context at its centre (km from cell (0, 0), ``x`` along columns) with the
    rate its value stands for, unless ``contexts`` gives them exactly: their coordinates ``[m, 2]``
    (x, y in km from the centre of cell (0, 0)) and rates ``[m]`` mm/h.

    ``predict`` is a model's ``predict`` (e.g. a GP interpolator's) returning the prediction
    Dataset with ``precipitation_quantile`` at levels including :data:`PRIOR_LEVELS`.
    """
    rows, columns = np.nonzero(observed > 0)
    if rows.size == 0:
        raise ValueError("prior_quantiles: the context grid 'observed' holds no context")
    rates = np.maximum(
        config.transform.inverse(values[rows, columns] * config.value_scale + config.value_centre), 0.0
    )
    coarse_rows, coarse_columns = coarse_cells(observed.shape, stride)
    grid_rows, grid_columns = np.meshgrid(coarse_rows, coarse_columns, indexing="ij")
    targets = np.concatenate(
        [
            np.stack([grid_columns.ravel(), grid_rows.ravel()], axis=1).astype(np.float64),
            np.asarray(positions, dtype=np.float64)[:, ::-1],
        ]
    )
    coordinates = np.stack([columns, rows], axis=1).astype(np.float64) * config.grid_km
    if contexts is not None:
        coordinates, rates = contexts
    task = Task(
        context_coordinates=np.asarray(coordinates, dtype=np.float64),
        context_values=np.asarray(rates, dtype=np.float64),
        target_coordinates=targets * config.grid_km,
        target_values=np.full(len(targets), np.nan),
        description="prior of the convolutional neural process",
    )
    prediction = predict(task)
    offsets = np.unique(prediction[conventions.TRANSFORM_OFFSET].values)
    if prediction.attrs.get("transform") != config.transform.kind or not np.allclose(
        offsets, config.transform.offset
    ):
        raise ValueError(
            f"prior_quantiles: the prior's transform ({prediction.attrs.get('transform')}, offsets "
            f"{offsets}) is not the network's ({config.transform.kind}, offset {config.transform.offset})"
        )
    levels = stats.norm.ppf(np.asarray(PRIOR_LEVELS))
    transformed = (
        prediction[conventions.TRANSFORMED_MEAN].values[:, None]
        + prediction[conventions.TRANSFORMED_STD].values[:, None] * levels
    )
    standardised = ((transformed - config.value_centre) / config.value_scale).astype(np.float32)
    grids = standardised[: grid_rows.size].T.reshape(len(PRIOR_LEVELS), *grid_rows.shape)
    return grids, standardised[grid_rows.size :]


def upsample_prior(coarse: torch.Tensor, shape: tuple[int, int], stride: int) -> torch.Tensor:
    """Coarse quantile grids ``[batch, C, h, w]`` (on :func:`coarse_cells`) -> ``[batch, C, H, W]``,
    bilinear between coarse cells (exact at them where the coarse grid is regular)."""
    rows, columns = coarse_cells(shape, stride)
    if coarse.shape[-2:] != (rows.size, columns.size):
        raise ValueError(
            f"upsample_prior: coarse grids are {tuple(coarse.shape[-2:])}, the coarse grid of {shape} with "
            f"stride {stride} is {(rows.size, columns.size)}"
        )
    # positions of every fine cell in coarse-cell units: piecewise linear through the coarse cells
    fine_rows = np.interp(np.arange(shape[0]), rows, np.arange(rows.size))
    fine_columns = np.interp(np.arange(shape[1]), columns, np.arange(columns.size))
    y = 2.0 * fine_rows / max(rows.size - 1, 1) - 1.0
    x = 2.0 * fine_columns / max(columns.size - 1, 1) - 1.0
    grid_y, grid_x = np.meshgrid(y, x, indexing="ij")
    grid = torch.as_tensor(np.stack([grid_x, grid_y], axis=-1), dtype=coarse.dtype, device=coarse.device)
    grid = grid[None].expand(coarse.shape[0], -1, -1, -1)
    return functional.grid_sample(coarse, grid, mode="bilinear", padding_mode="border", align_corners=True)


def prior_moments(quantiles: torch.Tensor, minimum_std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std ``[...]`` of the Gaussian whose median and 0.1-0.9 range are those of the
    quantiles ``[..., 3]`` (levels :data:`PRIOR_LEVELS`); the std is at least ``minimum_std``."""
    spread = (quantiles[..., 2] - quantiles[..., 0]) / (2.0 * NORMAL_QUANTILE_90)
    return quantiles[..., 1], spread.clamp_min(minimum_std)
