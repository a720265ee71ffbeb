"""The stages of a batch job, each a function a notebook can call alone.

ingest -> select frames -> targets (withheld blocks or unobserved pixels) -> model (fit per
tile for the GP and kriging, loaded for neural processes) -> tiled prediction -> calibration ->
verification against withheld truth -> figures.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage

from weatherunc import conventions
from weatherunc.blending import predict_blended_tile
from weatherunc.catalog import Catalog
from weatherunc.checkpoints import CheckpointError
from weatherunc.devices import torch_threads
from weatherunc.geolocation import crs_of
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.calibration import Calibration
from weatherunc.heads.self_calibration import (
    EarlierFrame,
    model_options,
    self_calibrated,
    self_calibration_record,
)
from weatherunc.models.registry import Interpolator, get_model
from weatherunc.pipelines.ingest import IngestInput, ingest, open_input
from weatherunc.pipelines.job_config import JobConfig
from weatherunc.shared_fit import shared_model
from weatherunc.store import open_store
from weatherunc.tasks import WET_THRESHOLD, planar_kilometres
from weatherunc.tasks.blocks import BlockRules, cover, place_blocks
from weatherunc.tiling import GridTiling, Tile


def observations_input(job: JobConfig, *, catalog: Catalog | None = None) -> IngestInput:
    """The job's dataset opened for ingest (headers only, nothing written): what stage 1
    will store and the fingerprint it will record, for the job's fingerprint check."""
    return open_input(job.dataset, catalog or Catalog.load())


def ingest_observations(
    job: JobConfig,
    *,
    catalog: Catalog | None = None,
    progress: bool = True,
    opened: IngestInput | None = None,
) -> xr.Dataset:
    """Stage 1: the job's dataset as a complete zarr store in the run folder (resumable), opened lazily.

    Replaces an ``observations.zarr`` of other input, so a run calls it only once the job's
    fingerprint check has passed; ``opened`` is the input that check used.
    """
    report = ingest(
        job.dataset,
        job.run_dir / "observations.zarr",
        catalog=catalog,
        scheduler="threads",
        overwrite=True,
        progress=progress,
        opened=opened,
    )
    return open_store(report.store)


def select_frames(observations: xr.Dataset, job: JobConfig) -> xr.Dataset:
    """Stage 2: the frames the job covers."""
    frames = observations.sel(time=slice(job.frames.start, job.frames.end)).isel(
        time=slice(None, None, job.frames.stride)
    )
    if job.frames.limit is not None:
        frames = frames.isel(time=slice(0, job.frames.limit))
    if frames.sizes["time"] == 0:
        raise ValueError(
            f"job {job.name}: frames {job.frames.start}..{job.frames.end} select no frame of {job.dataset}"
        )
    return frames


def target_mask(values: np.ndarray, job: JobConfig, frame_number: int) -> np.ndarray:
    """Stage 3: pixels to predict in one frame ``[ny, nx]`` (bool), deterministic in (job seed, frame).

    ``withheld``: the observed pixels of up to ``blocks`` squares
    (:func:`~weatherunc.tasks.blocks.place_blocks`, at most ``300 * blocks`` attempts), each at
    least half observed, with at least ``min_wet_fraction`` of its observed pixels above 0.1 mm/h
    and a pixel or more away from the others; ``unobserved``:
    unobserved pixels within ``max_distance_pixels`` of an observation.
    """
    observed = np.isfinite(values)
    if job.targets.mode == "unobserved":
        if not observed.any():
            return np.zeros(values.shape, dtype=bool)
        distance = ndimage.distance_transform_edt(~observed)
        return ~observed & (distance <= job.targets.max_distance_pixels)
    rng = np.random.default_rng([job.seed, frame_number])
    rules = BlockRules(
        attempts=300 * job.targets.blocks,
        touch_far_edge=False,
        spacing=1,
        min_observed_fraction=0.5,
        min_wet_fraction=job.targets.min_wet_fraction,
    )
    wet = np.nan_to_num(values) > WET_THRESHOLD
    blocks = place_blocks(
        values.shape, job.targets.blocks, job.targets.block_pixels, rules, rng, observed=observed, wet=wet
    )
    mask = cover(values.shape, blocks)
    return mask & observed


@functools.lru_cache(maxsize=4)
def _cached_model(name: str, checkpoint: str | None, options: str, files: str) -> Interpolator:
    """The model by name and options; ``files`` (:func:`_model_files`) is part of the cache key only."""
    kwargs = json.loads(options)
    if checkpoint:
        kwargs["checkpoint"] = checkpoint
    return get_model(name, **kwargs)


def _model_files(job: JobConfig) -> str:
    """Resolved path, inode, modification time and size of each file the job's model is read from
    (its checkpoint, a deep ensemble's members, a SWAG or Bayes by Backprop posterior, and their
    sidecars), as JSON: a file changed in place is read again, not taken from the cache."""
    options = job.model.options
    paths = [
        job.model.checkpoint,
        options.get("checkpoint"),
        options.get("swag"),
        options.get("bayes_by_backprop"),
    ]
    members = options.get("members")
    paths += list(members) if isinstance(members, list | tuple) else []
    stamps = []
    for path in paths:
        if not isinstance(path, str | Path):
            continue
        for file in (Path(path), Path(path).with_suffix(".json")):  # the weights and their sidecar
            if file.is_file():
                status = file.stat()
                stamps.append([str(file.resolve()), status.st_ino, status.st_mtime_ns, status.st_size])
    return json.dumps(stamps)


