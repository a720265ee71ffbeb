"""Frozen configuration of the convolutional conditional neural process (architecture only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from weatherunc.conventions import DEFAULT_BIN_EDGES
from weatherunc.models.gp.config import GaussianProcessConfig
from weatherunc.models.gp.kernels import kernel_named
from weatherunc.transforms import PrecipitationTransform

#: What the network may start from: nothing, or the GP's predictive distribution.
PRIORS = ("none", "gp")
#: Predictive quantile levels of the GP given to the network, one channel each.
PRIOR_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9)
#: Options of the prior's GP that a config may set.
PRIOR_GP_OPTIONS = frozenset(
    {
        "kernel",
        "censored_contexts",
        "local_variance",
        "fit_iterations",
        "fit_points",
        "small_network_contexts",
    }
)
#: Options of the prior's GP (:class:`~weatherunc.models.gp.config.GaussianProcessConfig`): one
#: kernel and no censored contexts make it several times cheaper than the default GP, so that it
#: can be computed for thousands of training tasks. Its transform is always the network's.
DEFAULT_PRIOR_GP: dict[str, object] = {"kernel": "matern32", "censored_contexts": False}


@dataclass(frozen=True)
class ConvNPConfig:
    """Architecture of a :class:`~weatherunc.models.convnp.model.ConvNP`.

    ``grid_km`` is the spacing of the internal grid [km]: contexts and targets are placed on it by
    their planar coordinates, so the model works in physical units whatever the pixel size of the
    data. ``set_conv_lengthscales_km`` are the widths of the Gaussian set convolutions that spread
    the contexts and their density over the grid (one signal and one density channel each).
    ``channels`` are the widths of the U-Net's levels (each level halves the resolution);
    ``value_centre`` / ``value_scale`` standardise the transformed rate (set from training data);
    ``bin_edges`` are the lower edges [mm/h] of the categorical head's bins. ``prior`` is
    ``"none"`` or ``"gp"``: with ``"gp"`` the network also sees the GP's predictive quantiles,
    computed every ``prior_stride`` cells, and corrects that prior
    (:mod:`weatherunc.models.convnp.prior`). ``correction_bound`` (a prior model only) limits the
    corrections: the mean moves at most that many prior stds and the std changes by at most a
    factor ``exp(correction_bound)``; ``None`` leaves them unbounded.
    """

    grid_km: float = 1.0
    set_conv_lengthscales_km: tuple[float, ...] = (1.0, 3.0, 9.0)
    channels: tuple[int, ...] = (32, 48, 64, 96, 128)
    decoder_hidden: int = 64
    minimum_std: float = 0.02
    bin_edges: tuple[float, ...] = DEFAULT_BIN_EDGES
    value_centre: float = 0.0
    value_scale: float = 1.0
    transform: PrecipitationTransform = field(default_factory=PrecipitationTransform)
    prior: str = "none"
    prior_stride: int = 4
    prior_gp: dict[str, object] = field(default_factory=lambda: dict(DEFAULT_PRIOR_GP))
    correction_bound: float | None = None

    def __post_init__(self) -> None:
        if self.grid_km <= 0 or self.minimum_std <= 0 or self.value_scale <= 0:
            raise ValueError("grid_km, minimum_std and value_scale must be > 0")
        if not self.set_conv_lengthscales_km or min(self.set_conv_lengthscales_km) <= 0:
            raise ValueError(
                f"set_conv_lengthscales_km must be positive lengths, got {self.set_conv_lengthscales_km}"
            )
        if not self.channels or min(self.channels) < 4 or self.decoder_hidden < 4:
            raise ValueError(
                f"channels and decoder_hidden must be >= 4, got {self.channels} and {self.decoder_hidden}"
            )
        if (
            list(self.bin_edges) != sorted(set(self.bin_edges))
            or not self.bin_edges
            or self.bin_edges[0] != 0.0
        ):
            raise ValueError(f"bin_edges must start at 0 and increase strictly, got {self.bin_edges}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")
        if not 1 <= self.prior_stride <= 64:
            raise ValueError(f"prior_stride must be a whole number from 1 to 64, got {self.prior_stride}")
        if self.correction_bound is not None and not (self.prior == "gp" and 0 < self.correction_bound <= 10):
            raise ValueError(
                f"correction_bound must be None or from 0 to 10 with prior 'gp', got {self.correction_bound} "
                f"with prior {self.prior!r}"
            )
        unknown = set(self.prior_gp) - PRIOR_GP_OPTIONS
        if unknown:
            raise ValueError(
                f"prior_gp: unknown options {sorted(unknown)} (allowed: {sorted(PRIOR_GP_OPTIONS)})"
            )
        self.prior_gp_config()

    def prior_gp_config(self) -> GaussianProcessConfig:
        """The configuration of the prior's GP: ``prior_gp`` over the GP's defaults, with the
        network's transform (one offset, not chosen per task). The GP's small-network rule is off
        unless ``prior_gp`` sets ``small_network_contexts``, so that the prior of a task is the
        one the network was trained with."""
        values = {"small_network_contexts": 0, **self.prior_gp}
        try:
            if "kernel" in values and values["kernel"] != "auto":
                kernel_named(values["kernel"])
            for name in ("fit_iterations", "fit_points"):
                if name in values and (not isinstance(values[name], int) or not 1 <= values[name] <= 100_000):
                    raise ValueError(f"{name} must be a whole number from 1 to 100000, got {values[name]!r}")
            for name in ("censored_contexts", "local_variance"):
                if name in values and not isinstance(values[name], bool):
                    raise ValueError(f"{name} must be true or false, got {values[name]!r}")
            return GaussianProcessConfig(**values, transform=self.transform, offset_candidates=())
        except (TypeError, ValueError) as error:
            raise ValueError(f"prior_gp: {error}") from error

    @property
    def kind(self) -> str:
        """``"convnp"``."""
        return "convnp"

    @property
    def prior_channels(self) -> int:
        """Number of prior input channels (the GP's quantiles, or none)."""
        return len(PRIOR_LEVELS) if self.prior == "gp" else 0

    @property
    def bins(self) -> int:
        """Number of bins of the categorical head."""
        return len(self.bin_edges)

    @property
    def levels(self) -> int:
        """Number of U-Net levels; grids are padded to a multiple of ``2 ** (levels - 1)``."""
        return len(self.channels)

    @property
    def dry_bound(self) -> float:
        """The standardised transformed value of a dry pixel (0 mm/h): the censoring bound."""
        return float((self.transform.forward(0.0) - self.value_centre) / self.value_scale)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the checkpoint sidecar stores it)."""
        values = asdict(self)
        for name in ("set_conv_lengthscales_km", "channels", "bin_edges"):
            values[name] = list(values[name])
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ConvNPConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        values = dict(values)
        values["transform"] = PrecipitationTransform(**values.get("transform", {}))
        for name in ("set_conv_lengthscales_km", "channels", "bin_edges"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)
