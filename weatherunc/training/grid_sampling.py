"""Training tasks on the grid for the convolutional neural process, drawn on the fly.

Each task is a square patch of ``patch_cells`` cells of the model's internal grid (``grid_km``)
cut from a radar frame of a :class:`~weatherunc.training.sampling.FrameBank` (any pixel size:
pixels are placed on the grid by their planar coordinates), turned and mirrored at random, its
rates scaled by a log-uniform factor (``intensity_scale``). Part of its observed pixels is hidden
by one of four masks that imitate what gap filling meets (Gordon et al. 2020 train the ConvCNP on
randomly masked images in the same way):

- ``blocks``: 1-4 square gaps of ``block_pixels`` (over rain in ``wet_block_fraction`` of the
  tasks, as the benchmark's gaps are), the contexts in a ring of ``halo_pixels`` around them (or
  everywhere), as in :func:`weatherunc.tasks.masked_blocks`;
- ``gauges``: a sparse random subset of the observed pixels (``gauge_fraction``) is the context,
  as in :func:`weatherunc.tasks.gauge_network`;
- ``coverage``: the no-coverage shape of another frame's window;
- ``wedge``: a sector from a point, as a beam blockage leaves behind a mountain.

Outside the gauges, the contexts are the remaining observed pixels thinned to a log-uniform
``context_keep`` fraction (the benchmark's tasks keep a random 2,000 of a ring). Targets are
``target_points`` hidden pixels (some non-context pixels when few are hidden). Each training step
draws its batch from ``default_rng([seed, step])``, so batches depend on the seed and step only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from weatherunc.metrics.kernels import rate_bin_index
from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.convnp.grids import context_grids, standardise
from weatherunc.tasks import WET_THRESHOLD
from weatherunc.tasks.blocks import BlockRules, SideDraw, cover, place_blocks
from weatherunc.training.convnp_config import GridSamplingOptions
from weatherunc.training.sampling import BankedFrame, FrameBank

MASK_KINDS = ("blocks", "gauges", "coverage", "wedge")


@dataclass
class GridBatch:
    """Tensors of one batch of grid tasks.

    observed, values ``[batch, 1, P, P]`` (context grids, see
    :class:`~weatherunc.models.convnp.model.ConvNP`);
    positions ``[batch, n, 2]`` (row, column in cells); target_values ``[batch, n]`` (standardised
    transformed rate); target_bins ``[batch, n]`` (long); weights ``[batch, n]``; prior
    ``[batch, 3, P, P]`` (the GP prior's quantile grids) and target_prior ``[batch, n, 3]`` (its
    quantiles at the targets) for a model with a prior, else ``None``.
    """

    observed: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor
    target_values: torch.Tensor
    target_bins: torch.Tensor
    weights: torch.Tensor
    prior: torch.Tensor | None = None
    target_prior: torch.Tensor | None = None

    def to(self, device: torch.device) -> GridBatch:
        """The same batch on ``device``."""
        return GridBatch(
            *(
                None if getattr(self, name) is None else getattr(self, name).to(device)
                for name in self.__dataclass_fields__
            )
        )


def _window(
    frame: BankedFrame, options: GridSamplingOptions, config: ConvNPConfig, rng: np.random.Generator
) -> tuple[slice, slice]:
    extent_km = options.patch_cells * config.grid_km
    pixel_x, pixel_y = float(np.abs(np.diff(frame.x_km)).mean()), float(np.abs(np.diff(frame.y_km)).mean())
    ny, nx = frame.values.shape
    height, width = min(ny, int(round(extent_km / pixel_y))), min(nx, int(round(extent_km / pixel_x)))
    top, left = rng.integers(0, ny - height + 1), rng.integers(0, nx - width + 1)
    return slice(top, top + height), slice(left, left + width)


def _blocks(
    rates: np.ndarray, options: GridSamplingOptions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The hidden pixels ``[P, P]`` (bool) of 1-4 blocks in ``rates`` ``[P, P]`` (mm/h), and the
    pixels allowed as contexts (a ring of a random halo around the blocks, or everywhere)."""
    shape = rates.shape
    wet = np.nan_to_num(rates) > WET_THRESHOLD
    over_rain = rng.uniform() < options.wet_block_fraction
    halo = int(rng.integers(options.halo_pixels[0], options.halo_pixels[1] + 1))
    count = int(rng.integers(1, 5))
    # over rain: a block at least 30 % wet where one fits in 20 attempts; blocks may overlap
    rules = BlockRules(attempts=20, attempts_per_block=True, min_wet_fraction=0.3 if over_rain else 0.0)
    side = SideDraw(options.block_pixels, largest=min(shape) - 2)
    blocks = place_blocks(shape, count, side, rules, rng, wet=wet)
    hidden, near = cover(shape, blocks), cover(shape, blocks, halo)
    if rng.uniform() >= options.ring_fraction:
        near[:] = True
    return hidden, near