def _job_model(job: JobConfig) -> Interpolator:
    checkpoint = str(job.model.checkpoint) if job.model.checkpoint else None
    options = json.dumps(job.model.options, sort_keys=True)
    return _cached_model(job.model.name, checkpoint, options, _model_files(job))


def checked_model(job: JobConfig) -> Interpolator:
    """Stage 4's model, built once before a run reads or writes anything: a ``ValueError`` naming
    the job's ``model`` fields for an unknown model name or options the model does not take
    (a checkpoint's own errors, :class:`~weatherunc.checkpoints.CheckpointError`, as they are)."""
    try:
        return _job_model(job)
    except CheckpointError:
        raise
    except (TypeError, AttributeError, ValueError) as error:
        raise ValueError(
            f"job {job.name!r}: model {job.model.name!r} with options {job.model.options}: {error} "
            "(check model.name and model.options)"
        ) from error


def load_model(
    job: JobConfig, earlier_frames: Sequence[EarlierFrame] = (), fitted: Interpolator | None = None
) -> Interpolator:
    """Stage 4: the job's model (loaded once per worker process and reused by its tiles), or
    ``fitted``, the frame's shared fit of it (:func:`frame_model`), wrapped to calibrate itself
    where the job asks, with ``earlier_frames`` as its rolling window and the job's options over
    the model's own (taken from the job's model, which a shared fit need not carry)."""
    loaded = _job_model(job)
    model = fitted if fitted is not None else loaded
    if not job.self_calibration:
        return model
    options = model_options(loaded, job.self_calibration_options)
    return self_calibrated(model, options, name=job.model.name, earlier_frames=tuple(earlier_frames))


def frame_model(
    job: JobConfig, values: np.ndarray, x_km: np.ndarray, y_km: np.ndarray, frame_number: int
) -> Interpolator | None:
    """Stage 4 once per frame where the job's tiles share a fit (``tiling.share_fit``): the job's
    model fitted on the frame's observations near its targets (values ``[ny, nx]`` with the
    targets hidden, :func:`weatherunc.shared_fit.shared_model`), for :func:`predict_frame_tile`;
    None where the tiles fit their own, the model has nothing to fit, or the frame nothing to
    predict."""
    if not job.tiling.share_fit:
        return None
    targets = target_mask(values, job, frame_number)
    model = _job_model(job)
    with torch_threads(job.torch_threads):
        shared = shared_model(
            model, np.where(targets, np.nan, values), x_km, y_km, tiling_of(job, frame_number), targets
        )
    return None if shared is model else shared


def load_calibration(job: JobConfig) -> Calibration | None:
    """The calibration fitted for the job's model, if the job names one."""
    path = job.calibration_file
    if path is None:
        return None
    if not path.exists():
        raise ValueError(
            f"job {job.name}: calibration file {path} does not exist (calibration: a file, 'packaged' or "
            "'self')"
        )
    return Calibration.load(path)


def checked_calibration(job: JobConfig) -> Calibration | None:
    """:func:`load_calibration`, checked before a run: ``ValueError`` where the file records a
    checkpoint other than the job's model's (a calibration fitted for other weights)."""
    calibration = load_calibration(job)
    fitted_for = "" if calibration is None else calibration.checkpoint_sha256
    ours = str(getattr(_job_model(job), "checkpoint_sha256", "") or "") if fitted_for else ""
    if fitted_for and ours and fitted_for != ours:
        raise ValueError(
            f"job {job.name}: calibration file {job.calibration_file} was fitted for "
            f"{calibration.model or 'a model'} with checkpoint sha256 {fitted_for[:12]}..., but the job's "
            f"model {job.model.name} has {ours[:12]}... (for an ensemble or weight samples, one checksum of "
            "its members' checkpoints and its posterior); fit one for it with `weatherunc calibrate`"
        )
    return calibration


def calibration_attributes(job: JobConfig) -> dict[str, Any]:
    """The attributes that record the job's calibration in its output (and its maps' titles)."""
    if job.self_calibration:
        window = job.self_calibration_window
        return {
            "calibration": "self: each tile calibrated on pseudo-gaps of its own observations"
            + (f" and of the {window - 1} frames before it" if window > 1 else ""),
            "calibration_window_frames": window,
        }
    calibration = load_calibration(job)
    if calibration is None:
        return {}
    return {**calibration.attrs(), "calibration": json.dumps(calibration.to_dict())}


def tiling_of(job: JobConfig, frame_number: int) -> GridTiling:
    """The job's grid tiling (:meth:`~weatherunc.pipelines.job_config.TilingOptions.to_tiling`) with a
    per-frame seed, so a recomputed tile is identical."""
    return job.tiling.to_tiling(
        seed=int(np.random.SeedSequence([job.seed, frame_number]).generate_state(1)[0])
    )


