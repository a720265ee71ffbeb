"""Fault injection for the crash tests of the batch job: SIGKILL the job's process at a named point.

``python -m tests.crash_injection POINT:N CONFIG [options of weatherunc run]`` runs the job as
``weatherunc run CONFIG ...`` does and kills the process (SIGKILL, no clean-up) the N-th time it
reaches POINT:

- ``tile-half``: half of a tile's variables written;
- ``marker-temporary``: a tile's manifest entry written under its temporary name, not yet renamed;
- ``tile-done``: a tile's manifest entry in place;
- ``before-complete``: every tile written and verified, the store not yet marked complete.

The points are found by wrapping what the job store calls (``zarr.open_array``, ``os.replace``,
``JobStore.complete``) in this process only: the production code carries no fault hook.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zarr

from weatherunc.pipelines.job_store import JobStore

POINTS = ("tile-half", "marker-temporary", "tile-done", "before-complete")
#: Name of a manifest entry before it is renamed into place (``JobStore.write_tile``).
TEMPORARY_ENTRY = re.compile(r"^\.\d{5}_\d{5}\.tmp$")


class _CountedArray:
    """A zarr array whose writes call ``written()`` after each one."""

    def __init__(self, array: Any, written: Callable[[], None]) -> None:
        self._array, self._written = array, written

    def __setitem__(self, key: Any, value: Any) -> None:
        self._array[key] = value
        self._written()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._array, name)


def install(point: str, count: int) -> None:
    """Wrap the job store's calls so that the ``count``-th visit of ``point`` kills this process."""
    if point not in POINTS:
        raise ValueError(f"unknown crash point {point!r}; known: {', '.join(POINTS)}")
    visits: Counter = Counter()

    def reached(name: str) -> None:
        if name != point:
            return
        visits[name] += 1
        if visits[name] >= count:
            os.kill(os.getpid(), signal.SIGKILL)

    write_tile, open_array, replace, complete = (
        JobStore.write_tile,
        zarr.open_array,
        os.replace,
        JobStore.complete,
    )

    def counted_write_tile(
        self: JobStore, frame: int, rows: slice, columns: slice, blocks: dict, tile: int, record: str = ""
    ):
        remaining = [len(blocks) // 2 + 1]  # the variable writes that make half a tile

        def written() -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                reached("tile-half")

        zarr.open_array = lambda *args, **kwargs: _CountedArray(open_array(*args, **kwargs), written)
        try:
            return write_tile(self, frame, rows, columns, blocks, tile, record)
        finally:
            zarr.open_array = open_array

    def watched_replace(source: Any, destination: Any, *args: Any, **kwargs: Any) -> None:
        entry = TEMPORARY_ENTRY.match(Path(source).name) is not None
        if entry:
            reached("marker-temporary")
        replace(source, destination, *args, **kwargs)
        if entry:
            reached("tile-done")

    def watched_complete(self: JobStore, *args: Any, **kwargs: Any) -> Path:
        reached("before-complete")
        return complete(self, *args, **kwargs)

    JobStore.write_tile = counted_write_tile
    JobStore.complete = watched_complete
    os.replace = watched_replace


def main() -> None:
    """``POINT:N`` then the arguments of ``weatherunc run``."""
    from weatherunc.cli import app

    point, _, count = sys.argv[1].partition(":")
    install(point, int(count or 1))
    app(["run", *sys.argv[2:]])


if __name__ == "__main__":
    main()
