"""Zarr stores written frame by frame, resumable, and marked complete last.

Layout while writing ``OUT.zarr``::

    OUT.zarr.partial/
        store.zarr/          the zarr v3 store being filled
        fingerprint.json     what is being written (entry, files, sizes, times)
        frames/000012        one empty marker per frame, created after its chunk is written

The staging folder is built as ``OUT.zarr.partial.creating`` and renamed to
``OUT.zarr.partial`` once its fingerprint is written, so a staging folder always says what it
holds; one without a fingerprint (from an older version) holds nothing usable and is started
afresh. A missing zarr chunk reads back as NaN ("no observation"), so a frame counts as written
only once its marker exists. When every frame has its marker, the store's root attribute
``weatherunc_complete`` is set, the store is renamed to ``OUT.zarr`` (an atomic rename on
one file system), and the staging folder is removed. ``OUT.zarr`` therefore exists only
when it is complete, and an earlier ``OUT.zarr`` is replaced only by a complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from weatherunc import conventions
from weatherunc.errors import InputDataError
from weatherunc.validation import check_dataset

COMPLETE_ATTRIBUTE = "weatherunc_complete"
FINGERPRINT_ATTRIBUTE = "weatherunc_fingerprint"


def fingerprint(description: dict[str, Any]) -> str:
    """sha256 of a JSON description of what a store holds."""
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class StagedStore:
    """The staging folder of a store that is being written to ``final``."""

    final: Path

    @property
    def folder(self) -> Path:
        """``OUT.zarr.partial``."""
        return self.final.with_name(self.final.name + ".partial")

    @property
    def creating(self) -> Path:
        """``OUT.zarr.partial.creating``: the staging folder while :meth:`begin` builds it."""
        return self.final.with_name(self.final.name + ".partial.creating")

    @property
    def zarr_path(self) -> Path:
        """The zarr store inside the staging folder."""
        return self.folder / "store.zarr"

    @property
    def markers(self) -> Path:
        """Folder of per-frame markers."""
        return self.folder / "frames"

    @property
    def failed_marker(self) -> Path:
        """Created by the first frame that fails its checks; later frames then skip."""
        return self.folder / "failed"

    @property
    def fingerprint_path(self) -> Path:
        """Where the staged store's fingerprint is kept."""
        return self.folder / "fingerprint.json"

    def staged_fingerprint(self) -> str | None:
        """The fingerprint of what is staged, or ``None`` when nothing usable is."""
        try:
            return json.loads(self.fingerprint_path.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError):
            return None

    def begin(self, template: xr.Dataset, *, digest: str, encoding: dict[str, dict[str, Any]]) -> None:
        """Replace any staging folder with a new one holding ``template``'s metadata and
        coordinates and the fingerprint ``digest``.

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
        # Coordinates (numpy) are written now; data variables (Dask) only get their metadata.
        template.to_zarr(building / self.zarr_path.name, mode="w", compute=False, consolidated=False, encoding=encoding, zarr_format=3)
        _write_atomically(building / self.fingerprint_path.name, json.dumps({"fingerprint": digest}))
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
        """Write every data variable of a small dataset in one go (station sets)."""
        dataset.drop_vars(list(dataset.coords)).to_zarr(self.zarr_path, mode="r+", consolidated=False)
        (self.markers / f"{0:06d}").touch()

    def complete(self, expected_frames: int, *, replace: bool) -> Path:
        """Mark the store complete and move it to ``final``; returns ``final``.

        Refuses when a frame has no marker. An existing ``final`` is replaced only with
        ``replace=True``, and only after the new store is complete.
        """
        missing = sorted(set(range(expected_frames)) - self.finished_frames())
        if missing:
            raise RuntimeError(f"{self.final}: {len(missing)} frames not written (first {missing[:5]}); not marking complete")
        group = zarr.open_group(self.zarr_path, mode="r+")
        group.attrs[COMPLETE_ATTRIBUTE] = True
        if self.final.exists():
            if not replace:
                raise FileExistsError(f"{self.final} exists; pass overwrite to replace it")
            retired = self.final.with_name(self.final.name + ".replaced")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(self.final, retired)
            os.replace(self.zarr_path, self.final)
            shutil.rmtree(retired)
        else:
            os.replace(self.zarr_path, self.final)
        shutil.rmtree(self.folder)
        return self.final

    def discard(self) -> None:
        """Remove the staging folder (and one left half-built) with everything in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.rmtree(self.creating, ignore_errors=True)


def store_fingerprint(path: Path) -> str | None:
    """The fingerprint recorded in a complete store, ``None`` if there is none."""
    try:
        return zarr.open_group(path, mode="r").attrs.get(FINGERPRINT_ATTRIBUTE)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
        return None


def open_store(path: Path | str) -> xr.Dataset:
    """Open a complete weatherunc zarr store lazily; refuses an incomplete one."""
    path = Path(path)
    try:
        group = zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as error:
        raise FileNotFoundError(f"{path}: no zarr store") from error
    if not group.attrs.get(COMPLETE_ATTRIBUTE, False):
        raise InputDataError(source=path, variable="<store>", check="store complete", detail="the store was not marked complete; re-run the ingest to finish it")
    dataset = xr.open_zarr(path, consolidated=False)
    check_dataset(dataset, source=path)
    return dataset


def frame_encoding(dataset: xr.Dataset, variables: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Zarr encoding: float32, one chunk per time step (split into tiles above 2048 px)."""
    encoding: dict[str, dict[str, Any]] = {}
    for name in variables:
        variable = dataset[name]
        chunks = tuple(1 if dim == conventions.TIME else min(size, 2048) for dim, size in zip(variable.dims, variable.shape))
        encoding[name] = {"chunks": chunks, "dtype": "float32"}
    return encoding


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
