"""Bayes by Backprop: a mean-field Gaussian over a network's weights, fitted by variational
inference (Blundell et al. 2015, "Weight Uncertainty in Neural Networks", ICML).

The chosen weights ``theta`` (a flat vector ``[P]``) have the variational posterior
``q(theta) = N(mean, diag(std^2))`` with ``std = softplus(rho)`` (the paper's section 3.2); the
prior is ``p(theta) = N(0, prior_std^2 I)`` (the paper's Gaussian prior, its section 3.3 with one
component). A weight sample is ``mean + std * z``, ``z ~ N(0, I_P)`` (the reparameterisation
trick). Fitting minimises the expected negative log likelihood plus ``KL(q || p)`` weighted per
training target (:mod:`weatherunc.training.bayes_by_backprop`); prediction with several samples
is an ensemble (:class:`~weatherunc.models.ensemble.EnsembleInterpolator`): the spread of the
samples' means is epistemic variance. As with :mod:`weatherunc.models.swag`, only the parameters
named by ``prefixes`` are random (e.g. the decoder and the U-Net's last block); the others keep
the checkpoint's values.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional

from weatherunc.checkpoints import CheckpointError, load_checkpoint, read_sidecar, save_checkpoint

ARCHITECTURE = "weatherunc.BayesByBackprop"
#: Largest parameter count a Bayes by Backprop file may ask for (checked before allocating).
MAXIMUM_PARAMETERS = 50_000_000


def inverse_softplus(value: float) -> float:
    """``rho`` with ``softplus(rho) = value`` (``value > 0``)."""
    if value <= 0:
        raise ValueError(f"a standard deviation must be positive, got {value}")
    return value + math.log(-math.expm1(-value))


@dataclass
class VariationalPosterior:
    """The mean-field Gaussian ``q``: ``names`` and ``shapes`` of the parameters (flattened in
    order), ``mean`` and ``rho`` ``[P]`` (``std = softplus(rho)``), and the prior's ``prior_std``."""

    names: list[str]
    shapes: list[list[int]]
    mean: torch.Tensor
    rho: torch.Tensor
    prior_std: float

    @property
    def std(self) -> torch.Tensor:
        """Posterior standard deviations ``[P]``."""
        return functional.softplus(self.rho)

    @property
    def sizes(self) -> list[int]:
        """Number of elements of each parameter."""
        return [math.prod(shape) for shape in self.shapes]

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat vector ``[P]`` as tensors by parameter name (views, gradients flow through)."""
        return {
            name: part.reshape(shape)
            for name, part, shape in zip(self.names, torch.split(flat, self.sizes), self.shapes)
        }


def initial_posterior(
    model: torch.nn.Module, names: list[str], initial_std: float, prior_std: float
) -> VariationalPosterior:
    """``q`` centred on the model's current values of the parameters ``names``, every std
    ``initial_std``."""
    if prior_std <= 0:
        raise ValueError(f"prior_std must be positive, got {prior_std}")
    parameters = dict(model.named_parameters())
    mean = torch.cat([parameters[name].detach().float().cpu().reshape(-1) for name in names])
    rho = torch.full_like(mean, inverse_softplus(initial_std))
    shapes = [list(parameters[name].shape) for name in names]
    return VariationalPosterior(list(names), shapes, mean, rho, float(prior_std))


def gaussian_kl(mean: torch.Tensor, std: torch.Tensor, prior_std: float) -> torch.Tensor:
    """``KL(N(mean, diag(std^2)) || N(0, prior_std^2 I))`` (a scalar) for ``mean``, ``std``
    ``[P]``: the sum over elements of ``log(prior_std / std) + (std^2 + mean^2) / (2 prior_std^2)
    - 1/2``."""
    variance_ratio = (std**2 + mean**2) / (2.0 * prior_std**2)
    return (math.log(prior_std) - torch.log(std) + variance_ratio - 0.5).sum()


def sample_weights(
    posterior: VariationalPosterior, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """One weight sample ``mean + std * z`` by parameter name; differentiable in ``mean`` and
    ``rho`` when they require gradients."""
    noise = torch.randn(posterior.mean.shape, generator=generator, dtype=posterior.mean.dtype)
    return posterior.unflatten(posterior.mean + posterior.std * noise.to(posterior.mean.device))


def save_posterior(path: Path, posterior: VariationalPosterior, metadata: dict) -> Path:
    """Write ``q`` as safetensors (``mean``, ``rho``) with a JSON sidecar (names, shapes,
    ``prior_std``, ``metadata``); returns the sidecar."""
    return save_checkpoint(
        path,
        {"mean": posterior.mean.detach(), "rho": posterior.rho.detach()},
        architecture=ARCHITECTURE,
        config={"names": posterior.names, "shapes": posterior.shapes, "prior_std": posterior.prior_std},
        metadata_=metadata,
    )


def load_posterior(path: Path) -> tuple[VariationalPosterior, dict]:
    """``q`` written by :func:`save_posterior`; the sidecar's names, shapes, size and prior are
    checked before any tensor is read (``CheckpointError`` naming the failed check)."""
    sidecar = read_sidecar(path, ARCHITECTURE)
    config = sidecar.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("names"), list):
        raise CheckpointError(f"Bayes by Backprop file {path}: sidecar has no config with parameter names")
    names, shapes = config["names"], config.get("shapes")
    if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
        raise CheckpointError(f"Bayes by Backprop file {path}: config 'names' must be distinct strings")
    if (
        not isinstance(shapes, list)
        or len(shapes) != len(names)
        or not all(
            isinstance(shape, list)
            and all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape)
            for shape in shapes
        )
    ):
        raise CheckpointError(
            f"Bayes by Backprop file {path}: config 'shapes' must be a list of positive sizes per name"
        )
    size = sum(math.prod(shape) for shape in shapes)
    if not 0 < size <= MAXIMUM_PARAMETERS:
        raise CheckpointError(
            f"Bayes by Backprop file {path}: {size} parameters (at most {MAXIMUM_PARAMETERS})"
        )
    prior_std = config.get("prior_std")
    if not isinstance(prior_std, (int, float)) or isinstance(prior_std, bool) or not prior_std > 0:
        raise CheckpointError(f"Bayes by Backprop file {path}: config 'prior_std' must be a positive number")
    tensors, sidecar = load_checkpoint(
        path, architecture=ARCHITECTURE, expected_parameters={"mean": [size], "rho": [size]}
    )
    if not (torch.isfinite(tensors["mean"]).all() and torch.isfinite(tensors["rho"]).all()):
        raise CheckpointError(f"Bayes by Backprop file {path}: 'mean' or 'rho' holds a non-finite value")
    posterior = VariationalPosterior(names, shapes, tensors["mean"], tensors["rho"], float(prior_std))
    return posterior, sidecar


def bayes_by_backprop_members(
    base: Any, posterior: VariationalPosterior, samples: int, *, seed: int = 0
) -> list[Any]:
    """``samples`` copies of the interpolator ``base`` (a dataclass with a torch ``model``, e.g.
    :class:`~weatherunc.models.convnp.interpolator.ConvNPInterpolator`), each with its own weight
    sample (seeded by ``seed`` and the sample's number), named ``NAME-bbbI``; for
    :class:`~weatherunc.models.ensemble.EnsembleInterpolator`. ``ValueError`` when the
    posterior's parameters are not the model's."""
    if samples < 2:
        raise ValueError(f"weight_samples must be at least 2, got {samples}")
    state = base.model.state_dict()
    for name, shape in zip(posterior.names, posterior.shapes):
        if name not in state or list(state[name].shape) != list(shape):
            raise ValueError(
                f"Bayes by Backprop parameter {name} {shape} is not in the model (or has another shape)"
            )
    members = []
    for number in range(samples):
        model = copy.deepcopy(base.model)
        generator = torch.Generator().manual_seed(seed * 100_003 + number)
        weights = sample_weights(posterior, generator)
        model.load_state_dict({**state, **weights}, strict=True)
        members.append(replace(base, model=model.eval(), name=f"{base.name}-bbb{number}"))
    return members
