"""Batch-job configuration (``weatherunc run JOB.yaml``), validated; errors name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from weatherunc.fingerprints import fingerprint
from weatherunc.tiling import DEFAULT_TILING, GridTiling


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FramesOptions(_Strict):
    """Which frames of the dataset: ``start``/``end`` (ISO, inclusive), every ``stride``-th, at most
    ``limit``."""

    start: str | None = None
    end: str | None = None
    stride: int = Field(1, ge=1)
    limit: int | None = Field(None, ge=1)


class TargetOptions(_Strict):
    """What is predicted.

    ``withheld``: ``blocks`` square regions of ``block_pixels`` are hidden from the model in each
    frame (placed over observed rain, seeded per frame) and predicted, so the output can be
    verified against the withheld truth. ``unobserved``: pixels without an observation within
    ``max_distance_pixels`` of one are predicted (operational gap filling).
    """

    mode: Literal["withheld", "unobserved"] = "withheld"
    blocks: int = Field(4, ge=1)
    block_pixels: int = Field(32, ge=2)
    min_wet_fraction: float = Field(0.2, ge=0, le=1)
    max_distance_pixels: int = Field(32, ge=1)


class ModelOptions(_Strict):
    """A registered model (``gp``, ``kriging``, ``idw``, ``climatology``, ``anp``, ``cnp``, ``convnp``) and
    its options."""

    name: str
    checkpoint: Path | None = None
    options: dict[str, Any] = Field(default_factory=dict)


#: Jobs' tiles: larger than :class:`~weatherunc.tiling.GridTiling`'s default, as they are also the
#: store's zarr chunks.
JOB_TILE_PIXELS = 128


class TilingOptions(_Strict):
    """The YAML form of the job's :class:`~weatherunc.tiling.GridTiling` (:meth:`to_tiling`): tiles of
    ``tile_pixels`` (also the zarr chunk size), contexts from a halo of ``halo_pixels``, at most
    ``max_context``, tiles blended ``blend_pixels`` into their neighbours (0: not blended).
    The seed is the job's, per frame, and the targets are the job's ``targets``. ``share_fit``: a
    model that fits per task (the GP) is fitted once per frame and its tiles share that fit
    (:mod:`weatherunc.shared_fit`), instead of each tile fitting its own. ``contexts``: which
    observed pixels a tile keeps when its halo holds more than ``max_context`` ("random" or
    "nearest": :class:`~weatherunc.tiling.GridTiling`)."""

    tile_pixels: int = Field(JOB_TILE_PIXELS, ge=8)
    halo_pixels: int = Field(DEFAULT_TILING.halo_pixels, ge=0)
    max_context: int = Field(DEFAULT_TILING.max_context, ge=1)
    blend_pixels: int = Field(DEFAULT_TILING.blend_pixels, ge=0)
    share_fit: bool = False
    contexts: Literal["random", "nearest"] = "random"

    @model_validator(mode="after")
    def _valid_tiling(self) -> TilingOptions:
        self.to_tiling(seed=0)  # GridTiling's own checks (blend_pixels at most half a tile)
        return self

    def to_tiling(self, seed: int) -> GridTiling:
        """The :class:`~weatherunc.tiling.GridTiling` these options describe, its contexts drawn
        with ``seed``."""
        return GridTiling(
            tile_pixels=self.tile_pixels,
            halo_pixels=self.halo_pixels,
            max_context=self.max_context,
            seed=seed,
            blend_pixels=self.blend_pixels,
            contexts=self.contexts,
        )

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Dumped without ``blend_pixels`` where tiles are not blended, without ``share_fit`` where
        tiles fit their own and without ``contexts`` where they are random, so that the description
        and fingerprint of a job written before these options existed stay the same."""
        dumped = handler(self)
        if not self.blend_pixels:
            dumped.pop("blend_pixels", None)
        if not self.share_fit:
            dumped.pop("share_fit", None)
        if self.contexts == "random":
            dumped.pop("contexts", None)
        return dumped


class PlotOptions(_Strict):
    """Maps of ``frames`` (indices into the selected frames) and diagnostics."""

    enabled: bool = True
    frames: list[int] = Field(default_factory=lambda: [0])
    threshold: float = Field(1.0, gt=0)


