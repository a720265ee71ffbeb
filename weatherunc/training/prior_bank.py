"""Training tasks with their GP prior, drawn once and kept, for a convolutional NP with a GP prior.

The prior's GP (:mod:`weatherunc.models.convnp.prior`) takes about a second per task on a CPU, far
longer than a training step, so it cannot run at every step. :func:`build_prior_bank` draws
``count`` tasks with :func:`~weatherunc.training.grid_sampling.draw_task` (task ``i`` from
``default_rng([seed, 1, i])``), computes each one's coarse prior, and writes them to a folder in
chunks, each written to a temporary name and renamed when complete; the folder's ``bank.json``
names what the tasks depend on, and a build resumes after the last complete chunk.
:class:`PriorBank` holds the tasks and draws training batches from them, each task turned by a
random multiple of 90 degrees and mirrored at random (the prior is interpolated to the task's grid
first, so that it turns with it).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from weatherunc.fingerprints import fingerprint
from weatherunc.metrics.kernels import rate_bin_index
from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.convnp.grids import standardise
from weatherunc.models.convnp.prior import coarse_cells, prior_quantiles, upsample_prior
from weatherunc.models.gp import GaussianProcessInterpolator
from weatherunc.training.convnp_config import GridSamplingOptions
from weatherunc.training.grid_sampling import GridBatch, draw_task
from weatherunc.training.sampling import FrameBank

#: Tasks per chunk file.
CHUNK_TASKS = 25
BANK_FILE = "bank.json"
#: Options of the network that do not change the bank's tasks: banks are shared across them.
ARCHITECTURE_ONLY = ("channels", "decoder_hidden", "correction_bound")


def bank_fingerprint(config: ConvNPConfig, options: GridSamplingOptions, frames_key: str, seed: int) -> str:
    """sha256 of what the bank's tasks depend on: the architecture config (normalisation and
    prior options; not :data:`ARCHITECTURE_ONLY`), the sampling options, the training frames and
    the seed."""
    values = {
        "config": {name: value for name, value in config.to_dict().items() if name not in ARCHITECTURE_ONLY},
        "sampling": options.model_dump(mode="json"),
        "frames": frames_key,
        "seed": seed,
        "stream": (
            "draw_task with default_rng([seed, 1, index]); prior of the exact contexts on the grid and "
            "at the targets"
        ),
    }
    return fingerprint(values)


def _draw_with_prior(
    frames: FrameBank,
    config: ConvNPConfig,
    options: GridSamplingOptions,
    seed: int,
    index: int,
    predict,
) -> dict[str, np.ndarray]:
    observed, values, positions, rates, context_cells, context_rates = draw_task(
        frames, config, options, np.random.default_rng([seed, 1, index]), with_contexts=True
    )
    prior, target_prior = prior_quantiles(
        predict,
        config,
        observed,
        values,
        config.prior_stride,
        positions,
        contexts=(context_cells[:, ::-1] * config.grid_km, context_rates),
    )
    return {
        "observed": observed.astype(bool),
        "values": values.astype(np.float32),
        "positions": positions.astype(np.float32),
        "rates": rates.astype(np.float32),
        "prior": prior.astype(np.float32),
        "target_prior": target_prior.astype(np.float32),
    }


def build_prior_bank(
    directory: Path,
    frames: FrameBank,
    frames_key: str,
    config: ConvNPConfig,
    options: GridSamplingOptions,
    *,
    count: int,
    seed: int,
    progress: bool = True,
) -> Path:
    """Draw ``count`` tasks with their prior into ``directory`` (see the module docstring);
    resumes a build of the same fingerprint, and starts over when the folder holds another."""
    if config.prior != "gp":
        raise ValueError(f"build_prior_bank: the model has no GP prior (prior={config.prior!r})")
    directory = Path(directory)
    fingerprint = bank_fingerprint(config, options, frames_key, seed)
    description = directory / BANK_FILE
    if description.exists() and json.loads(description.read_text()).get("fingerprint") != fingerprint:
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    description.write_text(json.dumps({"fingerprint": fingerprint, "count": count}, indent=2))
    predict = GaussianProcessInterpolator(config.prior_gp_config()).predict
    chunks = range(0, count, CHUNK_TASKS)
    done = sum(1 for start in chunks if (directory / f"chunk-{start:06d}.npz").exists())
    bar = tqdm(
        total=count, initial=done * CHUNK_TASKS, desc="GP priors of training tasks", disable=not progress
    )
    for start in chunks:
        path = directory / f"chunk-{start:06d}.npz"
        if path.exists():
            continue
        tasks = [
            _draw_with_prior(frames, config, options, seed, index, predict)
            for index in range(start, min(count, start + CHUNK_TASKS))
        ]
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, **{name: np.stack([task[name] for task in tasks]) for name in tasks[0]})
        partial.rename(path)
        bar.update(len(tasks))
    bar.close()
    return directory


@dataclass
class PriorBank:
    """Training tasks with their prior: ``observed``, ``values`` ``[N, P, P]``, ``positions``
    ``[N, n, 2]`` (row, column in cells), ``rates`` ``[N, n]`` mm/h, the coarse prior grids
    ``prior`` ``[N, 3, h, w]`` and the prior at the targets ``target_prior`` ``[N, n, 3]``."""

    observed: np.ndarray
    values: np.ndarray
    positions: np.ndarray
    rates: np.ndarray
    prior: np.ndarray
    target_prior: np.ndarray
    stride: int

    @classmethod
    def load(cls, directory: Path, config: ConvNPConfig) -> PriorBank:
        """The tasks of a complete bank built by :func:`build_prior_bank`."""
        directory = Path(directory)
        count = json.loads((directory / BANK_FILE).read_text())["count"]
        paths = [directory / f"chunk-{start:06d}.npz" for start in range(0, count, CHUNK_TASKS)]
        missing = [path.name for path in paths if not path.exists()]
        if missing:
            raise FileNotFoundError(f"prior bank {directory} is incomplete: {len(missing)} chunks missing")
        parts: dict[str, list[np.ndarray]] = {}
        for path in paths:
            with np.load(path) as chunk:
                for name in chunk.files:
                    parts.setdefault(name, []).append(chunk[name])
        arrays = {name: np.concatenate(values) for name, values in parts.items()}
        expected = coarse_cells(arrays["observed"].shape[1:], config.prior_stride)
        if arrays["prior"].shape[2:] != (expected[0].size, expected[1].size):
            raise ValueError(f"prior bank {directory}: prior grids do not match stride {config.prior_stride}")
        return cls(**arrays, stride=config.prior_stride)

    def __len__(self) -> int:
        return len(self.observed)

    def sample(self, config: ConvNPConfig, batch_size: int, rng: np.random.Generator) -> GridBatch:
        """``batch_size`` tasks drawn at random, each turned and mirrored at random."""
        chosen = rng.integers(len(self), size=batch_size)
        size = self.observed.shape[-1]
        prior = upsample_prior(torch.as_tensor(self.prior[chosen]), (size, size), self.stride)
        observed = torch.as_tensor(self.observed[chosen], dtype=torch.float32)[:, None]
        values = torch.as_tensor(self.values[chosen])[:, None]
        positions = torch.as_tensor(self.positions[chosen]).clone()
        turns, mirrors = rng.integers(4, size=batch_size), rng.integers(2, size=batch_size)
        grids = [observed, values, prior]
        for member in range(batch_size):
            for _turn in range(int(turns[member])):
                # rot90 maps the cell (row, column) to (size - 1 - column, row)
                for grid in grids:
                    grid[member] = torch.rot90(grid[member], 1, dims=(-2, -1))
                row, column = positions[member, :, 0].clone(), positions[member, :, 1].clone()
                positions[member, :, 0], positions[member, :, 1] = size - 1 - column, row
            if mirrors[member]:
                for grid in grids:
                    grid[member] = torch.flip(grid[member], dims=(-1,))
                positions[member, :, 1] = size - 1 - positions[member, :, 1]
        rates = self.rates[chosen].astype(np.float64)
        return GridBatch(
            observed=observed,
            values=values,
            positions=positions,
            target_values=torch.as_tensor(standardise(config, rates)),
            target_bins=torch.as_tensor(rate_bin_index(rates, config.bin_edges)),
            weights=torch.ones(rates.shape, dtype=torch.float32),
            prior=prior,
            target_prior=torch.as_tensor(self.target_prior[chosen]),
        )
