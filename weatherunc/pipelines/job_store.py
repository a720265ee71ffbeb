"""The zarr store of a batch job, written tile by tile, resumable, and marked complete last.

Layout while running::

    RUN/prediction.zarr.partial/
        store.zarr/                  zarr v3; chunks (1, tile, tile, ...): one chunk per frame x tile;
                                     root metadata as zarr.json.unfinished until every tile is written
        fingerprint.json             the job's fingerprint and its described inputs (config, input files,
        checksums)
        tiles/00003_00012            manifest: one entry per finished (frame, tile), renamed into place

The staging folder is built as ``prediction.zarr.partial.creating`` and renamed into place once
its fingerprint is written, so a staging folder always says what it holds (one without a
fingerprint, from an older version, holds nothing usable and is started afresh).
A tile counts as written only once its manifest entry exists, so a chunk left half-written
by a crash is simply rewritten on resume (zarr chunk writes replace whole chunks). Until every
(frame, tile) is in the manifest, the store's root metadata is kept out of zarr's sight, so no
zarr reader opens the staged store and takes unwritten tiles for missing predictions. Then the
root metadata is put in place (the job verifies the store), the store is marked complete (root
attribute ``weatherunc_complete``), its metadata consolidated (``xr.open_zarr`` reads it in one
request) and renamed to ``RUN/prediction.zarr``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from weatherunc.store import (
    COMPLETE_ATTRIBUTE,
    StagingFolder,
    consolidate,
    hide_root_metadata,
    reveal_root_metadata,
)


@dataclass(frozen=True)
class JobStore(StagingFolder):
    """Staging and final paths of one job's prediction store."""

    @property
    def manifest(self) -> Path:
        """Folder of finished-tile entries."""
        return self.folder / "tiles"

    def staged_inputs(self) -> dict | None:
        """The described inputs of the staged job's fingerprint, ``None`` if not recorded."""
        return self.recorded("inputs")

    def begin(self, template: xr.Dataset, encoding: dict, fingerprint: str, inputs: dict) -> None:
        """Replace any staging folder with a new one holding the store's metadata and
        coordinates (no data), the fingerprint and the described ``inputs`` it was computed from.

        The folder is built under :attr:`creating` and renamed into place last, so an
        interruption leaves either no staging folder or a complete one.
        """
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.rmtree(self.creating, ignore_errors=True)
        building = self.creating
        (building / self.manifest.name).mkdir(parents=True)
        template.to_zarr(
            building / self.zarr_path.name,
            mode="w",
            compute=False,
            consolidated=False,
            encoding=encoding,
            zarr_format=3,
        )
        hide_root_metadata(building / self.zarr_path.name)
        (building / self.fingerprint_path.name).write_text(
            json.dumps({"fingerprint": fingerprint, "inputs": inputs}, indent=2, default=str)
        )
        os.replace(building, self.folder)

    @staticmethod
    def entry_name(frame: int, tile: int) -> str:
        """Manifest entry name of (frame, tile)."""
        return f"{frame:05d}_{tile:05d}"

    def finished(self) -> set[tuple[int, int]]:
        """(frame, tile) pairs in the manifest (temporary entries of a crashed write are ignored)."""
        if not self.manifest.is_dir():
            return set()
        pairs = set()
        for path in self.manifest.iterdir():
            frame, _, tile = path.name.partition("_")
            if frame.isdigit() and tile.isdigit():
                pairs.add((int(frame), int(tile)))
        return pairs

    def write_tile(
        self,
        frame: int,
        rows: slice,
        columns: slice,
        blocks: dict[str, np.ndarray],
        tile: int,
        record: str = "",
    ) -> None:
        """Write each variable's block ``[ny_tile, nx_tile, ...]`` at ``frame``, then the manifest
        entry, which holds ``record`` (JSON text of what the tile's prediction recorded, or empty)."""
        names = sorted(blocks)
        for name in names:
            array = zarr.open_array(self.zarr_path / name, mode="r+")
            array[frame, rows, columns] = blocks[name]
        entry = self.manifest / self.entry_name(frame, tile)
        temporary = self.manifest / f".{entry.name}.tmp"
        temporary.write_text(record)
        os.replace(temporary, entry)

    def tile_records(self) -> list[Any]:
        """The records of the manifest's entries (:meth:`write_tile`), in frame and tile order: each
        entry's JSON list, concatenated; entries without one add nothing."""
        if not self.manifest.is_dir():
            return []
        records: list[Any] = []
        for path in sorted(self.manifest.iterdir()):
            frame, _, tile = path.name.partition("_")
            text = path.read_text() if frame.isdigit() and tile.isdigit() else ""
            records.extend(json.loads(text) if text.strip() else [])
        return records

    def _check_manifest(self, expected: set[tuple[int, int]]) -> None:
        missing = expected - self.finished()
        if missing:
            raise RuntimeError(
                f"{self.final}: {len(missing)} tiles not written (first {sorted(missing)[:3]}); not marking "
                "complete"
            )

    def reveal(self, expected: set[tuple[int, int]]) -> None:
        """Once every (frame, tile) of ``expected`` is in the manifest, put the store's root
        metadata in place, so that the fully written store opens (for verification)."""
        self._check_manifest(expected)
        reveal_root_metadata(self.zarr_path)

    def complete(self, expected: set[tuple[int, int]], attrs: dict) -> Path:
        """Check the manifest, set ``attrs`` and the complete flag, and move the store into place."""
        self._check_manifest(expected)
        reveal_root_metadata(self.zarr_path, {**attrs, COMPLETE_ATTRIBUTE: 1})
        consolidate(self.zarr_path)
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.zarr_path, self.final)
        shutil.rmtree(self.folder)
        return self.final
