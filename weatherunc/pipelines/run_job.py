"""Run a batch job: the work of ``weatherunc run JOB.yaml``.

Every (frame, tile) is an independent Dask task that predicts its tile and writes its zarr
chunks and manifest entry; a re-run skips what the manifest lists, so a job killed at any
moment finishes with the same store as an uninterrupted run. Scheduler: a local
``distributed`` cluster sized to the machine by default, ``threads`` or ``synchronous``, or
the address of any running ``distributed`` scheduler (dask-jobqueue, Kubernetes...), used
unchanged. Tasks of a lost worker are recomputed by the scheduler, and since a task's output
depends only on (job, frame, tile), the recomputed chunks are identical. With
``tiling.share_fit`` each frame's model is fitted once, in a task of its own that its tiles wait
for (deterministic too: the frame's fit depends only on (job, frame)).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
from tqdm import tqdm

from weatherunc import conventions
from weatherunc.catalog import Catalog
from weatherunc.checkpoints import sha256_of, software_versions
from weatherunc.fill_outputs import OBSERVATION_ATTRS
from weatherunc.fingerprints import fingerprint
from weatherunc.geolocation import crs_of, grid_mapping
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.models.registry import Interpolator
from weatherunc.pipelines.execution import JOB_SCHEDULERS, check_scheduler, cluster_client
from weatherunc.pipelines.ingest import IngestInput
from weatherunc.pipelines.job_config import JobConfig
from weatherunc.pipelines.job_store import JobStore
from weatherunc.pipelines.stages import (
    all_tiles,
    calibration_attributes,
    checked_calibration,
    checked_model,
    frame_axes,
    frame_model,
    ingest_observations,
    load_calibration,
    load_model,
    observations_input,
    predict_frame_tile,
    select_frames,
)
from weatherunc.pipelines.verification import verify_store, write_figures
from weatherunc.prediction.attributes import COORDINATE_ATTRS, stored_attrs
from weatherunc.store import COMPLETE_ATTRIBUTE, describe_changes
from weatherunc.tasks import Task
from weatherunc.transforms import TRANSFORM_ATTRIBUTES

FINGERPRINT_ATTRIBUTE = "weatherunc_job_fingerprint"
#: The 2-D geolocation coordinates the store keeps from the observations.
GEOLOCATION = (conventions.LATITUDE, conventions.LONGITUDE)


class JobStateError(RuntimeError):
    """The run folder holds output of another job config, input or model."""


@dataclass(frozen=True)
class JobReport:
    """Where the outputs are and what was done."""

    store: Path
    metrics: Path
    figures: list[Path]
    tiles_total: int
    tiles_written: int
    seconds: float


def _probe_variables(job: JobConfig) -> xr.Dataset:
    """The model's output variables on a tiny task (names, extra dims, coordinates)."""
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 10, size=(12, 2))
    task = Task(
        points[:10],
        np.abs(rng.normal(size=10)),
        points[10:],
        np.zeros(2),
        target_coords={"row": np.array([0, 1]), "column": np.array([0, 1])},
    )
    prediction = with_bin_probabilities(load_model(job).predict(task))
    calibration = load_calibration(job)
    return calibration.apply(prediction) if calibration is not None else prediction


