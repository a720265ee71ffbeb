"""Decoded zarr chunks of the served stores, kept in memory for point queries.

A point query needs one value (and its quantiles, thresholds or bins) of several variables, but
zarr decodes whole chunks (one frame x one tile of a job store). Keeping the decoded chunks, least
recently used evicted beyond a byte budget, answers further points of the same time and tile (the
clicks of a map page, the queries of many clients looking at the latest frames) from memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from weatherunc import conventions
from weatherunc.service.stores import ServedStore


class ChunkCache:
    """Decoded chunks ``[chunk_y, chunk_x, ...]`` by store, variable, time index, first row and column."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._chunks: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def values_at(self, store: ServedStore, name: str, time_index: int, row: int, column: int) -> np.ndarray:
        """The values ``[...]`` (the variable's dims after time, y, x) of ``name`` at one pixel and time."""
        variable = store.reader.variables[name]
        chunks = variable.encoding.get("chunks") or variable.shape
        tile_rows, tile_columns = int(chunks[1]), int(chunks[2])
        first_row, first_column = row - row % tile_rows, column - column % tile_columns
        key = (store.name, name, time_index, first_row, first_column)
        with self._lock:
            block = self._chunks.get(key)
            if block is not None:
                self._chunks.move_to_end(key)
        if block is None:
            block = np.asarray(
                variable[
                    time_index, first_row : first_row + tile_rows, first_column : first_column + tile_columns
                ].values
            )
            self._keep(key, block)
        return block[row - first_row, column - first_column]

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
        self, store: ServedStore, names: list[str], times: np.ndarray, row: int, column: int
    ) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Each variable of ``names`` at one pixel: its dims (``time`` first) and values ``[time, ...]``."""
        series = {}
        for name in names:
            variable = store.reader.variables[name]
            values = np.stack([self.values_at(store, name, int(time), row, column) for time in times])
            extra = tuple(str(dim) for dim in variable.dims[3:])
            series[name] = ((conventions.TIME, *extra), values)
        return series
