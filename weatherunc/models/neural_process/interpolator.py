"""A trained neural process as an interpolator with the same contract as the GP.

Targets are grouped into square tiles of ``tile_km``; each tile is predicted from the
contexts inside the tile and a halo of ``halo_km`` around it (at most ``max_context``, the
nearest to the tile centre), with coordinates centred on the tile. The latent path gives
``samples`` draws of ``z ~ q(z | C)``; the predictive distribution of the transformed rate is
summarised by the mixture's moments (latent draws are seeded per tile, so a target's
prediction does not depend on which other targets are predicted with it): ``latent_variance`` = variance of
the per-sample means
(epistemic), ``noise_variance`` = mean of the per-sample variances (aleatoric). With stochastic
attention each prediction draws one set of attention weights per tile; :func:`attention_members`
gives copies that draw other sets, for an ensemble over attention draws.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr

from weatherunc import conventions
from weatherunc.checkpoints import CheckpointError, load_model, read_sidecar, sidecar_config_values
from weatherunc.devices import choose_device
from weatherunc.heads.bins import entropy_and_mutual_information
from weatherunc.heads.self_calibration.options import NEURAL_PROCESS_OPTIONS
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.models.neural_process.normalisation import (
    as_batch,
    denormalise,
    normalise_inputs,
    normalise_values,
)
from weatherunc.models.neural_process.randomness import drawing
from weatherunc.models.predictive import task_prediction
from weatherunc.prediction import HEAD_SOURCE, BinProbabilities
from weatherunc.tasks import Task, tile_groups

ARCHITECTURE = "weatherunc.NeuralProcess"
#: Largest sizes a checkpoint's config may ask for, checked before any model is laid out (generous:
#: the shipped ANP has hidden 128, latent 64, 8 heads, 3 self-attention layers and 10 bins).
MAXIMUM_HIDDEN, MAXIMUM_LATENT_DIMENSION, MAXIMUM_HEADS = 4096, 4096, 64
MAXIMUM_LAYERS, MAXIMUM_COVARIATES, MAXIMUM_BINS = 64, 256, 1024
#: Whole-number config entries and the range (inclusive) a checkpoint's config may give them.
SIZE_BOUNDS = {
    "hidden": (1, MAXIMUM_HIDDEN),
    "latent_dimension": (1, MAXIMUM_LATENT_DIMENSION),
    "heads": (1, MAXIMUM_HEADS),
    "self_attention_layers": (0, MAXIMUM_LAYERS),
    "cross_attention_layers": (0, MAXIMUM_LAYERS),
    "covariates": (0, MAXIMUM_COVARIATES),
}


def sidecar_config(path: Path, sidecar: dict) -> NeuralProcessConfig:
    """The config a checkpoint's sidecar describes, after checks; :class:`CheckpointError` naming
    ``path`` when it is not a mapping, has unknown keys, sizes outside :data:`SIZE_BOUNDS` or more
    than :data:`MAXIMUM_BINS` bins, or fails the config's own checks."""
    values = sidecar_config_values(path, sidecar)
    unknown = sorted(set(values) - {field.name for field in fields(NeuralProcessConfig)})
    if unknown:
        raise CheckpointError(f"checkpoint {path}: unknown config keys {unknown}")
    for name, (minimum, maximum) in SIZE_BOUNDS.items():
        value = values.get(name, minimum)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise CheckpointError(
                f"checkpoint {path}: config {name!r} must be a whole number from {minimum} to {maximum}, "
                f"got {value!r}"
            )
    edges = values.get("bin_edges", [])
    if not isinstance(edges, list) or len(edges) > MAXIMUM_BINS:
        raise CheckpointError(
            f"checkpoint {path}: config 'bin_edges' must be a list of at most {MAXIMUM_BINS} edges"
        )
    try:
        return NeuralProcessConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: invalid config ({error})") from error


