"""Frozen configuration of the convolutional conditional neural process (architecture only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from weatherunc.conventions import DEFAULT_BIN_EDGES
from weatherunc.transforms import PrecipitationTransform


@dataclass(frozen=True)
class ConvNPConfig:
    """Architecture of a :class:`~weatherunc.models.convnp.model.ConvNP`.

    ``grid_km`` is the spacing of the internal grid [km]: contexts and targets are placed on it by
    their planar coordinates, so the model works in physical units whatever the pixel size of the
    data. ``set_conv_lengthscales_km`` are the widths of the Gaussian set convolutions that spread
    the contexts and their density over the grid (one signal and one density channel each).
    ``channels`` are the widths of the U-Net's levels (each level halves the resolution);
    ``value_centre`` / ``value_scale`` standardise the transformed rate (set from training data);
    ``bin_edges`` are the lower edges [mm/h] of the categorical head's bins.
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

    @property
    def kind(self) -> str:
        """``"convnp"``."""
        return "convnp"

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
