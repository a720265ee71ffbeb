"""Zarr stores written frame by frame, resumable, and marked complete last.

Layout while writing ``OUT.zarr``::

    OUT.zarr.partial/
        store.zarr/          the zarr v3 store being filled, its root metadata as zarr.json.unfinished
        fingerprint.json     what is being written: its fingerprint and the description it hashes
        frames/000012        one empty marker per frame, created after its chunk is written

The staging folder is built as ``OUT.zarr.partial.creating`` and renamed to
``OUT.zarr.partial`` once its fingerprint is written, so a staging folder always says what it
holds; one without a fingerprint (from an older version) holds nothing usable and is started
afresh. A missing zarr chunk reads back as NaN ("no observation"), so a frame counts as written
only once its marker exists, and the store's root group metadata is kept out of zarr's sight
(``zarr.json.unfinished``) while frames are missing: no zarr reader opens the staged store and
takes its unwritten frames for unobserved ones. When every frame has its marker, the root
metadata is put in place with the attribute ``weatherunc_complete`` set and consolidated, the
store is renamed to ``OUT.zarr`` (an atomic rename on one file system), and the staging folder is removed.
``OUT.zarr`` therefore exists only when it is complete, and an earlier ``OUT.zarr`` is
replaced only by a complete one.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from weatherunc import conventions
from weatherunc.errors import InputDataError
from weatherunc.validation import check_dataset

#: Root attribute of every complete store (ingest, batch jobs, gridded predictions), written last.
COMPLETE_ATTRIBUTE = "weatherunc_complete"
FINGERPRINT_ATTRIBUTE = "weatherunc_fingerprint"
#: Root attribute: JSON of the described inputs of the fingerprint, to say what changed.
DESCRIPTION_ATTRIBUTE = "weatherunc_fingerprint_description"
#: Zarr v3 root group metadata, which makes a folder openable as a zarr store.
ROOT_METADATA = "zarr.json"
#: The root group metadata of a staged store, under a name no zarr reader looks for.
UNFINISHED_ROOT_METADATA = "zarr.json.unfinished"


def hide_root_metadata(store: Path) -> None:
    """Rename the root group metadata of the zarr v3 ``store`` out of zarr's sight: zarr
    readers then refuse the folder, while its arrays stay writable by path."""
    os.replace(store / ROOT_METADATA, store / UNFINISHED_ROOT_METADATA)


def reveal_root_metadata(store: Path, attributes: dict[str, Any] | None = None) -> None:
    """Put the hidden root group metadata of ``store`` back in place, with ``attributes``
    added, in one atomic rename. Does nothing more than add ``attributes`` when it is in place."""
    hidden = store / UNFINISHED_ROOT_METADATA
    if not hidden.exists():
        if attributes:
            zarr.open_group(store, mode="r+").attrs.update(attributes)
        return
    metadata = json.loads(hidden.read_text())
    metadata.setdefault("attributes", {}).update(attributes or {})
    _write_atomically(store / ROOT_METADATA, json.dumps(metadata, indent=2, default=_plain))
    hidden.unlink()


def consolidate(path: Path) -> None:
    """Consolidate the metadata of the zarr v3 store ``path`` into its root ``zarr.json``; zarr's
    warning that consolidated metadata is not yet part of the v3 specification is not repeated."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(str(path), zarr_format=3)


