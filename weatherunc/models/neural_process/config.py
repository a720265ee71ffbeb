"""Frozen configuration of a neural process (architecture only; training options live in training/)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from weatherunc.conventions import DEFAULT_BIN_EDGES
from weatherunc.transforms import PrecipitationTransform


@dataclass(frozen=True)
class NeuralProcessConfig:
    """Architecture of a neural process.

    ``attention=False`` and ``latent=False`` give the conditional neural process (CNP):
    mean-pooled deterministic path only. ``coordinate_scale_km`` divides centred coordinates;
    ``value_centre`` / ``value_scale`` standardise the transformed rate (set from training data).
    ``bin_edges`` are the lower edges [mm/h] of the categorical head's bins (``()`` for no head).
    ``distance_bias`` adds a learned per-head distance penalty to the cross-attention and to the
    deterministic path's self-attention (see
    :mod:`~weatherunc.models.neural_process.layers`) and gives the decoder the distance from each
    target to its nearest context.
    ``task_normalisation`` standardises the values of each task (tile) by the mean and spread of
    its own contexts, ``sqrt(variance + task_scale_floor**2)``, before the encoders, scales the
    predictive mean and std back afterwards, and gives the decoder the two statistics so that
    the bin head keeps the absolute level (see :mod:`~weatherunc.models.neural_process.model`).
    ``stochastic_attention`` makes the deterministic path's cross-attention weights latent
    variables: Weibull draws of shape ``attention_weibull_shape`` around the deterministic weights,
    with a Gamma prior of rate ``attention_prior_rate`` (see
    :mod:`~weatherunc.models.neural_process.stochastic_attention`); off, the model is the
    deterministic-attention one, parameter for parameter.
    """

    hidden: int = 64
    latent_dimension: int = 32
    heads: int = 4
    self_attention_layers: int = 2
    attention: bool = True
    latent: bool = True
    distance_bias: bool = True
    cross_attention_layers: int = 1
    covariates: int = 0
    task_normalisation: bool = False
    task_scale_floor: float = 0.25
    minimum_std: float = 0.05
    dropout: float = 0.0
    bin_edges: tuple[float, ...] = DEFAULT_BIN_EDGES
    coordinate_scale_km: float = 32.0
    value_centre: float = 0.0
    value_scale: float = 1.0
    transform: PrecipitationTransform = field(default_factory=PrecipitationTransform)
    stochastic_attention: bool = False
    attention_weibull_shape: float = 10.0
    attention_prior_rate: float = 1.0

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden={self.hidden} must be divisible by heads={self.heads}")
        if (
            self.minimum_std <= 0
            or self.coordinate_scale_km <= 0
            or self.value_scale <= 0
            or self.task_scale_floor <= 0
        ):
            raise ValueError("minimum_std, coordinate_scale_km, value_scale and task_scale_floor must be > 0")
        if not (self.attention_weibull_shape > 0 and self.attention_prior_rate > 0):
            raise ValueError("attention_weibull_shape and attention_prior_rate must be > 0")
        if self.stochastic_attention and not self.attention:
            raise ValueError("stochastic_attention needs attention=True")
        if list(self.bin_edges) != sorted(set(self.bin_edges)) or (
            self.bin_edges and self.bin_edges[0] != 0.0
        ):
            raise ValueError(f"bin_edges must start at 0 and increase strictly, got {self.bin_edges}")

    @property
    def kind(self) -> str:
        """``"anp"`` (attention and latent path), ``"cnp"`` (neither), or ``"np-variant"``."""
        if self.attention and self.latent:
            return "anp"
        if not self.attention and not self.latent:
            return "cnp"
        return "np-variant"

    @property
    def bins(self) -> int:
        """Number of bins of the categorical head (0 without one)."""
        return len(self.bin_edges)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the checkpoint sidecar stores it)."""
        values = asdict(self)
        values["bin_edges"] = list(self.bin_edges)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NeuralProcessConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        values = dict(values)
        values["transform"] = PrecipitationTransform(**values.get("transform", {}))
        values["bin_edges"] = tuple(values.get("bin_edges", DEFAULT_BIN_EDGES))
        return cls(**values)
