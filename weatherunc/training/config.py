"""Training configuration, read from YAML and validated (errors name the field)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
import xarray as xr
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from weatherunc import conventions
from weatherunc.checkpoints import sha256_of
from weatherunc.fingerprints import fingerprint
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.transforms import PrecipitationTransform

#: How training batches are seeded (see :mod:`weatherunc.training.sampling`). Part of the
#: fingerprint, so a run checkpointed under another seeding is not resumed as if it were this one.
TASK_STREAM = "sample_batch with default_rng([seed, step]) per step"


class FrameSelection(BaseModel):
    """Frames of one catalog entry between ``start`` and ``end`` (inclusive, ISO times; empty = open)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str
    start: str | None = None
    end: str | None = None
    stride: int = Field(1, ge=1, description="keep every stride-th frame")


def selected_frames(dataset: xr.Dataset, selection: Any) -> xr.DataArray:
    """The precipitation frames (time, y, x) of ``dataset`` that ``selection`` (a
    :class:`FrameSelection`, or any object with its ``dataset``, ``start``, ``end`` and ``stride``)
    keeps; ``ValueError`` naming the selection and the check when ``dataset`` has no time axis
    (a station set), a time is not an ISO time, ``start`` is after ``end``, or no frame is kept."""
    name = selection.dataset
    frames = dataset[conventions.PRECIPITATION]
    if "time" not in frames.dims or not {conventions.Y, conventions.X} <= set(frames.dims):
        raise ValueError(f"{name}: holds no gridded frames over time (dimensions {tuple(frames.dims)})")
    times, bounds = {}, {}
    for field in ("start", "end"):
        text = getattr(selection, field)
        try:
            stamp = None if text is None else pd.Timestamp(text)
        except ValueError as error:
            raise ValueError(f"{name}: {field} {text!r} is not an ISO time") from error
        aware = stamp is not None and stamp.tzinfo is not None  # frames are in UTC, without a zone
        times[field] = stamp.tz_convert(None) if aware else stamp
        bounds[field] = times[field].isoformat() if aware else text  # text keeps partial dates whole
    if times["start"] is not None and times["end"] is not None:
        # an end names a whole period ("2010-08-26": the day), as xarray's selection reads it
        try:
            end_of_period = pd.Period(bounds["end"]).end_time
        except ValueError:
            end_of_period = times["end"]
        if times["start"] > end_of_period:
            raise ValueError(f"{name}: start {selection.start} is after end {selection.end}")
    kept = frames.sel(time=slice(bounds["start"], bounds["end"])).isel(
        time=slice(None, None, selection.stride)
    )
    if kept.sizes["time"] == 0:
        held = frames["time"].values
        span = f"{str(held[0])[:16]} to {str(held[-1])[:16]}" if held.size else "no frame"
        between = f"{selection.start or '...'} and {selection.end or '...'}"
        raise ValueError(f"{name}: no frame between {between}; it holds {span}")
    return kept