def _plain(value: Any) -> Any:
    """A numpy scalar or array as the Python value JSON can hold."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def describe_changes(recorded: dict[str, Any] | None, current: dict[str, Any], *, limit: int = 6) -> str:
    """What differs between a recorded fingerprint description and the current one, field by field.

    Nested fields are named by dotted path (``job.targets.blocks: 3 -> 2``), rows of a list
    that each start with a distinct name (files) by that name (``files[a.nc]: [...] -> [...]``),
    other lists by index. At most ``limit`` differences are listed, then how many more.
    """
    if recorded is None:
        return "no description of the earlier input was recorded to compare with"
    changes = list(_changes(_as_json(recorded), _as_json(current), ""))
    if not changes:
        return "no recorded field differs"
    more = f"; and {len(changes) - limit} more" if len(changes) > limit else ""
    return "; ".join(changes[:limit]) + more


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _named_rows(rows: list[Any]) -> dict[str, Any] | None:
    """``rows`` by their first item when every row is a list starting with a distinct string."""
    if not all(isinstance(row, list) and row and isinstance(row[0], str) for row in rows):
        return None
    named = {row[0]: row[1:] for row in rows}
    return named if len(named) == len(rows) else None


def _changes(recorded: Any, current: Any, path: str) -> Iterator[str]:
    """One line per differing field below ``path``."""
    if recorded == current:
        return
    if isinstance(recorded, dict) and isinstance(current, dict):
        for key in sorted(set(recorded) | set(current)):
            field = f"{path}.{key}" if path else key
            if key not in current:
                yield f"{field} removed"
            elif key not in recorded:
                yield f"{field} added: {_short(current[key])}"
            else:
                yield from _changes(recorded[key], current[key], field)
        return
    if isinstance(recorded, list) and isinstance(current, list):
        old, new = _named_rows(recorded), _named_rows(current)
        if old is not None and new is not None:
            for name in sorted(set(old) | set(new)):
                field = f"{path}[{name}]"
                if name not in new:
                    yield f"{field} removed"
                elif name not in old:
                    yield f"{field} added"
                elif old[name] != new[name]:
                    yield f"{field}: {_short(old[name])} -> {_short(new[name])}"
            return
        if len(recorded) == len(current):
            for index, (old_item, new_item) in enumerate(zip(recorded, current)):
                yield from _changes(old_item, new_item, f"{path}[{index}]")
            return
        yield f"{path}: {len(recorded)} items -> {len(current)} items"
        return
    yield f"{path}: {_short(recorded)} -> {_short(current)}"


@dataclass(frozen=True)
class StagingFolder:
    """The staging folder of a zarr store that is being written to ``final``: built under
    :attr:`creating`, filled at :attr:`folder`, with the fingerprint of what it holds; the ingest's
    :class:`StagedStore` and the batch jobs' store both keep this layout."""

    final: Path

    @property
    def folder(self) -> Path:
        """``OUT.zarr.partial``."""
        return self.final.with_name(self.final.name + ".partial")

    @property
    def creating(self) -> Path:
        """``OUT.zarr.partial.creating``: the staging folder while ``begin`` builds it."""
        return self.final.with_name(self.final.name + ".partial.creating")

    @property
    def zarr_path(self) -> Path:
        """The zarr store inside the staging folder."""
        return self.folder / "store.zarr"

    @property
    def fingerprint_path(self) -> Path:
        """Where the staged store's fingerprint is kept."""
        return self.folder / "fingerprint.json"

    def recorded(self, key: str) -> Any:
        """The field ``key`` of the staged fingerprint file, ``None`` when it is not there or unreadable."""
        try:
            return json.loads(self.fingerprint_path.read_text())[key]
        except (OSError, ValueError, KeyError):
            return None

    def staged_fingerprint(self) -> str | None:
        """The fingerprint of what is staged, or ``None`` when nothing usable is."""
        return self.recorded("fingerprint")

    def discard(self) -> None:
        """Remove the staging folder (and one left half-built) with everything in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.rmtree(self.creating, ignore_errors=True)


@dataclass(frozen=True)
class StagedStore(StagingFolder):
    """The staging folder of a store that the ingest is writing to ``final``, frame by frame."""

    @property
    def markers(self) -> Path:
        """Folder of per-frame markers."""
        return self.folder / "frames"

    @property
    def failed_marker(self) -> Path:
        """Created by the first frame that fails its checks; later frames then skip."""
        return self.folder / "failed"

    def staged_description(self) -> dict[str, Any] | None:
        """The description the staged fingerprint was computed from, ``None`` if not recorded."""
        return self.recorded("description")

    def begin(
        self,
        template: xr.Dataset,
        *,
        digest: str,
        description: dict[str, Any],
        encoding: dict[str, dict[str, Any]],
    ) -> None:
        """Replace any staging folder with a new one holding ``template``'s metadata and
        coordinates, the fingerprint ``digest`` and the ``description`` it was computed from
        (recorded in the store's attributes too).

        The folder is built under :attr:`creating` and renamed into place last, so an
        interruption leaves either no staging folder or a complete one. Each data variable
        of ``template`` is a lazy Dask array that is never computed here.
        """
        self.discard()
        building = self.creating
        (building / self.markers.name).mkdir(parents=True)
        lazy_coordinates = [name for name in template.coords if template[name].chunks is not None]
        template = template.assign_coords({name: template[name].compute() for name in lazy_coordinates})
        template.attrs[FINGERPRINT_ATTRIBUTE] = digest
        template.attrs[DESCRIPTION_ATTRIBUTE] = json.dumps(description, sort_keys=True, default=str)
        # Coordinates (numpy) are written now; data variables (Dask) only get their metadata.
        template.to_zarr(
            building / self.zarr_path.name,
            mode="w",
            compute=False,
            consolidated=False,
            encoding=encoding,
            zarr_format=3,
        )
        hide_root_metadata(building / self.zarr_path.name)
        _write_atomically(
            building / self.fingerprint_path.name,
            json.dumps({"fingerprint": digest, "description": description}, default=str),
        )
        os.replace(building, self.folder)

    def finished_frames(self) -> set[int]:
        """Indices of frames whose marker exists."""
        if not self.markers.is_dir():
            return set()
        return {int(path.name) for path in self.markers.iterdir() if path.name.isdigit()}

    def write_frame(self, variable: str, index: int, values: np.ndarray) -> None:
        """Write ``values`` ``[ny, nx]`` at time ``index``, then create its marker."""
        array = zarr.open_array(self.zarr_path / variable, mode="r+")
        array[index] = values
        (self.markers / f"{index:06d}").touch()

    def write_whole(self, dataset: xr.Dataset) -> None:
        """Write every (numeric) data variable of a small dataset in one go (station sets),
        then its marker."""
        for name, variable in dataset.data_vars.items():
            array = zarr.open_array(self.zarr_path / str(name), mode="r+")
            array[...] = np.asarray(variable.values, dtype=array.dtype)
        (self.markers / f"{0:06d}").touch()

    def complete(self, expected_frames: int, *, replace: bool) -> Path:
        """Mark the store complete, put its root metadata in place and move it to ``final``;
        returns ``final``.

        Refuses when a frame has no marker. An existing ``final`` is replaced only with
        ``replace=True``, and only after the new store is complete.
        """
        missing = sorted(set(range(expected_frames)) - self.finished_frames())
        if missing:
            raise RuntimeError(
                f"{self.final}: {len(missing)} frames not written (first {missing[:5]}); not marking complete"
            )
        if self.final.exists() and not replace:
            raise FileExistsError(f"{self.final} exists; pass overwrite to replace it")
        reveal_root_metadata(self.zarr_path, {COMPLETE_ATTRIBUTE: True})
        consolidate(self.zarr_path)  # xr.open_zarr reads the metadata in one file, without a warning
        retired = self.final.with_name(self.final.name + ".replaced")
        if self.final.exists():
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(self.final, retired)
        os.replace(self.zarr_path, self.final)
        # Also removes the earlier store of a run killed between the two renames.
        shutil.rmtree(retired, ignore_errors=True)
        shutil.rmtree(self.folder)
        return self.final


def store_fingerprint(path: Path) -> str | None:
    """The fingerprint recorded in a complete store, ``None`` if there is none."""
    try:
        return zarr.open_group(path, mode="r").attrs.get(FINGERPRINT_ATTRIBUTE)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
        return None


def store_description(path: Path) -> dict[str, Any] | None:
    """The description a complete store's fingerprint was computed from, ``None`` if not recorded."""
    try:
        return json.loads(zarr.open_group(path, mode="r").attrs[DESCRIPTION_ATTRIBUTE])
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError, TypeError, ValueError):
        return None


