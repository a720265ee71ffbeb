"""One fit per frame: the tiles of a frame share the options and hyperparameters of one fit.

A model that fits per task (the GP: transform offset, kernel, lengthscales, local variance
scale) fitted on each tile on its own gives each tile a different map character, and the map
changes where tiles meet; it also pays the fit once per tile. Here such a model
(:class:`~weatherunc.models.interface.SharesFit`) is fitted once on the frame's contexts near its
targets (:func:`frame_task`: the observed pixels within ``tiling.halo_pixels`` of any pixel to
predict, a seeded random subset of at most ``tiling.max_context``), and every tile then only
conditions on its own contexts with that fit. This is the stationary model of the frame's
neighbourhood of the gaps (one set of covariance parameters for the map, as one variogram per map
in kriging; Cressie 1993, "Statistics for Spatial Data"), while each tile keeps its local data.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from weatherunc.models.interface import Interpolator, SharesFit
from weatherunc.tasks import Task
from weatherunc.tiling import GridTiling

#: Random stream of the frame task's context subset, apart from the tiles' (numbered from 0).
FRAME_STREAM = 2**32 - 1


def frame_task(
    values: np.ndarray,
    x_km: np.ndarray,
    y_km: np.ndarray,
    tiling: GridTiling,
    target_mask: np.ndarray | None = None,
) -> Task | None:
    """The task a frame's shared fit is made on; None when no pixel is to be predicted or no
    observed pixel lies within ``tiling.halo_pixels`` of one.

    values ``[ny, nx]`` (NaN = unobserved), x_km ``[nx]``, y_km ``[ny]``; ``target_mask`` (bool
    ``[ny, nx]``) names the pixels to predict, else ``tiling.targets`` decides (as for a tile,
    :func:`weatherunc.tile_prediction.tile_task`). Contexts: observed pixels within ``halo_pixels``
    (Chebyshev distance, in pixels) of a target, at most ``tiling.max_context`` of them (a random
    subset seeded by ``tiling.seed``); targets: the pixels to predict.
    """
    observed = np.isfinite(values)
    wanted = tiling.pixels_to_predict(values, target_mask)
    if not wanted.any():
        return None
    near = ndimage.maximum_filter(wanted.astype(np.uint8), size=2 * tiling.halo_pixels + 1, mode="constant")
    context_rows, context_columns = np.nonzero(observed & (near > 0))
    if context_rows.size == 0:
        return None
    if context_rows.size > tiling.max_context:
        rng = np.random.default_rng([tiling.seed, FRAME_STREAM])
        keep = np.sort(rng.choice(context_rows.size, tiling.max_context, replace=False))
        context_rows, context_columns = context_rows[keep], context_columns[keep]
    target_rows, target_columns = np.nonzero(wanted)
    return Task(
        context_coordinates=np.stack([x_km[context_columns], y_km[context_rows]], axis=1),
        context_values=values[context_rows, context_columns].astype(np.float64),
        target_coordinates=np.stack([x_km[target_columns], y_km[target_rows]], axis=1),
        target_values=values[target_rows, target_columns].astype(np.float64),
        description=(
            f"the frame's {context_rows.size} contexts within {tiling.halo_pixels} px of its "
            f"{target_rows.size} targets"
        ),
    )


def shared_model(
    model: Interpolator,
    values: np.ndarray,
    x_km: np.ndarray,
    y_km: np.ndarray,
    tiling: GridTiling,
    target_mask: np.ndarray | None = None,
) -> Interpolator:
    """``model`` fitted once on the frame (:func:`frame_task`) when it can share a fit
    (:class:`~weatherunc.models.interface.SharesFit`), else ``model`` itself (it fits per tile,
    or has nothing to fit). Arguments as for :func:`frame_task`."""
    if not isinstance(model, SharesFit):
        return model
    task = frame_task(values, x_km, y_km, tiling, target_mask)
    return model if task is None else model.shared_fit(task)