def build_template(job: JobConfig, frames: xr.Dataset) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """The output store's lazy template and zarr encoding: chunks (1, tile, tile, ...)."""
    import dask.array as da

    probe = _probe_variables(job)
    ny, nx, nt = frames.sizes[conventions.Y], frames.sizes[conventions.X], frames.sizes["time"]
    tile = job.tiling.tile_pixels
    variables: dict[str, Any] = {
        conventions.PRECIPITATION: (
            (),
            {
                "units": conventions.PRECIPITATION_UNITS,
                "long_name": "precipitation rate the model saw (NaN: unobserved or withheld)",
            },
        ),
        "observation": ((), OBSERVATION_ATTRS),
        "withheld_precipitation": (
            (),
            {
                "units": conventions.PRECIPITATION_UNITS,
                "long_name": "withheld observed rate (truth of the predicted pixels)",
            },
        ),
    }
    for name, variable in probe.data_vars.items():
        variables[name] = (tuple(dim for dim in variable.dims if dim != "target"), variable.attrs)
    cell_methods = frames[conventions.PRECIPITATION].attrs.get("cell_methods", "time: point")
    data, encoding = {}, {}
    for name, (extra, attrs) in variables.items():
        shape = (nt, ny, nx, *[probe.sizes[dim] for dim in extra])
        chunks = (1, tile, tile, *[probe.sizes[dim] for dim in extra])
        dtype = np.int8 if name == "observation" else np.float32
        data[name] = (
            ("time", conventions.Y, conventions.X, *extra),
            da.zeros(shape, chunks=chunks, dtype=dtype),
            {**stored_attrs(name, attrs, cell_methods), "grid_mapping": conventions.CRS_VARIABLE},
        )
        encoding[name] = {
            "chunks": chunks,
            "dtype": dtype,
            "fill_value": 0 if name == "observation" else np.float32(np.nan),
        }
    coords = {
        "time": frames["time"].values,
        conventions.Y: frames[conventions.Y],
        conventions.X: frames[conventions.X],
    }
    coords.update({name: probe[name] for name in probe.coords if name not in ("row", "column")})
    # 2-D latitude/longitude, loaded so that they are written with the template's metadata.
    coords.update({name: frames[name].load() for name in GEOLOCATION if name in frames.coords})
    template = xr.Dataset(data, coords=coords, attrs={key: probe.attrs[key] for key in TRANSFORM_ATTRIBUTES})
    for name, attrs in COORDINATE_ATTRS.items():
        if name in template.coords:
            template[name].attrs.update(attrs)
    # A coordinate (named in every variable's "coordinates"), so plain xr.open_zarr and rioxarray find it.
    template.coords[conventions.CRS_VARIABLE] = grid_mapping(crs_of(frames))
    return template, encoding


def _tile_task(
    job: JobConfig,
    observations_path: str,
    frame_index: int,
    frame_number: int,
    tile,
    store: JobStore,
    template: xr.Dataset,
    earlier: tuple[tuple[int, int], ...] = (),
    fitted: Interpolator | None = None,
) -> int:
    """One tile of one frame, written to the store; ``earlier``: (index in the observations,
    frame number) of the frames before it in the self-calibration window; ``fitted``: the frame's
    shared fit (:func:`_frame_fit`)."""
    frames = xr.open_zarr(observations_path, consolidated=False)

    def frame_values(index: int) -> np.ndarray:
        return np.asarray(frames[conventions.PRECIPITATION].isel(time=index).values, dtype=np.float64)

    x_km, y_km = frame_axes(frames)
    records: list[dict[str, Any]] = []
    blocks = predict_frame_tile(
        job,
        frame_values(frame_index),
        x_km,
        y_km,
        frame_number,
        tile,
        template,
        earlier=[(frame_values(index), number) for index, number in earlier],
        fitted=fitted,
        records=records,
    )
    record = json.dumps(records, default=float) if records else ""
    store.write_tile(frame_number, tile.rows, tile.columns, blocks, tile.number, record=record)
    return tile.number


def _frame_fit(
    job: JobConfig, observations_path: str, frame_index: int, frame_number: int
) -> Interpolator | None:
    """The model fitted once for one frame's tiles (``tiling.share_fit``; :func:`frame_model`)."""
    frames = xr.open_zarr(observations_path, consolidated=False)
    values = np.asarray(frames[conventions.PRECIPITATION].isel(time=frame_index).values, dtype=np.float64)
    return frame_model(job, values, *frame_axes(frames), frame_number)