def _wedge(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    rows, columns = np.indices(shape)
    origin = rng.uniform(-0.5, 1.5, size=2) * np.array(shape)
    angle = np.arctan2(rows - origin[0], columns - origin[1])
    centre = np.arctan2(shape[0] / 2 - origin[0], shape[1] / 2 - origin[1]) + rng.normal(0, 0.3)
    width = np.deg2rad(rng.uniform(5, 40))
    inner = rng.uniform(0, 0.3) * max(shape)
    difference = np.angle(np.exp(1j * (angle - centre)))
    return (np.abs(difference) < width / 2) & (np.hypot(rows - origin[0], columns - origin[1]) > inner)


def _coverage(bank: FrameBank, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray | None:
    for _attempt in range(20):
        other = bank.frames[rng.integers(len(bank.frames))]
        ny, nx = other.values.shape
        if ny < shape[0] or nx < shape[1]:
            continue
        top, left = rng.integers(0, ny - shape[0] + 1), rng.integers(0, nx - shape[1] + 1)
        missing = ~np.isfinite(other.values[top : top + shape[0], left : left + shape[1]])
        if 0.05 <= missing.mean() <= 0.8:
            return missing
    return None


def _log_uniform(bounds: tuple[float, float], rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def draw_task(
    bank: FrameBank,
    config: ConvNPConfig,
    options: GridSamplingOptions,
    rng: np.random.Generator,
    *,
    with_contexts: bool = False,
) -> tuple[np.ndarray, ...]:
    """One grid task: ``observed``, ``values`` ``[P, P]``, ``positions`` ``[n, 2]``, target rates ``[n]``
    (mm/h); ``with_contexts`` also the contexts' exact positions ``[m, 2]`` (row, column in cells,
    before they are placed in cells) and rates ``[m]`` (mm/h)."""
    size, n_target = options.patch_cells, options.target_points
    for _attempt in range(1000):
        frame = bank.frames[rng.integers(len(bank.frames))]
        window = _window(frame, options, config, rng)
        rates = frame.values[window].astype(np.float64)
        observed = np.isfinite(rates)
        if observed.mean() < options.min_observed_fraction:
            continue
        if (
            rng.uniform() >= options.dry_patch_fraction
            and np.mean(rates[observed] > WET_THRESHOLD) < options.min_wet_fraction
        ):
            continue
        kind = MASK_KINDS[
            rng.choice(len(MASK_KINDS), p=np.asarray(options.mask_weights) / sum(options.mask_weights))
        ]
        allowed = np.ones_like(observed)
        if kind == "blocks":
            hidden, allowed = _blocks(rates, options, rng)
        elif kind == "coverage":
            found = _coverage(bank, rates.shape, rng)
            hidden = found if found is not None else _wedge(rates.shape, rng)
        elif kind == "wedge":
            hidden = _wedge(rates.shape, rng)
        else:
            hidden = rng.uniform(size=rates.shape) >= _log_uniform(options.gauge_fraction, rng)
        pool = observed & ~hidden & allowed
        keep = 1.0 if kind == "gauges" else _log_uniform(options.context_keep, rng)
        context = pool & (rng.uniform(size=rates.shape) < keep)
        hidden_targets = np.flatnonzero((observed & hidden).ravel())
        other_targets = np.flatnonzero((observed & ~context & ~hidden).ravel())
        if context.sum() < 3 or hidden_targets.size + other_targets.size < 32:
            continue
        n_hidden = min(n_target, hidden_targets.size) if other_targets.size else n_target
        chosen = np.concatenate(
            [
                rng.choice(hidden_targets, n_hidden, replace=hidden_targets.size < n_hidden)
                if n_hidden
                else np.empty(0, dtype=np.int64),
                rng.choice(
                    other_targets, n_target - n_hidden, replace=other_targets.size < n_target - n_hidden
                )
                if n_target > n_hidden
                else np.empty(0, dtype=np.int64),
            ]
        )
        # planar coordinates of every pixel, centred, turned and mirrored at random
        x_km, y_km = np.meshgrid(frame.x_km[window[1]], frame.y_km[window[0]])
        planar = np.stack([y_km.ravel() - y_km.mean(), x_km.ravel() - x_km.mean()], axis=1)
        if rng.uniform() < 0.5:
            planar = planar[:, ::-1]
        planar = planar * rng.choice([-1.0, 1.0], size=2)
        cells = planar / config.grid_km + (size - 1) / 2.0  # [pixels, 2] (row, column)
        scale = _log_uniform(options.intensity_scale, rng)
        flat_rates = rates.ravel() * scale
        context_index = np.flatnonzero(context.ravel())
        rounded = np.rint(cells[context_index]).astype(np.int64)
        inside = np.all((rounded >= 0) & (rounded < size), axis=1)
        grid_observed, grid_values = context_grids(
            config, rounded[inside, 0], rounded[inside, 1], flat_rates[context_index[inside]], (size, size)
        )
        drawn = (
            grid_observed,
            grid_values,
            np.clip(cells[chosen], 0, size - 1).astype(np.float32),
            flat_rates[chosen],
        )
        if with_contexts:  # the contexts' exact positions (row, column in cells) and rates
            return *drawn, cells[context_index[inside]], flat_rates[context_index[inside]]
        return drawn
    raise RuntimeError(
        "could not draw a grid training task in 1000 attempts (too little observed or wet data in the frame "
        "bank)"
    )


def sample_grid_batch(
    bank: FrameBank,
    config: ConvNPConfig,
    options: GridSamplingOptions,
    batch_size: int,
    rng: np.random.Generator,
) -> GridBatch:
    """A batch of ``batch_size`` tasks drawn by :func:`draw_task`."""
    tasks = [draw_task(bank, config, options, rng) for _ in range(batch_size)]
    observed, values, positions, rates = (np.stack(part) for part in zip(*tasks))
    return GridBatch(
        observed=torch.as_tensor(observed)[:, None],
        values=torch.as_tensor(values)[:, None],
        positions=torch.as_tensor(positions),
        target_values=torch.as_tensor(standardise(config, rates)),
        target_bins=torch.as_tensor(rate_bin_index(rates, config.bin_edges)),
        weights=torch.ones(rates.shape, dtype=torch.float32),
    )
