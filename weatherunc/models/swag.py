"""SWA-Gaussian: a Gaussian over a network's weights from the path of its training (Maddox et al.
2019, "A simple baseline for Bayesian uncertainty in deep learning", NeurIPS).

Along a run at a constant learning rate, every ``every`` steps the chosen weights ``theta`` (a
flat vector ``[P]``) are collected: their running mean ``theta_bar``, running mean of squares,
and the last ``rank`` deviations ``theta - theta_bar`` (the columns of ``D`` ``[rank, P]``). A
weight sample is

    theta_bar + sqrt(diag) z1 / sqrt(2) + D^T z2 / sqrt(2 (rank - 1)),

``diag = max(mean of squares - theta_bar^2, 0)``, ``z1 ~ N(0, I_P)``, ``z2 ~ N(0, I_rank)`` (the
paper's equation 3). Predictions with several samples are combined as an ensemble
(:class:`~weatherunc.models.ensemble.EnsembleInterpolator`): the spread of the samples' means is
epistemic variance. Only the parameters named by ``prefixes`` are sampled (the others keep the
checkpoint's values), e.g. the decoder and the U-Net's last block: a subspace of the weights, as
the paper's low-rank variant is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from weatherunc.checkpoints import CheckpointError, load_checkpoint, read_sidecar, save_checkpoint

ARCHITECTURE = "weatherunc.SWAG"
#: Largest rank and parameter count a SWAG file may ask for (checked before allocating).
MAXIMUM_RANK, MAXIMUM_PARAMETERS = 256, 50_000_000


def selected_parameters(model: torch.nn.Module, prefixes: tuple[str, ...]) -> list[str]:
    """Names of ``model``'s parameters that start with one of ``prefixes`` (all for ``()``)."""
    names = [name for name, _ in model.named_parameters() if not prefixes or name.startswith(prefixes)]
    if not names:
        raise ValueError(f"no parameter of the model starts with any of {prefixes}")
    return names


@dataclass
class SwagMoments:
    """The collected moments: ``names`` and ``shapes`` of the parameters (flattened in order),
    ``mean`` and ``square_mean`` ``[P]``, ``deviations`` ``[rank, P]`` (the newest last), and the
    number of collected weight vectors ``count``."""

    names: list[str]
    shapes: list[list[int]]
    mean: torch.Tensor
    square_mean: torch.Tensor
    deviations: torch.Tensor
    count: int

    @property
    def rank(self) -> int:
        """Number of deviations kept."""
        return int(self.deviations.shape[0])


class SwagCollector:
    """Collects :class:`SwagMoments` of the parameters ``names`` of a model (module docstring)."""

    def __init__(self, model: torch.nn.Module, names: list[str], rank: int) -> None:
        if not 2 <= rank <= MAXIMUM_RANK:
            raise ValueError(f"rank must be from 2 to {MAXIMUM_RANK}, got {rank}")
        parameters = dict(model.named_parameters())
        self.names, self.rank = names, rank
        self.shapes = [list(parameters[name].shape) for name in names]
        size = sum(parameters[name].numel() for name in names)
        self.mean = torch.zeros(size, dtype=torch.float64)
        self.square_mean = torch.zeros(size, dtype=torch.float64)
        self.deviations: list[torch.Tensor] = []
        self.count = 0

    def collect(self, model: torch.nn.Module) -> None:
        """Add the model's current values of the parameters."""
        parameters = dict(model.named_parameters())
        flat = torch.cat([parameters[name].detach().double().cpu().reshape(-1) for name in self.names])
        self.count += 1
        self.mean += (flat - self.mean) / self.count
        self.square_mean += (flat**2 - self.square_mean) / self.count
        self.deviations = [*self.deviations, (flat - self.mean).float()][-self.rank :]

    def moments(self) -> SwagMoments:
        """The moments so far; needs at least two collected vectors."""
        if len(self.deviations) < 2:
            raise ValueError(f"SWAG needs at least 2 collected weight vectors, got {len(self.deviations)}")
        return SwagMoments(
            self.names,
            self.shapes,
            self.mean.float(),
            self.square_mean.float(),
            torch.stack(self.deviations),
            self.count,
        )