def open_store(path: Path | str) -> xr.Dataset:
    """Open a complete weatherunc zarr store lazily; refuses an incomplete one."""
    path = Path(path)
    if (path / UNFINISHED_ROOT_METADATA).exists():
        raise InputDataError(
            source=path,
            variable="<store>",
            check="store complete",
            detail="the store is still being written; re-run the ingest to finish it",
        )
    try:
        group = zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as error:
        raise FileNotFoundError(f"{path}: no zarr store") from error
    if not group.attrs.get(COMPLETE_ATTRIBUTE, False):
        raise InputDataError(
            source=path,
            variable="<store>",
            check="store complete",
            detail="the store was not marked complete; re-run the ingest to finish it",
        )
    dataset = xr.open_zarr(path, consolidated=False)
    check_dataset(dataset, source=path)
    return dataset


def frame_encoding(dataset: xr.Dataset, variables: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Zarr encoding: float32, one chunk per time step (split into tiles above 2048 px)."""
    encoding: dict[str, dict[str, Any]] = {}
    for name in variables:
        variable = dataset[name]
        chunks = tuple(
            1 if dim == conventions.TIME else min(size, 2048)
            for dim, size in zip(variable.dims, variable.shape)
        )
        encoding[name] = {"chunks": chunks, "dtype": "float32"}
    return encoding


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