def _job_fingerprint(job: JobConfig, observations: IngestInput) -> tuple[str, dict[str, Any]]:
    """The job's fingerprint and the inputs it is computed from, described field by field:
    the job config, the observations (catalog entry, files with size and mtime), and the
    model checkpoint and calibration checksums. The observations enter the fingerprint by
    their own fingerprint; a self-calibrating model's own options (its
    ``self_calibration_defaults``) where it has any, so that a job does not resume across a
    change of them."""
    model = load_model(job)
    inputs = {
        "job": job.description(),
        "observations": observations.recorded,
        "model_checkpoint_sha256": getattr(model, "checkpoint_sha256", ""),
        "calibration_sha256": sha256_of(job.calibration_file) if job.calibration_file else "",
        # the store's layout: earlier stores flagged a job's predicted pixels otherwise
        "observation_flags": conventions.OBSERVATION_FLAG_MEANINGS,
    }
    own = dict(getattr(checked_model(job), "self_calibration_defaults", None) or {})
    if job.self_calibration and own:  # absent otherwise: earlier runs' fingerprints stay the same
        inputs["model_self_calibration_options"] = {
            name: list(value) if isinstance(value, tuple) else value for name, value in own.items()
        }
    hashed = {**inputs, "observations": observations.digest}
    return fingerprint(hashed), inputs


def _what_changed(recorded: dict[str, Any] | None, inputs: dict[str, Any], observations: IngestInput) -> str:
    """The fields of ``inputs`` that differ from a run's recorded ones; runs of earlier
    versions recorded the observations by fingerprint only, and are compared so."""
    if recorded is not None and isinstance(recorded.get("observations"), str):
        inputs = {**inputs, "observations": observations.digest}
    return describe_changes(recorded, inputs)


def _run_tasks(
    tasks: list[tuple], job: JobConfig, *, scheduler: str, workers: int | None, progress: bool
) -> None:
    """Run the tile tasks (the arguments of :func:`_tile_task`); where the tiles share a fit, each
    frame's fit first (:func:`_frame_fit`), passed to its tiles."""
    if not tasks:
        return
    # (observations, frame index, frame number) of each frame with tiles to do, where they share a fit
    frames = sorted({arguments[1:4] for arguments in tasks}) if job.tiling.share_fit else []
    if scheduler in ("threads", "synchronous"):
        fits = dask.compute(
            *[dask.delayed(_frame_fit, pure=False)(job, *frame) for frame in frames],
            scheduler=scheduler,
            num_workers=workers,
        )
        fitted = {frame[2]: fit for frame, fit in zip(frames, fits)}
        delayed = [
            dask.delayed(_tile_task, pure=False)(*arguments, fitted.get(arguments[3])) for arguments in tasks
        ]
        with tqdm(total=len(delayed), desc=f"{job.name} tiles", disable=not progress) as bar:
            for start in range(0, len(delayed), 64):
                dask.compute(*delayed[start : start + 64], scheduler=scheduler, num_workers=workers)
                bar.update(len(delayed[start : start + 64]))
        return
    from distributed import as_completed

    with cluster_client(scheduler, workers) as client:
        fitted = {frame[2]: client.submit(_frame_fit, job, *frame, pure=False, retries=2) for frame in frames}
        futures = [
            client.submit(_tile_task, *arguments, fitted.get(arguments[3]), pure=False, retries=2)
            for arguments in tasks
        ]
        for future in tqdm(
            as_completed(futures), total=len(futures), desc=f"{job.name} tiles", disable=not progress
        ):
            future.result()


