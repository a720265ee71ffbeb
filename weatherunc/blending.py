"""Seam-free tiled maps: overlapping tiles blended as a mixture of their predictive distributions.

A model that predicts a frame tile by tile sees other contexts, and may choose other options, on
each side of a tile edge, and its map jumps there. Here every tile is extended by ``blend_pixels``
into its neighbours (:func:`~weatherunc.tiling.extended_tile`), and each pixel covered by several
tiles gets the mixture of their predictive distributions (a linear opinion pool; Stone 1961, "The
opinion pool", Ann. Math. Stat.), with weights that ramp linearly across each inner tile edge over
``2 * blend_pixels`` pixels and sum to one at every pixel (:func:`ramp_weights`; the feathering of
image mosaics, Szeliski 2006, "Image alignment and stitching: a tutorial", section 6.3). The
mixture's mean, standard deviation, exceedance and bin probabilities follow in closed form; its
quantiles are found by bisection on its distribution function, which lies between the tiles' own
quantiles. Each tile's predictive distribution is ``max(g^-1(Z), 0)`` with ``Z`` Gaussian in its
transformed space (``transformed_mean``, ``transformed_std``, ``transform_offset``).

:func:`predict_blended` blends a whole frame in memory; :func:`predict_blended_tile` gives one
tile's blended block, for callers that write tile by tile.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyproj
import xarray as xr
from scipy import stats
from tqdm import tqdm

from weatherunc import conventions
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.self_calibration import self_calibration_record
from weatherunc.models.registry import Interpolator
from weatherunc.prediction import epistemic_share
from weatherunc.shared_fit import shared_model
from weatherunc.tile_prediction import frame_axes, predict_tile
from weatherunc.tiling import GridTiling, Tile, check_blend_pixels, extended_tile, overlapping_tiles

#: Bisection steps for the mixture's quantiles (the bracket shrinks by 2 ** -steps).
BISECTION_STEPS = 48
#: Tiles that may cover one pixel: the tile and its neighbours differ in row or column parity.
SLOTS = 4
#: The outputs blended, each ``[y, x, ...]``.
BLENDED_VARIABLES = (
    conventions.PRECIPITATION_MEAN,
    conventions.PRECIPITATION_STD,
    conventions.PRECIPITATION_QUANTILE,
    conventions.EXCEEDANCE_PROBABILITY,
    conventions.BIN_PROBABILITY,
)
#: Outputs pooled linearly where a prediction has them (a mixture's is the pool of the tiles'), and
#: the epistemic share of the variance, which :meth:`TileBlender.add` derives from a prediction's
#: latent and noise variance (a blend-weighted mean of the tiles' shares).
POOLED_VARIABLES = (conventions.RAIN_PROBABILITY, conventions.EPISTEMIC_SHARE)


def _ramp(core: slice, extended: slice, size: int, blend_pixels: int) -> np.ndarray:
    index = np.arange(extended.start, extended.stop) + 0.5
    weight = np.ones(index.size)
    if blend_pixels and core.start > 0:
        weight = np.minimum(weight, np.clip((index - (core.start - blend_pixels)) / (2 * blend_pixels), 0, 1))
    if blend_pixels and core.stop < size:
        weight = np.minimum(weight, np.clip((core.stop + blend_pixels - index) / (2 * blend_pixels), 0, 1))
    return weight


def ramp_weights(tile: Tile, shape: tuple[int, int], blend_pixels: int) -> np.ndarray:
    """Weights ``[h, w]`` over :func:`~weatherunc.tiling.extended_tile`'s region: 1 inside the tile
    away from its inner edges, falling linearly to 0 across each inner edge over ``2 *
    blend_pixels`` pixels centred on it. With tiles of :func:`~weatherunc.tiling.grid_tiles` and
    ``blend_pixels`` at most half a tile, the weights of the tiles covering any pixel sum to one."""
    extended = extended_tile(tile, shape, blend_pixels)
    rows = _ramp(tile.rows, extended.rows, shape[0], blend_pixels)
    columns = _ramp(tile.columns, extended.columns, shape[1], blend_pixels)
    return np.outer(rows, columns)


def tile_slot(tile: Tile, tile_pixels: int) -> int:
    """Which of :data:`SLOTS` a tile's outputs go to: neighbouring tiles never share one."""
    return 2 * ((tile.rows.start // tile_pixels) % 2) + (tile.columns.start // tile_pixels) % 2


def _within(span: slice, window: slice) -> slice:
    return slice(
        max(span.start, window.start), max(min(span.stop, window.stop), max(span.start, window.start))
    )


def _shifted(span: slice, origin: int) -> slice:
    return slice(span.start - origin, span.stop - origin)


def _forward(kind: str, lam: float, offset: np.ndarray, rate: np.ndarray) -> np.ndarray:
    if kind == "identity":
        return rate
    if kind == "log":
        return np.log(rate + offset)
    return ((rate + offset) ** lam - 1.0) / lam


class TileBlender:
    """Collects the tiles' predictions of one ``(ny, nx)`` frame and blends them (module docstring).

    :meth:`add` each tile's prediction on its extended region; :meth:`result` gives the blended
    outputs over ``window`` (a region of the frame, by default all of it), each ``[h, w, ...]``
    (NaN where no tile predicted). The parts of a prediction outside ``window`` are left out.
    """

    def __init__(
        self, shape: tuple[int, int], tile_pixels: int, blend_pixels: int, window: Tile | None = None
    ) -> None:
        check_blend_pixels(tile_pixels, blend_pixels)
        self.shape, self.tile_pixels, self.blend_pixels = shape, tile_pixels, blend_pixels
        self.window = Tile(-1, slice(0, shape[0]), slice(0, shape[1])) if window is None else window
        self.size = (
            self.window.rows.stop - self.window.rows.start,
            self.window.columns.stop - self.window.columns.start,
        )
        self.weights = np.zeros((SLOTS, *self.size))
        self.outputs: dict[str, np.ndarray] = {}
        self.transform: tuple[str, float] | None = None
        self.coordinates: dict[str, xr.DataArray] = {}

    def _output(self, name: str, extra: tuple[int, ...]) -> np.ndarray:
        if name not in self.outputs:
            self.outputs[name] = np.zeros((SLOTS, *self.size, *extra))
        return self.outputs[name]

    def add(self, tile: Tile, block: xr.Dataset) -> None:
        """Add the prediction ``block`` (dims ``y``, ``x`` over
        :func:`~weatherunc.tiling.extended_tile`'s region of ``tile``, NaN where not predicted)
        with its :func:`ramp_weights`; where it has a latent and a noise variance, with their
        epistemic share (:func:`~weatherunc.prediction.epistemic_share`)."""
        extended = extended_tile(tile, self.shape, self.blend_pixels)
        kind, lam = str(block.attrs.get("transform", "log")), float(block.attrs.get("transform_lambda", 0.0))
        if self.transform is None:
            self.transform = (kind, lam)
            self.coordinates = {
                key: block[key] for key in block.coords if key not in (conventions.Y, conventions.X)
            }
        elif self.transform != (kind, lam):
            raise ValueError(
                f"tiles of one frame have different transforms: {self.transform} and {(kind, lam)}"
            )
        rows, columns = (
            _within(extended.rows, self.window.rows),
            _within(extended.columns, self.window.columns),
        )
        inside = (_shifted(rows, extended.rows.start), _shifted(columns, extended.columns.start))
        region = (
            tile_slot(tile, self.tile_pixels),
            _shifted(rows, self.window.rows.start),
            _shifted(columns, self.window.columns.start),
        )
        if conventions.LATENT_VARIANCE in block and conventions.NOISE_VARIANCE in block:
            latent, noise = (
                block[name].values for name in (conventions.LATENT_VARIANCE, conventions.NOISE_VARIANCE)
            )
            # no predictive variance at all (not for the shipped models, whose noise is floored) counts
            # as no epistemic share, so that a NaN does not spread through the pool
            share = np.nan_to_num(epistemic_share(latent, noise), nan=0.0)
            block = block.assign({conventions.EPISTEMIC_SHARE: ((conventions.Y, conventions.X), share)})
        predicted = np.isfinite(block[conventions.PRECIPITATION_MEAN].values[inside])
        weights = ramp_weights(tile, self.shape, self.blend_pixels)[inside]
        self.weights[region] = np.where(predicted, weights, 0.0)
        for name in (
            *BLENDED_VARIABLES,
            conventions.TRANSFORMED_MEAN,
            conventions.TRANSFORMED_STD,
            conventions.TRANSFORM_OFFSET,
            *[name for name in POOLED_VARIABLES if name in block],
        ):
            values = block[name].values[inside]
            target = self._output(name, values.shape[2:])
            target[region] = np.where(
                predicted.reshape(*predicted.shape, *[1] * (values.ndim - 2)), values, 0.0
            )

    def result(self) -> dict[str, np.ndarray]:
        """The blended :data:`BLENDED_VARIABLES` (and the :data:`POOLED_VARIABLES` that the
        predictions had) over the window, each ``[h, w, ...]``."""
        total = self.weights.sum(0)
        covered = total > 0
        weights = np.where(covered, self.weights / np.where(covered, total, 1.0), 0.0)

        def pooled(name: str) -> np.ndarray:
            values = self.outputs[name]
            return np.einsum("syx,syx...->yx...", weights, values)

        mean = pooled(conventions.PRECIPITATION_MEAN)
        second = np.einsum(
            "syx,syx->yx",
            weights,
            self.outputs[conventions.PRECIPITATION_STD] ** 2
            + self.outputs[conventions.PRECIPITATION_MEAN] ** 2,
        )
        single = weights.max(0) >= 1.0 - 1e-12  # one tile: its own std, without rounding
        result = {
            conventions.PRECIPITATION_MEAN: mean,
            conventions.PRECIPITATION_STD: np.where(
                single, pooled(conventions.PRECIPITATION_STD), np.sqrt(np.maximum(second - mean**2, 0.0))
            ),
            conventions.EXCEEDANCE_PROBABILITY: pooled(conventions.EXCEEDANCE_PROBABILITY),
            conventions.BIN_PROBABILITY: pooled(conventions.BIN_PROBABILITY),
            conventions.PRECIPITATION_QUANTILE: self._quantiles(weights),
            **{name: pooled(name) for name in POOLED_VARIABLES if name in self.outputs},
        }
        for values in result.values():
            values[~covered] = np.nan
        return result

    def _quantiles(self, weights: np.ndarray) -> np.ndarray:
        """The mixture's quantiles ``[h, w, levels]``: a single tile's where one tile covers the
        pixel, else by bisection between the smallest and largest of the tiles' quantiles."""
        quantiles = self.outputs[conventions.PRECIPITATION_QUANTILE]  # [S, h, w, L]
        single = weights.max(0) >= 1.0 - 1e-12
        result = np.einsum("syx,syxl->yxl", (weights >= 1.0 - 1e-12).astype(float), quantiles)
        mixed = np.nonzero(~single & (weights.sum(0) > 0))
        if mixed[0].size == 0:
            return result
        levels = self.coordinates[conventions.QUANTILE].values  # [L]
        share = weights[:, mixed[0], mixed[1]]  # [S, m]
        active = share > 0
        own = quantiles[:, mixed[0], mixed[1], :]  # [S, m, L]
        low = np.where(active[..., None], own, np.inf).min(0)  # [m, L]
        high = np.where(active[..., None], own, -np.inf).max(0)
        mean = self.outputs[conventions.TRANSFORMED_MEAN][:, mixed[0], mixed[1]][..., None]  # [S, m, 1]
        std = self.outputs[conventions.TRANSFORMED_STD][:, mixed[0], mixed[1]][..., None]
        offset = self.outputs[conventions.TRANSFORM_OFFSET][:, mixed[0], mixed[1]][..., None]
        kind, lam = self.transform
        std = np.where(active[..., None], std, 1.0)
        offset = np.where(active[..., None], offset, 1.0)

        def cdf(rate: np.ndarray) -> np.ndarray:  # the mixture's distribution function [m, L]
            transformed = _forward(kind, lam, offset, np.maximum(rate[None], 0.0))
            return (share[..., None] * stats.norm.cdf((transformed - mean) / std)).sum(0)

        at_low = cdf(low) >= levels  # a point mass at the lower end (e.g. at 0 mm/h) holds the level
        for _step in range(BISECTION_STEPS):
            middle = 0.5 * (low + high)
            below = cdf(middle) < levels
            low, high = np.where(below, middle, low), np.where(below, high, middle)
        result[mixed[0], mixed[1]] = np.where(at_low, np.where(active[..., None], own, np.inf).min(0), high)
        return result


def predict_blended(
    model: Interpolator,
    frame: xr.DataArray,
    *,
    crs: pyproj.CRS | str,
    tiling: GridTiling,
    share_fit: bool = True,
    progress: bool = True,
    records: list[dict[str, object]] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, xr.DataArray]] | None:
    """A ``(y, x)`` frame predicted tile by tile, each tile reaching ``tiling.blend_pixels`` into
    its neighbours, and blended (module docstring): :data:`BLENDED_VARIABLES` ``[ny, nx, ...]``
    (NaN where nothing was predicted) and the coordinates of their extra dims; None when no tile
    had anything to predict. ``share_fit``: a model that fits per task and can share a fit (the
    GP) is fitted once on the frame and every tile uses that fit
    (:func:`weatherunc.shared_fit.shared_model`); False: each tile fits its own. ``records``: a
    list that each self-calibrated tile's record is appended to (its ``self_calibration`` attribute,
    with the tile's number and ``seconds``)."""
    values, x_km, y_km = frame_axes(frame, crs)
    if share_fit:
        model = shared_model(model, values, x_km, y_km, tiling)
    blender = TileBlender(values.shape, tiling.tile_pixels, tiling.blend_pixels)
    predicted = False
    for tile in tqdm(tiling.tiles(values.shape), desc="tiles", disable=not progress, leave=False):
        block = predict_tile(model, values, x_km, y_km, tiling.extended(tile, values.shape), tiling)
        if block is None:
            continue
        record = self_calibration_record(block, tile=tile.number)
        if records is not None and record is not None:
            records.append(record)
        blender.add(tile, with_bin_probabilities(block))
        predicted = True
    return (blender.result(), blender.coordinates) if predicted else None


def predict_blended_tile(
    model: Interpolator,
    values: np.ndarray,
    x_km: np.ndarray,
    y_km: np.ndarray,
    tile: Tile,
    tiling: GridTiling,
    target_mask: np.ndarray | None = None,
    prepare: Callable[[xr.Dataset], xr.Dataset] | None = None,
) -> xr.Dataset | None:
    """The prediction on ``tile``'s ``(y, x)`` block, blended with its neighbours' where
    ``tiling.blend_pixels`` > 0; None when nothing in it is predicted. For a caller that writes
    tile by tile (:func:`weatherunc.gridding.predict_grid_to_zarr`, the batch jobs).

    values ``[ny, nx]`` (NaN = unobserved), x_km ``[nx]``, y_km ``[ny]``, ``target_mask`` (bool
    ``[ny, nx]``) as for :func:`~weatherunc.tile_prediction.predict_tile`; ``prepare`` turns each
    tile's prediction into the one blended or returned (e.g. adds bins and calibrates it).
    Without blending: :func:`~weatherunc.tile_prediction.predict_tile`'s prediction, prepared.
    With blending: each tile whose extended tile reaches ``tile`` (itself and up to 8
    neighbours, :func:`~weatherunc.tiling.overlapping_tiles`) predicts ``tile``'s targets from
    the contexts of its extended tile (as in :func:`predict_blended`), each prediction prepared
    (by default: bin probabilities added), and the :data:`BLENDED_VARIABLES` and
    :data:`POOLED_VARIABLES` are their mixture; the other outputs (the transformed-space moments)
    are ``tile``'s own. Each tile thus costs up to 9 predictions, with memory bounded by a tile.
    """
    if not tiling.blend_pixels:
        block = predict_tile(model, values, x_km, y_km, tile, tiling, target_mask)
        return block if block is None or prepare is None else prepare(block)
    prepare = with_bin_probabilities if prepare is None else prepare
    shape = values.shape
    target_mask = tiling.pixels_to_predict(values, target_mask)
    wanted = np.zeros(shape, dtype=bool)
    wanted[tile.rows, tile.columns] = target_mask[tile.rows, tile.columns]
    blender = TileBlender(shape, tiling.tile_pixels, tiling.blend_pixels, window=tile)
    blocks: dict[int, xr.Dataset] = {}
    for other in overlapping_tiles(tile, shape, tiling):
        extended = tiling.extended(other, shape)
        block = predict_tile(model, values, x_km, y_km, extended, tiling, wanted)
        if block is not None:
            blocks[other.number] = prepare(block)
            blender.add(other, blocks[other.number])
    if not blocks:
        return None
    blended = blender.result()
    own = blocks.get(tile.number)
    source = own if own is not None else next(iter(blocks.values()))
    extended = tiling.extended(tile, shape)
    core = (_shifted(tile.rows, extended.rows.start), _shifted(tile.columns, extended.columns.start))
    height, width = blender.size
    out = {}
    for name, variable in source.data_vars.items():
        if name in blended:
            data = blended[name]
        elif own is not None:
            data = own[name].values[core]
        else:
            data = np.full((height, width, *variable.shape[2:]), np.nan)
        out[name] = (variable.dims, data, variable.attrs)
    coordinates = {name: source[name] for name in source.coords if name not in (conventions.Y, conventions.X)}
    attrs = {**source.attrs, "blend_pixels": tiling.blend_pixels}
    if own is None:  # a neighbour's self-calibration is not this tile's
        attrs = {key: value for key, value in attrs.items() if not key.startswith("self_calibration")}
    return xr.Dataset(out, coords=coordinates, attrs=attrs)
