"""Training configuration of the convolutional neural process, read from YAML and validated.

A config with ``architecture: convnp`` is trained by :func:`weatherunc.training.convnp_loop.train_convnp`
(``weatherunc train`` dispatches on it). Its frames come from
:class:`~weatherunc.training.config.FrameSelection`
entries (whole frames of a catalog entry) and :class:`PatchSelection` entries (windows cut from
frames too large to hold, with a longitude-latitude box left out, e.g. a test region and its buffer).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from weatherunc.checkpoints import sha256_of
from weatherunc.conventions import DEFAULT_BIN_EDGES
from weatherunc.fingerprints import fingerprint
from weatherunc.models.convnp.config import DEFAULT_PRIOR_GP, ConvNPConfig
from weatherunc.training.config import ArchitectureOptions, FrameSelection, load_yaml_config

#: How training batches are seeded; part of the fingerprint.
GRID_TASK_STREAM = "sample_grid_batch with default_rng([seed, step]) per step"


def _ordered(name: str, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not 0 < low <= high:
        raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(low, high)}")


class PatchSelection(BaseModel):
    """``patches_per_frame`` random windows of ``patch_pixels`` from each selected frame of a
    geographic grid, none touching ``exclude_box`` (lon_min, lat_min, lon_max, lat_max), with
    at least ``min_wet_fraction`` of wet pixels in all but ``dry_fraction`` of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str
    start: str | None = None
    end: str | None = None
    stride: int = Field(1, ge=1)
    patch_pixels: int = Field(256, ge=16)
    patches_per_frame: int = Field(16, ge=1)
    exclude_box: tuple[float, float, float, float] | None = None
    min_wet_fraction: float = Field(0.05, ge=0, le=1)
    dry_fraction: float = Field(0.1, ge=0, le=1)
    min_observed_fraction: float = Field(0.5, ge=0, le=1)
    seed: int = 0