def run_job(
    job: JobConfig,
    *,
    scheduler: str = "local",
    workers: int | None = None,
    restart: bool = False,
    progress: bool = True,
    catalog: Catalog | None = None,
) -> JobReport:
    """Run (or resume) ``job``; see the module docstring. ``scheduler`` is one of
    :data:`JOB_SCHEDULERS` or a distributed scheduler's address, checked (reachable) before
    anything is read or written."""
    check_scheduler(scheduler, local=JOB_SCHEDULERS)
    checked_model(job)  # an unknown model or option fails before the run folder is made
    checked_calibration(job)  # so does a calibration file that is missing or fitted for other weights
    start = time.perf_counter()
    run_dir = job.run_dir
    store = JobStore(run_dir / "prediction.zarr")
    # The fingerprint check comes before the ingest, which would replace observations of other input.
    catalog = catalog or Catalog.load()
    # an unknown dataset fails here, before the run folder is made
    opened = observations_input(job, catalog=catalog)
    run_dir.mkdir(parents=True, exist_ok=True)
    digest, inputs = _job_fingerprint(job, opened)
    finished_digest = None
    if store.final.exists():
        import zarr

        finished_attrs = zarr.open_group(store.final, mode="r").attrs
        finished_digest = finished_attrs.get(FINGERPRINT_ATTRIBUTE)
        if finished_digest != digest and not restart:
            changes = _what_changed(
                json.loads(finished_attrs["provenance"]) if "provenance" in finished_attrs else None,
                inputs,
                opened,
            )
            raise JobStateError(
                f"{store.final} holds the output of another job config, input or model ({changes}); pass "
                "--restart to replace it"
            )
    staged_digest = store.staged_fingerprint()  # None: no staging folder, or one that holds nothing usable
    if staged_digest is not None and staged_digest != digest and not restart:
        changes = _what_changed(store.staged_inputs(), inputs, opened)
        raise JobStateError(
            f"{store.folder} holds an unfinished run of another job config, input or model ({changes}); "
            "pass --restart to discard it"
        )
    observations = ingest_observations(job, catalog=catalog, progress=progress, opened=opened)
    frames = select_frames(observations, job)
    frame_indices = [
        int(np.flatnonzero(observations["time"].values == time_value)[0])
        for time_value in frames["time"].values
    ]
    tiles = all_tiles(frames, job)
    expected = {(frame, tile.number) for frame in range(len(frame_indices)) for tile in tiles}
    if finished_digest == digest and not restart:
        store.discard()  # a staging folder here (of this job) was left by a run killed after its rename
        return JobReport(
            store.final,
            run_dir / "metrics.json",
            sorted((run_dir / "figures").glob("*.png")),
            len(expected),
            0,
            time.perf_counter() - start,
        )
    # Rebuilt on resume too (it is deterministic): the staged store does not open until every tile is written.
    template, encoding = build_template(job, frames)
    if restart or staged_digest != digest:
        store.begin(template, encoding, digest, inputs)
    frame_template = template.isel(time=0, drop=True)
    done = store.finished()
    tasks = [
        (
            job,
            str(run_dir / "observations.zarr"),
            frame_indices[frame],
            frame,
            tile,
            store,
            frame_template,
            tuple(
                (frame_indices[number], number)
                for number in range(max(0, frame - job.self_calibration_window + 1), frame)
            ),
        )
        for frame in range(len(frame_indices))
        for tile in tiles
        if (frame, tile.number) not in done
    ]
    _run_tasks(tasks, job, scheduler=scheduler, workers=workers, progress=progress)
    store.reveal(expected)
    metrics = verify_store(store.zarr_path, job)
    # the seconds of this run, which computed the tiles that earlier (interrupted) runs had not
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    metrics["tiles_computed"], metrics["tiles_total"] = len(tasks), len(expected)
    if job.self_calibration:  # what each tile fitted on its pseudo-targets
        metrics["self_calibration"] = store.tile_records()
    metrics_path = run_dir / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2, default=float))
    figures = write_figures(store.zarr_path, job, metrics, run_dir / "figures")
    attrs = {
        FINGERPRINT_ATTRIBUTE: digest,
        "job_config": json.dumps(job.model_dump(mode="json"), sort_keys=True),
        "provenance": json.dumps(inputs, sort_keys=True, default=str),
        "software_versions": json.dumps(software_versions(), sort_keys=True),
        "source": f"weatherunc batch job {job.name} on catalog entry {job.dataset}",
        "attribution": observations.attrs.get("attribution", observations.attrs.get("source", "")),
        "Conventions": "CF-1.10",
        "model": job.model.name,
        **{key: value for key, value in template.attrs.items() if key.startswith("calibration")},
    }
    attrs.update(calibration_attributes(job))
    store.complete(expected, attrs)
    return JobReport(
        store.final, metrics_path, figures, len(expected), len(tasks), time.perf_counter() - start
    )


def open_job_output(store: Path) -> xr.Dataset:
    """Open a finished job store lazily; refuses an unfinished one."""
    dataset = xr.open_zarr(store, consolidated=False)
    if not dataset.attrs.get(COMPLETE_ATTRIBUTE):
        raise ValueError(f"{store} is not marked complete")
    return dataset
