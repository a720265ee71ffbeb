"""Training tasks drawn on the fly from patches of radar frames.

A :class:`FrameBank` holds the selected frames of several catalog entries in memory
(float32, NaN = unobserved) with their pixel coordinates in km. :func:`sample_batch` draws a
batch of equally sized tasks: a random patch (size in km, so 0.5 km and 1 km grids look alike
to the model), either a gauge-like context (random observed pixels) or masked blocks
(contexts around hidden squares, most targets inside them), random rotations and flips, and
coordinates centred on the patch. With ``intensity_scale`` other than ``(1, 1)`` each task's
rates are multiplied by a log-uniform factor, so that a model trained on stratiform events also
sees the rates of convective ones (an intensity augmentation; the validation tasks are not scaled).

Each training step draws its batch from its own random stream, ``default_rng([seed, step])``
(:func:`step_generator`), so a batch is a function of the seed and the step alone:
:func:`batch_stream` can draw batches ahead of the training step in worker processes (a torch
``DataLoader``; drawing a batch of the shipped config on one core takes a quarter to a third of
an H100 training step: benchmarks/results/training_sampling.json), and the batches, hence the trained
weights, do not depend on how many workers draw them or on where a run was resumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from weatherunc import conventions
from weatherunc.geolocation import crs_of
from weatherunc.loading import open_dataset
from weatherunc.metrics.kernels import rate_bin_index
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.normalisation import normalise_values
from weatherunc.tasks import WET_THRESHOLD, planar_kilometres
from weatherunc.tasks.blocks import BlockRules, SideDraw, cover, place_blocks
from weatherunc.training.config import FrameSelection, SamplingOptions, selected_frames


@dataclass(frozen=True)
class BankedFrame:
    """One frame ``[ny, nx]`` (float32, NaN = unobserved) and its axes in km."""

    values: np.ndarray
    x_km: np.ndarray
    y_km: np.ndarray
    label: str

    @property
    def pixel_km(self) -> float:
        """Mean pixel spacing [km]."""
        return float(0.5 * (np.abs(np.diff(self.x_km)).mean() + np.abs(np.diff(self.y_km)).mean()))


@dataclass(frozen=True)
class FrameBank:
    """Frames to draw tasks from."""

    frames: tuple[BankedFrame, ...]

    @classmethod
    def load(
        cls, selections: list[FrameSelection], *, progress: bool = True, open_options: dict | None = None
    ) -> FrameBank:
        """Load every selected frame into memory."""
        frames: list[BankedFrame] = []
        for selection in selections:
            dataset = open_dataset(selection.dataset, **(open_options or {}))
            precipitation = selected_frames(dataset, selection)
            x_km, y_km = planar_kilometres(
                dataset[conventions.X].values, dataset[conventions.Y].values, crs_of(dataset)
            )
            for index in tqdm(
                range(precipitation.sizes["time"]),
                desc=f"loading {selection.dataset}",
                disable=not progress,
                leave=False,
            ):
                frame: xr.DataArray = precipitation.isel(time=index)
                frames.append(
                    BankedFrame(
                        np.asarray(frame.values, dtype=np.float32),
                        x_km,
                        y_km,
                        f"{selection.dataset} {str(frame.time.values)[:16]}",
                    )
                )
        return cls(tuple(frames))

    def transformed_statistics(self, config: NeuralProcessConfig) -> tuple[float, float]:
        """Mean and standard deviation of the transformed observed rate over every frame."""
        total = squares = count = 0.0
        for frame in self.frames:
            values = config.transform.forward(frame.values[np.isfinite(frame.values)].astype(np.float64))
            total, squares, count = total + values.sum(), squares + (values**2).sum(), count + values.size
        mean = total / count
        return float(mean), float(np.sqrt(max(squares / count - mean**2, 1e-12)))


@dataclass
class Batch:
    """Normalised tensors of equally sized tasks.

    context_inputs ``[batch, n_context, 2]``, context_values ``[batch, n_context, 1]``,
    target_inputs ``[batch, n_target, 2]``, target_values ``[batch, n_target, 1]``,
    target_bins ``[batch, n_target]`` (long).
    """

    context_inputs: torch.Tensor
    context_values: torch.Tensor
    target_inputs: torch.Tensor
    target_values: torch.Tensor
    target_bins: torch.Tensor

    def to(self, device: torch.device, *, non_blocking: bool = False) -> Batch:
        """The same batch on ``device`` (``non_blocking``: asynchronous copy from pinned memory)."""
        return Batch(
            *(getattr(self, name).to(device, non_blocking=non_blocking) for name in self.__dataclass_fields__)
        )

    def pin_memory(self) -> Batch:
        """The same batch in page-locked host memory (called by the ``DataLoader`` with ``pin_memory``)."""
        return Batch(*(getattr(self, name).pin_memory() for name in self.__dataclass_fields__))


def _patch(
    bank: FrameBank, options: SamplingOptions, rng: np.random.Generator, want_wet: bool
) -> tuple[BankedFrame, tuple[slice, slice]] | None:
    frame = bank.frames[rng.integers(len(bank.frames))]
    size = int(round(rng.uniform(*options.patch_km) / frame.pixel_km))
    ny, nx = frame.values.shape
    size = min(size, ny, nx)
    top, left = rng.integers(0, ny - size + 1), rng.integers(0, nx - size + 1)
    window = (slice(top, top + size), slice(left, left + size))
    values = frame.values[window]
    observed = np.isfinite(values)
    if observed.mean() < options.min_observed_fraction:
        return None
    if want_wet and np.mean(values[observed] > WET_THRESHOLD) < options.min_wet_fraction:
        return None
    return frame, window


def _blocks(
    shape: tuple[int, int], pixel_km: float, options: SamplingOptions, rng: np.random.Generator
) -> np.ndarray:
    """Mask ``shape`` (bool) of the pixels inside 1-3 blocks of ``options.block_km`` (at least 2
    pixels, at most half the patch's height) placed anywhere in the patch; blocks may overlap."""
    side = SideDraw(options.block_km, largest=shape[0] // 2, smallest=2, pixel_km=pixel_km)
    rules = BlockRules(attempts=1, attempts_per_block=True)  # every block where first drawn
    blocks = place_blocks(shape, int(rng.integers(1, 4)), side, rules, rng)
    return cover(shape, blocks)


def _one_task(
    bank: FrameBank, options: SamplingOptions, n_context: int, masked: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_target = options.target_points
    for _attempt in range(1000):
        found = _patch(bank, options, rng, want_wet=rng.uniform() >= options.dry_patch_fraction)
        if found is None:
            continue
        frame, window = found
        values = frame.values[window]
        observed = np.isfinite(values)
        if masked:
            inside = _blocks(values.shape, frame.pixel_km, options, rng)
            context_pool = np.flatnonzero((observed & ~inside).ravel())
            target_pool = np.flatnonzero((observed & inside).ravel())
            if context_pool.size < n_context or target_pool.size < n_target // 2:
                continue
            context = rng.choice(context_pool, n_context, replace=False)
            rest = np.setdiff1d(context_pool, context)
            n_inside = min(target_pool.size, (3 * n_target) // 4)
            if rest.size < n_target - n_inside:
                continue
            target = np.concatenate(
                [
                    rng.choice(target_pool, n_inside, replace=False),
                    rng.choice(rest, n_target - n_inside, replace=False),
                ]
            )
        else:
            pool = np.flatnonzero(observed.ravel())
            if pool.size < n_context + n_target:
                continue
            chosen = rng.choice(pool, n_context + n_target, replace=False)
            context, target = chosen[:n_context], chosen[n_context:]
        size = values.shape[1]
        x_km, y_km = frame.x_km[window[1]], frame.y_km[window[0]]
        centre = np.array([x_km.mean(), y_km.mean()])
        coordinates = (
            np.stack([np.tile(x_km, values.shape[0]), np.repeat(y_km, size)], axis=1) - centre
        )  # [ny*nx, 2]
        if rng.uniform() < 0.5:
            coordinates = coordinates[:, ::-1]
        coordinates = coordinates * rng.choice([-1.0, 1.0], size=2)
        flat = values.ravel()
        low, high = options.intensity_scale
        if (low, high) != (1.0, 1.0):
            flat = flat * np.exp(rng.uniform(np.log(low), np.log(high)))
        return coordinates[context], flat[context], coordinates[target], flat[target]
    raise RuntimeError(
        "could not draw a training task from the frame bank in 1000 attempts (too little observed or wet "
        "data)"
    )


def sample_batch(
    bank: FrameBank,
    config: NeuralProcessConfig,
    options: SamplingOptions,
    batch_size: int,
    rng: np.random.Generator,
) -> Batch:
    """One batch; all tasks share a context size drawn from ``options.context_points`` and one task kind."""
    n_context = int(rng.integers(options.context_points[0], options.context_points[1] + 1))
    masked = bool(rng.uniform() < options.masked_block_fraction)
    tasks = [_one_task(bank, options, n_context, masked, rng) for _ in range(batch_size)]
    context_coordinates, context_rates, target_coordinates, target_rates = (
        np.stack(part) for part in zip(*tasks)
    )
    scale = config.coordinate_scale_km
    return Batch(
        context_inputs=torch.as_tensor(context_coordinates / scale, dtype=torch.float32),
        context_values=torch.as_tensor(normalise_values(config, context_rates))[..., None],
        target_inputs=torch.as_tensor(target_coordinates / scale, dtype=torch.float32),
        target_values=torch.as_tensor(normalise_values(config, target_rates))[..., None],
        target_bins=torch.as_tensor(rate_bin_index(target_rates, config.bin_edges)),
    )


def step_generator(seed: int, step: int) -> np.random.Generator:
    """The random stream of training step ``step``: ``default_rng([seed, step])``, independent of every
    other step."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return np.random.default_rng([seed, step])


@dataclass(frozen=True)
class StepBatches(torch.utils.data.Dataset):
    """The batch of each training step, indexed by step: ``batches[step]`` is a :class:`Batch`.

    ``batches[step] = sample_batch(bank, config, options, batch_size, step_generator(seed, step))``.
    """

    bank: FrameBank
    config: NeuralProcessConfig
    options: SamplingOptions
    batch_size: int
    seed: int

    def __getitem__(self, step: int) -> Batch:
        return sample_batch(
            self.bank, self.config, self.options, self.batch_size, step_generator(self.seed, int(step))
        )


def batch_stream(
    batches: StepBatches, steps: range, *, workers: int = 0, pin_memory: bool = False
) -> Iterator[Batch]:
    """The batches of ``steps``, in order.

    ``workers = 0``: each drawn when asked for, in this process. ``workers > 0``: drawn ahead by
    that many processes of a torch ``DataLoader`` (up to four batches each), with ``pin_memory``
    for asynchronous copies to a GPU; the batches are the same either way. The loader gets its
    own ``torch.Generator``, so starting it does not advance the global torch random state (a
    resumed run would otherwise initialise its dropout and latent draws differently).
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers == 0:
        return (batches[step] for step in steps)
    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=steps,
        num_workers=workers,
        prefetch_factor=4,
        pin_memory=pin_memory,
        generator=torch.Generator(),
    )
    return iter(loader)
