"""From task arrays (km, mm/h) to the normalised tensors a neural process sees, and back.

Coordinates are centred on a chosen point (the tile or patch centre) and divided by
``coordinate_scale_km``; rates go through the precipitation transform and are standardised
with ``value_centre`` / ``value_scale`` (the rain-rate bins of the categorical head:
:func:`weatherunc.metrics.kernels.rate_bin_index`).
"""

from __future__ import annotations

import numpy as np
import torch

from weatherunc.models.neural_process.config import NeuralProcessConfig


def normalise_inputs(
    config: NeuralProcessConfig,
    coordinates: np.ndarray,
    centre: np.ndarray,
    covariates: np.ndarray | None = None,
) -> np.ndarray:
    """``[n, 2]`` km (and ``[n, covariates]``) -> ``[n, 2 + covariates]`` float32 model inputs."""
    inputs = (np.asarray(coordinates, dtype=np.float64) - centre) / config.coordinate_scale_km
    if config.covariates:
        if covariates is None or covariates.shape[1] != config.covariates:
            raise ValueError(
                f"the model expects {config.covariates} covariates per point, got "
                f"{None if covariates is None else covariates.shape[1]}"
            )
        inputs = np.hstack([inputs, covariates])
    return inputs.astype(np.float32)


def normalise_values(config: NeuralProcessConfig, rate: np.ndarray) -> np.ndarray:
    """Rate [mm/h] ``[...]`` -> standardised transformed rate ``[...]`` float32."""
    return ((config.transform.forward(rate) - config.value_centre) / config.value_scale).astype(np.float32)


def denormalise(
    config: NeuralProcessConfig, mean: np.ndarray, variance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Standardised mean and variance -> mean and variance of the transformed rate."""
    return mean * config.value_scale + config.value_centre, variance * config.value_scale**2


def as_batch(*arrays: np.ndarray, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Each array ``[n, ...]`` -> tensor ``[1, n, ...]`` on ``device`` (values ``[n]`` become ``[1, n,
    1]``)."""
    tensors = []
    for array in arrays:
        tensor = torch.as_tensor(array, device=device)[None]
        tensors.append(tensor[..., None] if tensor.dim() == 2 and tensor.dtype.is_floating_point else tensor)
    return tensors