class WindowOptions(_Strict):
    """Self-calibration over a rolling window: each tile also draws pseudo-targets from the
    ``window_frames - 1`` frames before it (their observations, withheld blocks excluded);
    ``options``: fields of :class:`~weatherunc.heads.self_calibration.SelfCalibrationOptions`
    (e.g. ``evidence_draws``), checked here."""

    window_frames: int = Field(1, ge=1, le=12)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_options(self) -> WindowOptions:
        from weatherunc.heads.self_calibration import SelfCalibrationOptions

        SelfCalibrationOptions.from_options(self.options)  # a ValueError names the field
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Dumped without ``options`` where there are none, so that the fingerprint of a job
        written before they existed stays the same."""
        dumped = handler(self)
        if not self.options:
            dumped.pop("options", None)
        return dumped


class JobSelfCalibration(_Strict):
    """``calibration: {self: {window_frames: N}}``; ``calibration: self`` is one frame."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)
    self_: WindowOptions = Field(alias="self")


class JobConfig(_Strict):
    """One batch job: observations -> tasks -> model -> tiled prediction -> calibration -> verification ->
    plots."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        description="the job's folder in output_dir: letters, digits, _ . -, not starting with a dot",
    )
    dataset: str
    frames: FramesOptions = FramesOptions()
    targets: TargetOptions = TargetOptions()
    model: ModelOptions
    calibration: JobSelfCalibration | Path | None = Field(
        None,
        description=(
            'calibration.json of the model, "packaged" for the one shipped with a packaged model, '
            '"self": each tile calibrates itself on pseudo-gaps of its own observations '
            "(weatherunc.heads.self_calibration), or {self: {window_frames: N, options: {...}}}: also "
            "on those of the N - 1 frames before it, with SelfCalibrationOptions fields"
        ),
    )
    tiling: TilingOptions = TilingOptions()
    plots: PlotOptions = PlotOptions()
    output_dir: Path = Path("outputs")
    seed: int = 0
    torch_threads: int = Field(
        1,
        ge=1,
        description=(
            "torch threads per tile; with N Dask worker threads per machine, N x torch_threads "
            "should not exceed its cores"
        ),
    )

    @property
    def calibration_file(self) -> Path | None:
        """The calibration file, with ``packaged`` resolved to the shipped ``MODEL.calibration.json``."""
        if self.calibration is None or self.self_calibration:
            return None
        if str(self.calibration) == "packaged":
            from weatherunc.models.registry import PACKAGED_MODELS_DIR

            return PACKAGED_MODELS_DIR / f"{self.model.name}.calibration.json"
        return self.calibration

    @property
    def self_calibration(self) -> bool:
        """Whether each prediction calibrates itself (``calibration: self`` or ``{self: ...}``)."""
        return isinstance(self.calibration, JobSelfCalibration) or str(self.calibration) == "self"

    @property
    def self_calibration_options(self) -> dict[str, Any]:
        """The ``SelfCalibrationOptions`` fields the job sets (``calibration: {self: {options: ...}}``)."""
        if isinstance(self.calibration, JobSelfCalibration):
            return dict(self.calibration.self_.options)
        return {}

    @property
    def self_calibration_window(self) -> int:
        """Frames whose pseudo-targets each tile's self-calibration pools (itself included); 0
        without self-calibration."""
        if isinstance(self.calibration, JobSelfCalibration):
            return self.calibration.self_.window_frames
        return 1 if self.self_calibration else 0

    @property
    def run_dir(self) -> Path:
        """``output_dir / name``: the store, metrics.json and figures/ go here."""
        return self.output_dir / self.name

    def description(self) -> dict[str, Any]:
        """Everything that determines the output (not where it goes)."""
        return self.model_dump(mode="json", exclude={"output_dir", "plots"})

    def fingerprint(self) -> str:
        """sha256 of :meth:`description`."""
        return fingerprint(self.description())


def load_job_config(path: Path, **overrides: Any) -> JobConfig:
    """Read and validate a job YAML; relative checkpoint/calibration paths are taken from the current
    folder."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read the job config ({error})") from error
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of job options, got {type(values).__name__}")
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return JobConfig(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
            for issue in _relevant_issues(error.errors(), values)
        )
        raise ValueError(f"{path}: invalid job config: {problems}") from error


def _relevant_issues(issues: list[Any], values: dict[str, Any]) -> list[Any]:
    """``issues`` without those of the ``calibration`` union's other branch: a mapping is
    ``{self: ...}`` (not a path), a text a path (not ``{self: ...}``); the branch's name is left out
    of the location."""
    mapping = isinstance(values.get("calibration"), dict)
    kept = []
    for issue in issues:
        location = tuple(issue["loc"])
        if location[:1] == ("calibration",) and len(location) > 1:
            branch = str(location[1])
            if (branch == "JobSelfCalibration") != mapping:
                continue
            issue = {**issue, "loc": (location[0], *location[2:])}
        kept.append(issue)
    return kept or issues