def prepared_prediction(job: JobConfig, prediction: xr.Dataset) -> xr.Dataset:
    """Stage 6 for one tile's prediction: bin probabilities added, and calibrated where the job
    names a calibration."""
    prediction = with_bin_probabilities(prediction)
    calibration = load_calibration(job)
    return calibration.apply(prediction) if calibration is not None else prediction


def predict_frame_tile(
    job: JobConfig,
    values: np.ndarray,
    x_km: np.ndarray,
    y_km: np.ndarray,
    frame_number: int,
    tile: Tile,
    template: xr.Dataset,
    earlier: Sequence[tuple[np.ndarray, int]] = (),
    fitted: Interpolator | None = None,
    records: list[dict[str, Any]] | None = None,
) -> dict[str, np.ndarray]:
    """Stages 5 and 6 for one tile: every output variable's block ``[tile_ny, tile_nx, ...]``;
    with ``tiling.blend_pixels`` > 0 the tile's prediction is blended with its neighbours'
    (:func:`weatherunc.blending.predict_blended_tile`), each calibrated before blending.

    ``template`` holds the output variables of one frame (dims y, x, ...) and their coordinates;
    ``earlier``: the values ``[ny, nx]`` and frame numbers of the frames before this one that the
    job's self-calibration window takes (their own targets are withheld from them too); ``fitted``:
    the frame's shared fit of the model (:func:`frame_model`), else the tile fits its own;
    ``records``: where the job self-calibrates, the tile's record (its prediction's
    ``self_calibration``, with the frame and tile numbers and ``seconds``) is appended to it.
    """
    targets = target_mask(values, job, frame_number)
    seen = np.where(targets, np.nan, values)
    observation = observation_flags(values, targets)
    height, width = tile.rows.stop - tile.rows.start, tile.columns.stop - tile.columns.start
    blocks: dict[str, np.ndarray] = {}
    prediction = None
    if targets[tile.rows, tile.columns].any():
        with torch_threads(job.torch_threads):  # Dask's threads x torch's must not exceed the cores
            earlier_frames = [
                EarlierFrame(np.where(target_mask(other, job, number), np.nan, other), x_km, y_km)
                for other, number in earlier
            ]
            prediction = predict_blended_tile(
                load_model(job, earlier_frames, fitted),
                seen,
                x_km,
                y_km,
                tile,
                tiling_of(job, frame_number),
                targets,
                prepare=functools.partial(prepared_prediction, job),
            )
        record = (
            None
            if prediction is None
            else self_calibration_record(prediction, frame=frame_number, tile=tile.number)
        )
        if records is not None and record is not None:
            records.append(record)
    for name, variable in template.data_vars.items():
        if conventions.Y not in variable.dims:
            continue  # the grid mapping, written with the template
        if name == conventions.PRECIPITATION:
            blocks[name] = seen[tile.rows, tile.columns].astype(np.float32)
        elif name == "observation":
            block = observation[tile.rows, tile.columns]
            predicted = (
                np.zeros(block.shape, dtype=bool)
                if prediction is None
                else np.isfinite(prediction[conventions.PRECIPITATION_MEAN].values)
            )  # targets that no tile could predict stay NaN
            unfilled = (block == conventions.FILLED) & ~predicted
            blocks[name] = np.where(unfilled, conventions.UNFILLED, block).astype(np.int8)
        elif name == "withheld_precipitation":
            blocks[name] = np.where(targets, values, np.nan)[tile.rows, tile.columns].astype(np.float32)
        elif prediction is not None and name in prediction:
            blocks[name] = (
                prediction[name]
                .transpose(conventions.Y, conventions.X, *variable.dims[2:])
                .values.astype(np.float32)
            )
        else:
            blocks[name] = np.full((height, width, *variable.shape[2:]), np.nan, dtype=np.float32)
    return blocks


def observation_flags(values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The ``observation`` flag ``[ny, nx]`` (:data:`weatherunc.conventions.OBSERVATION_FLAG_MEANINGS`)
    of a frame's ``values`` and its ``targets`` (bool): observed targets are withheld, unobserved ones
    filled (:func:`predict_frame_tile` flags those left NaN unfilled), other observed pixels observed and
    other unobserved ones unfilled."""
    observed = np.isfinite(values)
    return np.select(
        [targets & observed, targets, observed],
        [conventions.WITHHELD, conventions.FILLED, conventions.OBSERVED],
        conventions.UNFILLED,
    ).astype(np.int8)


def frame_axes(frames: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the grid in km ``[nx]``, ``[ny]``."""
    return planar_kilometres(frames[conventions.X].values, frames[conventions.Y].values, crs_of(frames))


def all_tiles(frames: xr.Dataset, job: JobConfig) -> list[Tile]:
    """The tiles of one frame."""
    return tiling_of(job, 0).tiles((frames.sizes[conventions.Y], frames.sizes[conventions.X]))


def write_metrics(path: Path, metrics: dict[str, Any]) -> Path:
    """``metrics.json`` beside the store."""
    path.write_text(json.dumps(metrics, indent=2, default=float))
    return path