def sample_weights(
    moments: SwagMoments, generator: torch.Generator, scale: float = 1.0
) -> dict[str, torch.Tensor]:
    """One weight sample (module docstring), by parameter name; ``scale`` multiplies the spread
    (1 in the paper)."""
    variance = (moments.square_mean - moments.mean**2).clamp_min(0.0)
    first = variance.sqrt() * torch.randn(moments.mean.shape, generator=generator) / 2**0.5
    second = (
        moments.deviations.T
        @ torch.randn(moments.rank, generator=generator)
        / (2 * (moments.rank - 1)) ** 0.5
    )
    flat = moments.mean + scale * (first + second)
    sizes = [int(torch.tensor(shape).prod()) if shape else 1 for shape in moments.shapes]
    return {
        name: part.reshape(shape)
        for name, part, shape in zip(moments.names, torch.split(flat, sizes), moments.shapes)
    }


def save_swag(path: Path, moments: SwagMoments, metadata: dict) -> Path:
    """Write the moments as safetensors with a JSON sidecar (names, shapes, count, ``metadata``)."""
    return save_checkpoint(
        path,
        {"mean": moments.mean, "square_mean": moments.square_mean, "deviations": moments.deviations},
        architecture=ARCHITECTURE,
        config={
            "names": moments.names,
            "shapes": moments.shapes,
            "count": moments.count,
            "rank": moments.rank,
        },
        metadata_=metadata,
    )


def load_swag(path: Path) -> tuple[SwagMoments, dict]:
    """Moments written by :func:`save_swag`, their sizes checked before any tensor is read."""
    sidecar = read_sidecar(path, ARCHITECTURE)
    config = sidecar.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("names"), list):
        raise CheckpointError(f"SWAG file {path}: sidecar has no config with parameter names")
    names, shapes = config["names"], config.get("shapes")
    if (
        not isinstance(shapes, list)
        or len(shapes) != len(names)
        or not all(
            isinstance(shape, list) and all(isinstance(size, int) and size > 0 for size in shape)
            for shape in shapes
        )
    ):
        raise CheckpointError(f"SWAG file {path}: config 'shapes' must be a list of positive sizes per name")
    size = sum(int(torch.tensor(shape).prod()) if shape else 1 for shape in shapes)
    rank = config.get("rank")
    if size > MAXIMUM_PARAMETERS or not isinstance(rank, int) or not 2 <= rank <= MAXIMUM_RANK:
        raise CheckpointError(
            f"SWAG file {path}: {size} parameters and rank {rank!r} (at most {MAXIMUM_PARAMETERS}, rank "
            f"2-{MAXIMUM_RANK})"
        )
    tensors, sidecar = load_checkpoint(
        path,
        architecture=ARCHITECTURE,
        expected_parameters={"mean": [size], "square_mean": [size], "deviations": [rank, size]},
    )
    moments = SwagMoments(
        names,
        shapes,
        tensors["mean"],
        tensors["square_mean"],
        tensors["deviations"],
        int(config.get("count", 0)),
    )
    return moments, sidecar


def swag_members(
    base: Any, moments: SwagMoments, samples: int, *, seed: int = 0, scale: float = 1.0
) -> list[Any]:
    """``samples`` copies of the interpolator ``base`` (a dataclass with a torch ``model``, e.g.
    :class:`~weatherunc.models.convnp.interpolator.ConvNPInterpolator`), each with its own weight
    sample (seeded by ``seed`` and the sample's number), named ``NAME-swagI``; for
    :class:`~weatherunc.models.ensemble.EnsembleInterpolator`. ``ValueError`` when the moments'
    parameters are not the model's."""
    if samples < 2:
        raise ValueError(f"weight_samples must be at least 2, got {samples}")
    state = base.model.state_dict()
    for name, shape in zip(moments.names, moments.shapes):
        if name not in state or list(state[name].shape) != list(shape):
            raise ValueError(f"SWAG parameter {name} {shape} is not in the model (or has another shape)")
    members = []
    for number in range(samples):
        model = copy.deepcopy(base.model)
        weights = sample_weights(moments, torch.Generator().manual_seed(seed * 100_003 + number), scale)
        model.load_state_dict({**state, **weights}, strict=True)
        members.append(replace(base, model=model.eval(), name=f"{base.name}-swag{number}"))
    return members