class ArchitectureOptions(BaseModel):
    """Architecture options as a training config writes them: the fields of the model's frozen
    architecture config (:attr:`architecture_config`) less the data normalisation, with its
    transform as ``transform`` (the kind) and ``transform_offset``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: The architecture config class that :meth:`to_config` builds.
    architecture_config: ClassVar[type]

    def to_config(self, value_centre: float, value_scale: float) -> Any:
        """The architecture config with the data normalisation filled in."""
        values = self.model_dump()
        transform = PrecipitationTransform(
            kind=values.pop("transform"), offset=values.pop("transform_offset")
        )
        return self.architecture_config(
            **values, transform=transform, value_centre=value_centre, value_scale=value_scale
        )


class ModelOptions(ArchitectureOptions):
    """Architecture options; see :class:`~weatherunc.models.neural_process.config.NeuralProcessConfig`."""

    architecture_config: ClassVar[type[NeuralProcessConfig]] = NeuralProcessConfig
    hidden: int = Field(64, ge=8)
    latent_dimension: int = Field(32, ge=1)
    heads: int = Field(4, ge=1)
    self_attention_layers: int = Field(2, ge=0)
    attention: bool = True
    latent: bool = True
    distance_bias: bool = True
    cross_attention_layers: int = 1
    task_normalisation: bool = False
    task_scale_floor: float = Field(0.25, gt=0)
    minimum_std: float = Field(0.05, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    bin_edges: tuple[float, ...] = NeuralProcessConfig.__dataclass_fields__["bin_edges"].default
    coordinate_scale_km: float = Field(32.0, gt=0)
    transform: Literal["log", "box_cox", "identity"] = "log"
    transform_offset: float = Field(1.0, gt=0)
    stochastic_attention: bool = False
    attention_weibull_shape: float = Field(10.0, gt=0)
    attention_prior_rate: float = Field(1.0, gt=0)


#: Options added after the first runs: they count in the fingerprint only with stochastic attention,
#: so that the runs before them keep theirs.
STOCHASTIC_ATTENTION_OPTIONS = ("stochastic_attention", "attention_weibull_shape", "attention_prior_rate")


class SamplingOptions(BaseModel):
    """How training tasks are drawn from radar frames."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    patch_km: tuple[float, float] = (32.0, 96.0)
    context_points: tuple[int, int] = (16, 512)
    target_points: int = Field(256, ge=1)
    block_km: tuple[float, float] = (6.0, 32.0)
    masked_block_fraction: float = Field(0.5, ge=0, le=1)
    min_wet_fraction: float = Field(0.05, ge=0, le=1)
    dry_patch_fraction: float = Field(0.1, ge=0, le=1)
    min_observed_fraction: float = Field(0.9, gt=0, le=1)
    intensity_scale: tuple[float, float] = Field(
        (1.0, 1.0),
        description="each task's rates are multiplied by a factor drawn log-uniformly in this range",
    )

    @model_validator(mode="after")
    def _ranges(self) -> SamplingOptions:
        for name in ("patch_km", "context_points", "block_km", "intensity_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(low, high)}")
        return self


class TrainingConfig(BaseModel):
    """Everything ``weatherunc train CONFIG.yaml`` needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "anp"
    model: ModelOptions = ModelOptions()
    sampling: SamplingOptions = SamplingOptions()
    train: list[FrameSelection] = Field(min_length=1)
    validation: list[FrameSelection] = Field(min_length=1)
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    gradient_clip: float = Field(1.0, gt=0)
    bin_weight: float = Field(0.5, ge=0)
    attention_kl_weight: float = Field(
        1.0, ge=0, description="weight of the attention KL in the loss (with model.stochastic_attention)"
    )
    seed: int = 0
    validate_every: int = Field(200, ge=1)
    validation_tasks: int = Field(8, ge=1)
    patience: int = Field(5, ge=1, description="validations without improvement before stopping")
    checkpoint_every: int = Field(100, ge=1)
    device: str | None = None
    sampling_workers: int = Field(
        0,
        ge=0,
        description=(
            "processes drawing training batches ahead of the step (0: drawn in the training "
            "process); the batches do not depend on it"
        ),
    )
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    output_dir: Path = Path("runs/anp")
    initialise_from: Path | None = Field(
        None,
        description=(
            "fine-tuning: a neural-process checkpoint (.safetensors with its sidecar) whose weights "
            "and data normalisation a fresh run starts from; its architecture must be the one "
            "model: describes"
        ),
    )

    def fingerprint(self) -> str:
        """sha256 of everything that changes the result (``steps`` may grow on resume), of
        :data:`TASK_STREAM`, and of the content (not the path) of ``initialise_from``, so that a
        run is not resumed from other starting weights. Reads ``initialise_from`` when set. The
        stochastic-attention options count only when it is on (earlier runs keep their fingerprint)."""
        values = {
            **self.model_dump(
                mode="json", exclude={"steps", "output_dir", "device", "sampling_workers", "initialise_from"}
            ),
            "task_stream": TASK_STREAM,
        }
        if not self.model.stochastic_attention:
            for name in STOCHASTIC_ATTENTION_OPTIONS:
                values["model"].pop(name)
            values.pop("attention_kl_weight")
        if self.initialise_from is not None:
            values["initialise_from_sha256"] = sha256_of(self.initialise_from)
        return fingerprint(values)


def load_training_config(path: Path, **overrides) -> TrainingConfig:
    """Read and validate a YAML training config; ``ValueError`` names each bad field."""
    return load_yaml_config(path, TrainingConfig, **overrides)


def load_yaml_config(path: Path, config_class: type[BaseModel], **overrides) -> BaseModel:
    """Read a YAML mapping, apply the ``overrides`` that are not None, and validate it as
    ``config_class``; ``ValueError`` names the file and each bad field."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of options, got {type(values).__name__}")
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return config_class(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        raise ValueError(f"{path}: invalid training config: {problems}") from error