class GridSamplingOptions(BaseModel):
    """How grid training tasks are drawn (see :mod:`weatherunc.training.grid_sampling`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    patch_cells: int = Field(128, ge=16)
    target_points: int = Field(2048, ge=1)
    mask_weights: tuple[float, float, float, float] = Field(
        (0.45, 0.3, 0.1, 0.15), description="blocks, gauges, coverage, wedge"
    )
    block_pixels: tuple[int, int] = (8, 64)
    halo_pixels: tuple[int, int] = (8, 64)
    ring_fraction: float = Field(0.7, ge=0, le=1)
    wet_block_fraction: float = Field(
        0.7,
        ge=0,
        le=1,
        description="share of block tasks whose blocks are placed over rain (at least 30 % wet)",
    )
    gauge_fraction: tuple[float, float] = (0.002, 0.05)
    context_keep: tuple[float, float] = (0.05, 1.0)
    min_observed_fraction: float = Field(0.5, gt=0, le=1)
    min_wet_fraction: float = Field(0.2, ge=0, le=1)
    dry_patch_fraction: float = Field(0.1, ge=0, le=1)
    intensity_scale: tuple[float, float] = (0.5, 2.0)

    @model_validator(mode="after")
    def _ranges(self) -> GridSamplingOptions:
        for name in ("block_pixels", "halo_pixels", "gauge_fraction", "context_keep", "intensity_scale"):
            _ordered(name, getattr(self, name))
        if min(self.mask_weights) < 0 or sum(self.mask_weights) <= 0:
            raise ValueError(f"mask_weights must be >= 0 with a positive sum, got {self.mask_weights}")
        return self


class ConvNPModelOptions(ArchitectureOptions):
    """Architecture options; see :class:`~weatherunc.models.convnp.config.ConvNPConfig`."""

    architecture_config: ClassVar[type[ConvNPConfig]] = ConvNPConfig
    grid_km: float = Field(1.0, gt=0)
    set_conv_lengthscales_km: tuple[float, ...] = (1.0, 3.0, 9.0)
    channels: tuple[int, ...] = (24, 48, 64, 96, 128)
    decoder_hidden: int = Field(48, ge=4)
    minimum_std: float = Field(0.02, gt=0)
    bin_edges: tuple[float, ...] = DEFAULT_BIN_EDGES
    transform: Literal["log", "box_cox", "identity"] = "log"
    transform_offset: float = Field(1.0, gt=0)
    prior: Literal["none", "gp"] = "none"
    prior_stride: int = Field(4, ge=1, le=64)
    prior_gp: dict[str, object] = Field(
        default_factory=lambda: dict(DEFAULT_PRIOR_GP),
        description="options of the prior's GaussianProcessConfig (a cheaper GP than the default one)",
    )
    correction_bound: float | None = Field(
        None, gt=0, le=10, description="with a GP prior: bound of the corrections, in prior stds"
    )


class ConvNPTrainingConfig(BaseModel):
    """Everything ``weatherunc train CONFIG.yaml`` needs for a convolutional neural process."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    architecture: Literal["convnp"] = "convnp"
    name: str = "convnp"
    model: ConvNPModelOptions = ConvNPModelOptions()
    sampling: GridSamplingOptions = GridSamplingOptions()
    train: list[FrameSelection | PatchSelection] = Field(min_length=1)
    validation: list[FrameSelection] = Field(min_length=1)
    steps: int = Field(10_000, ge=1)
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    gradient_clip: float = Field(1.0, gt=0)
    bin_weight: float = Field(0.5, ge=0)
    crps_weight: float = Field(
        0.0, ge=0, description="weight of the CRPS in mm/h (rate_crps_loss) added to the likelihood"
    )
    seed: int = 0
    data_seed: int | None = Field(
        None,
        description=(
            "seed of the prior bank's task draws and of the validation tasks (default: seed); members of "
            "a deep ensemble share these and differ by seed (initialisation, batch order, turns)"
        ),
    )
    validate_every: int = Field(250, ge=1)
    validation_tasks: int = Field(16, ge=1)
    patience: int = Field(1000, ge=1, description="validations without improvement before stopping")
    checkpoint_every: int = Field(50, ge=1)
    snapshot_every: int = Field(
        500, ge=1, description="keep the weights of every such step (for the learning curve)"
    )
    threads: int | None = Field(None, ge=1, description="torch threads (default: torch's choice)")
    device: str | None = None
    output_dir: Path = Path("runs/convnp")
    prior_tasks: int = Field(
        2000,
        ge=1,
        description=(
            "with a GP prior: training tasks drawn once with their prior computed (the GP is too slow "
            "to run at every step), kept in the run folder and drawn from, turned and mirrored, at "
            "each step"
        ),
    )
    initialise_from: Path | None = Field(
        None,
        description=(
            "a ConvNP checkpoint whose weights (and data normalisation) a fresh run starts from; "
            "weights of another shape (a prior model's wider input) are copied where they overlap"
        ),
    )

    new_weights: Literal["zero", "random"] = Field(
        "zero",
        description=(
            "with initialise_from: how the weights the checkpoint lacks (a prior model's input weights "
            "for the prior's channels) and a prior model's two correction outputs start: zero (the "
            "model starts at its prior, alike for every seed) or random (drawn with the seed, as a "
            "fresh layer's, so that the members of a deep ensemble start from different functions)"
        ),
    )

    def fingerprint(self) -> str:
        """sha256 of everything that changes the result (``steps`` may grow on resume), of
        :data:`GRID_TASK_STREAM`, and of the content (not the path) of ``initialise_from``. The
        options of a GP prior count only for a prior model, so that runs without one keep their
        fingerprint."""
        values = {
            **self.model_dump(
                mode="json",
                exclude={"steps", "output_dir", "device", "threads", "patience", "initialise_from"},
            ),
            "task_stream": GRID_TASK_STREAM,
        }
        if self.model.prior == "none":
            for name in ("prior", "prior_stride", "prior_gp"):
                values["model"].pop(name)
            values.pop("prior_tasks")
        # options added later count only when used, so that earlier runs keep their fingerprint
        if self.model.correction_bound is None:
            values["model"].pop("correction_bound")
        if self.crps_weight == 0:
            values.pop("crps_weight")
        if self.data_seed is None:
            values.pop("data_seed")
        if self.new_weights == "zero":
            values.pop("new_weights")
        if self.initialise_from is not None:
            values["initialise_from_sha256"] = sha256_of(self.initialise_from)
        return fingerprint(values)

    @property
    def task_seed(self) -> int:
        """The seed of the prior bank's tasks and of the validation tasks: ``data_seed`` or ``seed``."""
        return self.seed if self.data_seed is None else self.data_seed

    def frames_fingerprint(self) -> str:
        """sha256 of the training frame selections (names the cached frame bank)."""
        return fingerprint([selection.model_dump(mode="json") for selection in self.train])


def is_convnp_config(path: Path) -> bool:
    """Whether the YAML file at ``path`` asks for ``architecture: convnp``."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(values, dict) and values.get("architecture") == "convnp"


def load_convnp_training_config(path: Path, **overrides) -> ConvNPTrainingConfig:
    """Read and validate a YAML ConvNP training config; ``ValueError`` names each bad field."""
    return load_yaml_config(path, ConvNPTrainingConfig, **overrides)
