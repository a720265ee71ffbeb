"""A trained convolutional neural process as an interpolator with the same contract as the GP.

The task's contexts and targets are placed on a grid of ``config.grid_km`` covering them with a
margin: contexts by their nearest cell (:func:`~weatherunc.training.grid_sampling.context_grids`),
targets at their exact (fractional) positions. Grids larger than ``tile_cells`` are computed in
tiles that each see ``halo_cells`` more on every side and keep their core, so memory stays bounded
and tiles agree where they meet up to the network's reach beyond the halo (the tiles and halo
windows of :mod:`weatherunc.tiling`, in cells of the model's grid rather than pixels of a frame). The model is
deterministic: ``latent_variance`` is 0 and the whole predictive variance is ``noise_variance``.
A model with a GP prior (``config.prior == "gp"``) first predicts the task's whole grid with the GP
(``config.prior_gp``, on every ``config.prior_stride``-th cell; :mod:`weatherunc.models.convnp.prior`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr

from weatherunc import conventions
from weatherunc.checkpoints import CheckpointError, load_model, read_sidecar, sidecar_config_values
from weatherunc.devices import choose_device
from weatherunc.heads.bins import entropy
from weatherunc.heads.self_calibration.options import NEURAL_PROCESS_OPTIONS
from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.convnp.grids import context_grids
from weatherunc.models.convnp.model import ConvNP
from weatherunc.models.convnp.prior import prior_quantiles, upsample_prior
from weatherunc.models.gp import GaussianProcessInterpolator
from weatherunc.models.predictive import task_prediction
from weatherunc.prediction import HEAD_SOURCE, BinProbabilities
from weatherunc.tasks import Task
from weatherunc.tiling import grid_tiles, halo_window

ARCHITECTURE = "weatherunc.ConvNP"
#: Largest U-Net width and number of levels a checkpoint may ask for (checked before allocating).
MAXIMUM_CHANNELS, MAXIMUM_LEVELS = 1024, 8


def load_convnp(path: Path) -> tuple[ConvNP, dict]:
    """A model from ``path`` (safetensors + sidecar), every check done before any weight is
    allocated: the sidecar's config is validated, the model is laid out on the ``meta`` device,
    then the file is checked against that layout (:func:`~weatherunc.checkpoints.load_model`).
    Returns the model (eval mode) and the sidecar."""
    values = sidecar_config_values(path, read_sidecar(path, ARCHITECTURE))
    try:
        config = ConvNPConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: invalid config ({error})") from error
    if (
        max(config.channels) > MAXIMUM_CHANNELS
        or config.levels > MAXIMUM_LEVELS
        or config.decoder_hidden > MAXIMUM_CHANNELS
    ):
        raise CheckpointError(
            f"checkpoint {path}: config asks for channels {config.channels}, decoder_hidden "
            f"{config.decoder_hidden} (at most {MAXIMUM_CHANNELS} wide, {MAXIMUM_LEVELS} levels)"
        )
    return load_model(path, config, ConvNP, architecture=ARCHITECTURE)


@dataclass(frozen=True)
class TaskGrid:
    """A task placed on the internal grid: context grids ``[H, W]`` and target positions ``[n, 2]``
    (row, column in cells); ``origin`` is the (x, y) km of cell (0, 0)."""

    observed: np.ndarray
    values: np.ndarray
    positions: np.ndarray
    origin: np.ndarray


def task_grid(config: ConvNPConfig, task: Task, margin_cells: int) -> TaskGrid:
    """Place ``task`` on the grid of ``config.grid_km`` covering its points plus ``margin_cells``."""
    points = np.vstack([task.context_coordinates, task.target_coordinates])
    origin = points.min(0) - margin_cells * config.grid_km
    columns, rows = np.ceil((points.max(0) - origin) / config.grid_km).astype(int) + margin_cells + 1
    context = np.rint((task.context_coordinates - origin) / config.grid_km).astype(
        np.int64
    )  # [n, 2] (column, row)
    observed, values = context_grids(
        config, context[:, 1], context[:, 0], task.context_values, (rows, columns)
    )
    positions = ((task.target_coordinates - origin) / config.grid_km)[:, ::-1].astype(np.float32)
    return TaskGrid(observed, values, positions, origin)


@dataclass
class ConvNPInterpolator:
    """Predicts a task with a trained :class:`ConvNP`; see the module docstring."""

    model: ConvNP
    name: str = "convnp"
    tile_cells: int = 1024
    halo_cells: int = 128
    margin_cells: int = 16
    device: str | None = None
    checkpoint_sha256: str = ""
    #: Sees a whole frame at once (tiling itself only to bound memory): whole-frame callers such
    #: as :func:`weatherunc.fill` give it every observed pixel of the frame in one task.
    whole_frame: ClassVar[bool] = True
    #: Its own self-calibration options (:func:`weatherunc.heads.self_calibration.model_options`).
    self_calibration_defaults: ClassVar[Mapping[str, Any]] = NEURAL_PROCESS_OPTIONS

    @classmethod
    def from_checkpoint(cls, path: Path, **options) -> ConvNPInterpolator:
        """Load a checkpoint (see :func:`load_convnp`)."""
        model, sidecar = load_convnp(path)
        return cls(model=model, checkpoint_sha256=sidecar["sha256"], **options)

    @property
    def config(self) -> ConvNPConfig:
        """The model's architecture config."""
        return self.model.config

    def predict_moments(self, task: Task) -> dict[str, np.ndarray]:
        """Per target ``[n_target]``: transformed mean and noise variance, ``bin_probability`` ``[n_target,
        bins]``."""
        if self.tile_cells < 1 or self.halo_cells < 0:
            raise ValueError(
                f"tile_cells must be >= 1 and halo_cells >= 0, got {self.tile_cells}, {self.halo_cells}"
            )
        config = self.config
        device = torch.device(self.device) if self.device else choose_device()
        model = self.model.to(device).eval()
        grid = task_grid(config, task, self.margin_cells)
        rows, columns = grid.observed.shape
        n = task.n_target
        mean, std, probabilities = np.empty(n), np.empty(n), np.empty((n, config.bins))
        cell = np.clip(np.rint(grid.positions).astype(np.int64), 0, [rows - 1, columns - 1])
        prior = target_prior = None
        if config.prior_channels:
            coarse, target_prior = prior_quantiles(
                GaussianProcessInterpolator(config.prior_gp_config()).predict,
                config,
                grid.observed,
                grid.values,
                config.prior_stride,
                grid.positions,
                contexts=(task.context_coordinates - grid.origin, task.context_values),
            )
            prior = upsample_prior(torch.as_tensor(coarse)[None], (rows, columns), config.prior_stride)[0]
        with torch.inference_mode():
            for tile in grid_tiles((rows, columns), self.tile_cells):
                members = np.flatnonzero(
                    (cell[:, 0] >= tile.rows.start)
                    & (cell[:, 0] < tile.rows.stop)
                    & (cell[:, 1] >= tile.columns.start)
                    & (cell[:, 1] < tile.columns.stop)
                )
                if not members.size:
                    continue
                reach = halo_window(tile, (rows, columns), self.halo_cells)
                window = (reach.rows, reach.columns)
                observed = torch.as_tensor(grid.observed[window], device=device)[None, None]
                values = torch.as_tensor(grid.values[window], device=device)[None, None]
                shift = np.array([window[0].start, window[1].start], dtype=np.float32)
                positions = torch.as_tensor(grid.positions[members] - shift, device=device)[None]
                window_prior = members_prior = None
                if prior is not None:
                    window_prior = prior[:, window[0], window[1]][None].to(device)
                    members_prior = torch.as_tensor(target_prior[members], device=device)[None]
                output = model(observed, values, positions, window_prior, members_prior)
                mean[members] = output.mean[0].double().cpu().numpy()
                std[members] = output.std[0].double().cpu().numpy()
                probabilities[members] = torch.softmax(output.logits[0].double(), -1).cpu().numpy()
        return {
            conventions.TRANSFORMED_MEAN: mean * config.value_scale + config.value_centre,
            conventions.NOISE_VARIANCE: (std * config.value_scale) ** 2,
            conventions.BIN_PROBABILITY: probabilities,
        }

    def predict(self, task: Task) -> xr.Dataset:
        """Prediction Dataset over the task's targets, as for every model; adds ``bin_probability(target,
        bin)``."""
        start = time.perf_counter()
        moments = self.predict_moments(task)
        elapsed = time.perf_counter() - start
        prediction = task_prediction(
            task,
            transformed_mean=moments[conventions.TRANSFORMED_MEAN],
            latent_variance=np.zeros(task.n_target),
            noise_variance=moments[conventions.NOISE_VARIANCE],
            transform=self.config.transform,
            model=self.name,
            attrs={
                "fit_seconds": 0.0,
                "predict_seconds": elapsed,
                "architecture": self.config.kind,
                "checkpoint_sha256": self.checkpoint_sha256,
                "prediction": (
                    f"grid of {self.config.grid_km:g} km, tiles of {self.tile_cells} cells with a halo of "
                    f"{self.halo_cells}"
                ),
            },
        )
        probabilities = moments[conventions.BIN_PROBABILITY]
        bins = BinProbabilities(
            probabilities,
            np.asarray(self.config.bin_edges, dtype=np.float64),
            HEAD_SOURCE,
            predictive_entropy=entropy(probabilities),
            mutual_information=np.zeros(task.n_target),
        )
        return prediction.with_bins(bins).to_dataset()
