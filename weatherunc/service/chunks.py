"""Decoded zarr chunks of the served stores, kept in memory for point queries.

A point query needs one value (and its quantiles, thresholds or bins) of several variables, but
zarr decodes whole chunks (one frame x one tile of a job store). Keeping the decoded chunks, least
recently used evicted beyond a byte budget, answers further points of the same time and tile (the
clicks of a map page, the queries of many clients looking at the latest frames) from memory.

Chunks are keyed by the store's name and version (:attr:`ServedStore.version`), so a store
rewritten on disk is never answered from the chunks of its former content. A chunk is decoded
once however many requests ask for it at the same time: the others wait for that decoding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from weatherunc import conventions
from weatherunc.service.stores import ServedStore


class ChunkMiss(LookupError):
    """A chunk a read with ``loading=False`` needs is not in memory."""


class ChunkCache:
    """Decoded chunks ``[chunk_y, chunk_x, ...]`` by store, version, variable, time index, first row
    and column, least recently used evicted beyond ``budget_bytes``."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._chunks: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._loading: dict[tuple, threading.Lock] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def nbytes(self) -> int:
        """Bytes of the chunks held now."""
        return self._bytes

    def values_at(
        self,
        store: ServedStore,
        name: str,
        time_index: int,
        row: int,
        column: int,
        *,
        loading: bool = True,
    ) -> np.ndarray:
        """The values ``[...]`` (the variable's dims after time, y, x) of ``name`` at one pixel and time.

        A chunk not in memory is decoded from the store, or, with ``loading=False``, :class:`ChunkMiss`
        is raised (so that a caller on an event loop can move the read to a worker thread).
        """
        variable = store.reader.variables[name]
        chunks = variable.encoding.get("chunks") or variable.shape
        tile_rows, tile_columns = int(chunks[1]), int(chunks[2])
        first_row, first_column = row - row % tile_rows, column - column % tile_columns
        key = (store.name, store.version, name, time_index, first_row, first_column)
        block = self._get(key)
        if block is None:
            if not loading:
                raise ChunkMiss(key)
            block = self._load(
                key, store, name, (time_index, first_row, first_column, tile_rows, tile_columns)
            )
        return block[row - first_row, column - first_column]

    def _get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            block = self._chunks.get(key)
            if block is not None:
                self._chunks.move_to_end(key)
            return block

    def _load(
        self, key: tuple, store: ServedStore, name: str, where: tuple[int, int, int, int, int]
    ) -> np.ndarray:
        """Decode the chunk ``key`` once: concurrent requests for it wait for the first one's decoding."""
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            block = self._get(key)
            if block is None:
                block = self._decode(store, name, where)
                self._keep(key, block)
        with self._lock:
            self._loading.pop(key, None)
        return block

    @staticmethod
    def _decode(store: ServedStore, name: str, where: tuple[int, int, int, int, int]) -> np.ndarray:
        """Read and decode one chunk ``(time index, first row, first column, rows, columns)``."""
        time_index, first_row, first_column, tile_rows, tile_columns = where
        return np.asarray(
            store.reader.variables[name][
                time_index, first_row : first_row + tile_rows, first_column : first_column + tile_columns
            ].values
        )

    def _keep(self, key: tuple, block: np.ndarray) -> None:
        with self._lock:
            if key in self._chunks or block.nbytes > self.budget_bytes:
                return
            self._chunks[key] = block
            self._bytes += block.nbytes
            while self._bytes > self.budget_bytes:
                _, evicted = self._chunks.popitem(last=False)
                self._bytes -= evicted.nbytes

    def pixel_series(
        self,
        store: ServedStore,
        names: list[str],
        times: np.ndarray,
        row: int,
        column: int,
        *,
        loading: bool = True,
    ) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Each variable of ``names`` at one pixel: its dims (``time`` first) and values ``[time, ...]``
        (``loading`` as for :meth:`values_at`)."""
        series = {}
        for name in names:
            variable = store.reader.variables[name]
            values = np.stack(
                [self.values_at(store, name, int(time), row, column, loading=loading) for time in times]
            )
            extra = tuple(str(dim) for dim in variable.dims[3:])
            series[name] = ((conventions.TIME, *extra), values)
        return series