def load_neural_process(path: Path) -> tuple[NeuralProcess, dict]:
    """A model from ``path`` (safetensors + sidecar), every check done before any weight is
    allocated: the sidecar's config is checked (:func:`sidecar_config`), the model is laid out on
    the ``meta`` device, then the file is checked against that layout. Returns the model (eval
    mode) and the sidecar (:func:`~weatherunc.checkpoints.load_model`)."""
    return load_model(
        path, sidecar_config(path, read_sidecar(path, ARCHITECTURE)), NeuralProcess, architecture=ARCHITECTURE
    )


@dataclass(frozen=True)
class TileOptions:
    """How a task is split for a neural process: tile and halo sizes [km], context cap, batches."""

    tile_km: float = 24.0
    halo_km: float = 24.0
    max_context: int = 1024
    target_batch: int = 2048


def tile_context(
    context: np.ndarray, lower: np.ndarray, upper: np.ndarray, halo_km: float, max_context: int
) -> np.ndarray:
    """Indices of contexts ``[n, 2]`` inside the box ``[lower - halo, upper + halo]``, at most
    ``max_context`` (nearest to the box centre first); the nearest ``max_context`` if none is inside."""
    centre = 0.5 * (lower + upper)
    inside = np.flatnonzero(np.all((context >= lower - halo_km) & (context <= upper + halo_km), axis=1))
    candidates = inside if inside.size else np.arange(len(context))
    if candidates.size > max_context or not inside.size:
        distance = np.linalg.norm(context[candidates] - centre, axis=1)
        keep = min(max_context, candidates.size)
        candidates = candidates[np.argsort(distance, kind="stable")[:keep]]
    return np.sort(candidates)


def tile_seed(seed: int, key: tuple[int, int]) -> int:
    """Seed of the latent draws for one tile: the same tile gets the same draws in any run or split."""
    return int(np.random.SeedSequence([seed, key[0] % 2**32, key[1] % 2**32]).generate_state(1)[0])


