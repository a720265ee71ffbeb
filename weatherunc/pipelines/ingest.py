"""Ingest a catalog entry into a chunked zarr store, in parallel with Dask, resumably.

The work of ``weatherunc ingest NAME --out STORE.zarr``.
Each frame is read, converted to mm/h, checked and written by one Dask task; a re-run
after an interruption writes only the frames that have no marker yet (see
:mod:`weatherunc.store`). Bad input removes the staged store and leaves any earlier
complete store untouched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import dask
import xarray as xr

from weatherunc import conventions
from weatherunc.catalog import Catalog
from weatherunc.errors import InputDataError
from weatherunc.fingerprints import fingerprint
from weatherunc.loading import GridSource, open_stations
from weatherunc.pipelines.execution import check_scheduler, compute_tasks
from weatherunc.store import (
    StagedStore,
    describe_changes,
    frame_encoding,
    store_description,
    store_fingerprint,
)


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did."""

    store: Path
    frames_total: int
    frames_written: int
    frames_already_done: int
    seconds: float


def _write_one(source: GridSource, staged: StagedStore, index: int) -> InputDataError | None:
    """Read, check and write frame ``index``. Bad input is returned, not raised, so that
    every task has ended before the pipeline removes the staged store; once one frame
    has failed, the tasks still queued skip their work."""
    if staged.failed_marker.exists():
        return None
    try:
        values = source.load_frame(index)
    except InputDataError as error:
        staged.failed_marker.touch()
        return error
    staged.write_frame(conventions.PRECIPITATION, index, values)
    return None


def _source_description(source: GridSource, catalog: Catalog) -> dict[str, object]:
    root = catalog.root_of(source.entry).resolve()
    files = sorted({frame.path for frame in source.frames})
    return {
        "entry": source.entry.model_dump(mode="json"),
        "files": [
            (str(path.resolve().relative_to(root)), path.stat().st_size, path.stat().st_mtime_ns)
            for path in files
        ],
        "frames": [(str(frame.path.name), frame.index, frame.time.isoformat()) for frame in source.frames],
    }


@dataclass(frozen=True)
class IngestInput:
    """A catalog entry opened for ingest, before anything is written: its lazy dataset, its
    frame source (``None`` for a station set, which is read whole) and the description that
    its store's fingerprint is computed from."""

    name: str
    dataset: xr.Dataset
    source: GridSource | None
    description: dict[str, object]

    @property
    def digest(self) -> str:
        """The fingerprint a store of this input records."""
        return fingerprint(self.description)

    @property
    def recorded(self) -> dict[str, object]:
        """The description as a store records it, to say what changed: the catalog entry and
        the file rows in full, the per-frame (or per-station value) list by count and sha256."""
        return {
            key: {"count": len(value), "sha256": fingerprint({key: value})}
            if key in ("frames", "values")
            else value
            for key, value in self.description.items()
        }


def open_input(name: str, catalog: Catalog) -> IngestInput:
    """Open catalog entry ``name`` for ingest: grids are listed and checked from their
    headers, frame data are not read; station sets are read whole."""
    entry = catalog.get(name)
    if entry.kind == "stations":
        dataset = open_stations(catalog, name).compute()
        description = {
            "entry": entry.model_dump(mode="json"),
            "values": dataset[conventions.PRECIPITATION].values.tolist(),
        }
        return IngestInput(name=name, dataset=dataset, source=None, description=description)
    source = GridSource.from_catalog(catalog, name)
    return IngestInput(
        name=name,
        dataset=source.to_dataset(),
        source=source,
        description=_source_description(source, catalog),
    )


def ingest(
    name: str,
    out: Path,
    *,
    catalog: Catalog | None = None,
    scheduler: str = "threads",
    workers: int | None = None,
    overwrite: bool = False,
    restart: bool = False,
    progress: bool = True,
    opened: IngestInput | None = None,
) -> IngestReport:
    """Write catalog entry ``name`` to the zarr store ``out`` and return a report.

    ``overwrite`` replaces an existing store of different content (only once the new one
    is complete); ``restart`` discards a staged store of different content. ``opened`` is
    entry ``name`` already opened with :func:`open_input` (by a caller that needed its
    fingerprint first); by default the entry is opened here. ``scheduler`` (see
    :func:`~weatherunc.pipelines.execution.compute_tasks`) is checked before anything is read.
    """
    check_scheduler(scheduler)
    start = time.perf_counter()
    catalog = catalog or Catalog.load()
    out = Path(out)
    staged = StagedStore(out)
    if opened is None:
        opened = open_input(name, catalog)
    elif opened.name != name:
        raise ValueError(f"ingest of {name!r} was given the opened input of {opened.name!r}")
    dataset, source, digest = opened.dataset, opened.source, opened.digest
    total = dataset.sizes.get(conventions.TIME, 1)

    if out.exists():
        if store_fingerprint(out) == digest:
            if staged.staged_fingerprint() in (None, digest):
                staged.discard()  # left by a run killed after its store was renamed into place
            return IngestReport(out, total, 0, total, time.perf_counter() - start)
        if not overwrite:
            changes = describe_changes(store_description(out), opened.recorded)
            raise FileExistsError(
                f"{out} exists and holds other data ({changes}); pass overwrite (--overwrite) to replace it"
            )
    staged_digest = staged.staged_fingerprint()  # None: no staging folder, or one that holds nothing usable
    if staged_digest is not None and staged_digest != digest and not restart:
        changes = describe_changes(staged.staged_description(), opened.recorded)
        raise FileExistsError(
            f"{staged.folder} holds an unfinished ingest of other input ({changes}); pass restart "
            "(--restart) to discard it"
        )
    if staged_digest != digest:
        staged.begin(
            dataset,
            digest=digest,
            description=opened.recorded,
            encoding=frame_encoding(dataset, [conventions.PRECIPITATION]),
        )

    done = staged.finished_frames()
    if source is None:
        if not done:
            staged.write_whole(dataset)
        written = 0 if done else 1
    else:
        staged.failed_marker.unlink(missing_ok=True)  # left by a run killed while failing
        todo = [index for index in range(total) if index not in done]
        tasks = [
            dask.delayed(_write_one)(source, staged, index, dask_key_name=f"ingest-{index}") for index in todo
        ]
        errors = [
            error
            for error in compute_tasks(tasks, scheduler=scheduler, workers=workers, progress=progress)
            if error is not None
        ]
        if errors:
            staged.discard()
            raise errors[0]
        written = len(todo)
    staged.complete(total, replace=overwrite)
    return IngestReport(out, total, written, len(done), time.perf_counter() - start)