@dataclass
class NeuralProcessInterpolator:
    """Predicts a task tile by tile with a trained :class:`NeuralProcess`; see the module docstring."""

    model: NeuralProcess
    name: str = "anp"
    tiles: TileOptions = TileOptions()
    samples: int = 16
    seed: int = 0
    mc_dropout: bool = False
    device: str | None = None
    checkpoint_sha256: str = ""
    #: Its own self-calibration options (:func:`weatherunc.heads.self_calibration.model_options`).
    self_calibration_defaults: ClassVar[Mapping[str, Any]] = NEURAL_PROCESS_OPTIONS

    @classmethod
    def from_checkpoint(cls, path: Path, **options) -> NeuralProcessInterpolator:
        """Load a checkpoint (see :func:`load_neural_process`)."""
        model, sidecar = load_neural_process(path)
        options.setdefault("name", model.config.kind)
        return cls(model=model, checkpoint_sha256=sidecar["sha256"], **options)

    @property
    def config(self) -> NeuralProcessConfig:
        """The model's architecture config."""
        return self.model.config

    def predict_moments(self, task: Task) -> dict[str, np.ndarray]:
        """Per target ``[n_target]``: transformed mean, latent and noise variance; ``bin_probability``
        ``[n_target, bins]``."""
        config, options = self.config, self.tiles
        device = torch.device(self.device) if self.device else choose_device()
        model = self.model.to(device).eval()
        draws = self.samples if (config.latent or self.mc_dropout) else 1
        n = task.n_target
        mean, latent, noise = np.empty(n), np.empty(n), np.empty(n)
        probabilities = np.empty((n, config.bins)) if config.bins else None
        entropy, information = np.empty(n), np.empty(n)
        context_values = normalise_values(config, task.context_values)
        with torch.inference_mode():
            for key, members in tile_groups(task.target_coordinates, options.tile_km).items():
                # Each tile's draws from a generator of its own: the same result in any thread.
                generator = torch.Generator(device=device).manual_seed(tile_seed(self.seed, key))
                lower = np.array(key, dtype=np.float64) * options.tile_km
                upper = lower + options.tile_km
                chosen = tile_context(
                    task.context_coordinates, lower, upper, options.halo_km, options.max_context
                )
                centre = 0.5 * (lower + upper)
                context_inputs = normalise_inputs(
                    config,
                    task.context_coordinates[chosen],
                    centre,
                    None if task.context_covariates is None else task.context_covariates[chosen],
                )
                target_inputs = normalise_inputs(
                    config,
                    task.target_coordinates[members],
                    centre,
                    None if task.target_covariates is None else task.target_covariates[members],
                )
                tensors = as_batch(context_inputs, context_values[chosen], target_inputs, device=device)
                with drawing(generator, dropout=self.mc_dropout):
                    output = model(*tensors, samples=draws, target_batch=options.target_batch)
                sample_means = output.mean[:, 0].double().cpu().numpy()  # [samples, n_members]
                sample_variances = output.std[:, 0].double().cpu().numpy() ** 2
                mean[members] = sample_means.mean(0)
                latent[members] = sample_means.var(0)
                noise[members] = sample_variances.mean(0)
                if probabilities is not None:
                    draws_probabilities = (
                        torch.softmax(output.logits[:, 0].double(), -1).cpu().numpy()
                    )  # [samples, n_members, bins]
                    probabilities[members] = draws_probabilities.mean(0)
                    entropy[members], information[members] = entropy_and_mutual_information(
                        draws_probabilities
                    )
        mean, latent = denormalise(config, mean, latent)
        _, noise = denormalise(config, np.zeros(1), noise)
        return {
            conventions.TRANSFORMED_MEAN: mean,
            conventions.LATENT_VARIANCE: latent,
            conventions.NOISE_VARIANCE: noise,
            conventions.BIN_PROBABILITY: probabilities,
            conventions.PREDICTIVE_ENTROPY: entropy,
            conventions.MUTUAL_INFORMATION: information,
        }

    def predict(self, task: Task) -> xr.Dataset:
        """Prediction Dataset over the task's targets, as for every model; adds ``bin_probability(target,
        bin)``."""
        start = time.perf_counter()
        moments = self.predict_moments(task)
        elapsed = time.perf_counter() - start
        options = self.tiles
        prediction = task_prediction(
            task,
            transformed_mean=moments[conventions.TRANSFORMED_MEAN],
            latent_variance=moments[conventions.LATENT_VARIANCE],
            noise_variance=moments[conventions.NOISE_VARIANCE],
            transform=self.config.transform,
            model=self.name,
            attrs={
                "fit_seconds": 0.0,
                "predict_seconds": elapsed,
                "architecture": self.config.kind,
                "latent_samples": self.samples,
                "mc_dropout": int(self.mc_dropout),
                "checkpoint_sha256": self.checkpoint_sha256,
                "prediction": (
                    f"tiles of {options.tile_km:g} km, halo {options.halo_km:g} km, at most "
                    f"{options.max_context} contexts"
                ),
            },
        )
        if moments[conventions.BIN_PROBABILITY] is not None:
            bins = BinProbabilities(
                moments[conventions.BIN_PROBABILITY],
                np.asarray(self.config.bin_edges, dtype=np.float64),
                HEAD_SOURCE,
                predictive_entropy=moments[conventions.PREDICTIVE_ENTROPY],
                mutual_information=moments[conventions.MUTUAL_INFORMATION],
            )
            prediction = prediction.with_bins(bins)
        return prediction.to_dataset()


def attention_members(base: NeuralProcessInterpolator, draws: int) -> list[NeuralProcessInterpolator]:
    """``draws`` copies of ``base`` (sharing its model, which needs ``stochastic_attention``) that
    draw other attention weights: member ``i`` has the seed ``SeedSequence([base.seed, i])`` and the
    name ``NAME-attentionI``; for :class:`~weatherunc.models.ensemble.EnsembleInterpolator`, whose
    latent variance then adds the spread of the members' means across attention draws (Kim et al.
    2022). ``ValueError`` for fewer than 2 draws or a model without stochastic attention."""
    if draws < 2:
        raise ValueError(f"stochastic_attention_samples must be at least 2, got {draws}")
    if not base.config.stochastic_attention:
        raise ValueError(f"{base.name}: the model has no stochastic attention to draw from")
    return [
        replace(
            base,
            seed=int(np.random.SeedSequence([base.seed, number]).generate_state(1)[0]),
            name=f"{base.name}-attention{number}",
        )
        for number in range(draws)
    ]
