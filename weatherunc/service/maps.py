"""PNG maps of one store, time and layer, drawn by :mod:`weatherunc.plotting.maps` and kept in memory.

Each map comes with its geometry: where the map's axes lie in the image (pixels from the top
left) and which extent of the store's CRS they show. The map page turns a click into store
coordinates with it (the axes show the store's CRS linearly: ``map_projection`` is the CRS itself,
or Plate Carree for a geographic one).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weatherunc import conventions
from weatherunc.service.settings import RequestError
from weatherunc.service.stores import ServedStore

#: Layers of the map page and the variables each one draws.
LAYERS = {
    "observed": (conventions.PRECIPITATION,),
    "mean": (conventions.PRECIPITATION_MEAN,),
    "std": (conventions.PRECIPITATION_STD,),
    "exceedance": (conventions.EXCEEDANCE_PROBABILITY,),
}
#: How much lower than the service's the drawing process's scheduling priority is (``nice``).
DRAWING_NICENESS = 10
#: How often the drawing process checks that the service that started it is still there [s].
SERVICE_CHECK_S = 1.0
#: Stores the drawing process keeps open, by path and version.
OPEN_STORES = 4
#: Resolution of the PNG maps (the figures' own size, 6.4 x 5.6 inches).
MAP_DPI = 100


@dataclass(frozen=True)
class RenderedMap:
    """A map as PNG bytes, with the axes' box in the image ``[left, top, right, bottom]`` (pixels)
    and the extent ``[x0, x1, y0, y1]`` of the store's CRS they show."""

    png: bytes
    width: int
    height: int
    axes_box: tuple[float, float, float, float]
    extent: tuple[float, float, float, float]

    def geometry(self) -> dict[str, Any]:
        """The map's geometry as JSON."""
        return {
            "width": self.width,
            "height": self.height,
            "axes_box": list(self.axes_box),
            "extent": list(self.extent),
        }


def check_layer(store: ServedStore, layer: str, threshold: float | None) -> float | None:
    """The threshold the layer draws (``exceedance`` only); 400 for an unknown layer or threshold."""
    if layer not in LAYERS:
        raise RequestError(400, f"layer: unknown layer {layer!r}; layers: {', '.join(LAYERS)}")
    missing = [name for name in LAYERS[layer] if name not in store.dataset]
    if missing:
        raise RequestError(404, f"layer {layer!r}: store {store.name!r} has no variable {missing[0]!r}")
    if layer != "exceedance":
        return None
    available = store.dataset[conventions.THRESHOLD].values
    if threshold is None:
        threshold = float(available[np.argmin(np.abs(available - 1.0))])
    if not np.isfinite(threshold) or not np.any(np.isclose(available, threshold)):
        raise RequestError(
            400,
            f"threshold: {threshold:g} mm/h is not one of the store's thresholds "
            f"({', '.join(f'{value:g}' for value in available)})",
        )
    return float(threshold)


class MapRenderer:
    """Draws maps with the plotting module's functions and keeps the last ``entries`` in memory.

    One map is drawn at a time, in a child process (started with the service): pyplot is not
    thread-safe, and a drawing there leaves the service's own process free to answer queries. The
    drawing process runs at a lower scheduling priority (:data:`DRAWING_NICENESS`), so that on a
    machine with few cores queries are not kept waiting behind a drawing. A map drawn before is
    answered from memory without waiting for a drawing in progress; maps are kept by store name and
    version, so a store rewritten on disk is drawn anew. The drawing process ends with the
    service's (``concurrent.futures`` joins it at exit; a service killed leaves none behind either,
    :func:`end_with`).
    """

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._cache: OrderedDict[tuple, RenderedMap] = OrderedDict()
        self._pending: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self._drawer: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the drawing process and let it import the plotting modules, before the first map."""
        if self._drawer is None:
            self._drawer = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=start_drawing,
                initargs=(os.getpid(),),
            )
            self._drawer.submit(prepare_drawing)

    def _start_drawing(
        self, store: ServedStore, time_index: int, layer: str, threshold: float | None
    ) -> Future:
        """Queue the drawing of one map in the drawing process."""
        self.start()
        return self._drawer.submit(
            draw_map, str(store.path), store.name, time_index, layer, threshold, store.version
        )

    def _cached(self, key: tuple) -> RenderedMap | None:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            return None

    def cached(
        self, store: ServedStore, time_index: int, layer: str, threshold: float | None
    ) -> RenderedMap | None:
        """The map of ``layer`` at the store's ``time_index``-th time when drawn before, else ``None``."""
        return self._cached((store.name, store.version, time_index, layer, threshold))

    def __len__(self) -> int:
        return len(self._cache)

    def submit(self, store: ServedStore, time_index: int, layer: str, threshold: float | None) -> Future:
        """A future of the map of ``layer`` at the store's ``time_index``-th time: done at once when
        drawn before, shared with the drawing of the same map when one is queued or in progress, else
        a new drawing. Waiting on it holds no thread of the service (``asyncio.wrap_future``)."""
        key = (store.name, store.version, time_index, layer, threshold)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                done: Future = Future()
                done.set_result(self._cache[key])
                return done
            if key in self._pending:
                return self._pending[key]
            drawing = self._start_drawing(store, time_index, layer, threshold)
            self._pending[key] = drawing
        drawing.add_done_callback(lambda finished: self._keep(key, finished))
        return drawing

    def _keep(self, key: tuple, finished: Future) -> None:
        with self._lock:
            if not finished.cancelled() and finished.exception() is None:
                self._cache[key] = finished.result()
                self._cache.move_to_end(key)
                while len(self._cache) > self.entries:
                    self._cache.popitem(last=False)
            self._pending.pop(key, None)

    def render(self, store: ServedStore, time_index: int, layer: str, threshold: float | None) -> RenderedMap:
        """The map of ``layer`` at the store's ``time_index``-th time (from memory when drawn before),
        waiting for its drawing in this thread."""
        return self.submit(store, time_index, layer, threshold).result()


def start_drawing(service: int) -> None:
    """Lower the drawing process's scheduling priority (POSIX only), make it end with the process
    ``service`` that started it (:func:`end_with`), and prepare it for drawing."""
    if hasattr(os, "nice"):
        os.nice(DRAWING_NICENESS)
    watch = threading.Thread(target=end_with, args=(service,), name="weatherunc-service-watch", daemon=True)
    watch.start()
    prepare_drawing()


def end_with(service: int, interval_s: float = SERVICE_CHECK_S) -> None:
    """Exit this process once ``service``, its parent, is gone (its parent then changes): a service
    killed, or ended without joining its drawing process, leaves no drawing process behind. Runs
    in a thread of the drawing process; checks every ``interval_s`` seconds."""
    while os.getppid() == service:
        time.sleep(interval_s)
    os._exit(0)


def prepare_drawing() -> None:
    """Draw without a display and import the plotting modules (in the drawing process)."""
    import matplotlib

    matplotlib.use("Agg")
    import weatherunc.plotting.maps  # noqa: F401 - imported once, ahead of the first map


_opened: OrderedDict[tuple[str, str, str], ServedStore] = OrderedDict()


def opened_store(path: str, name: str, version: str) -> ServedStore:
    """The store at ``path`` opened in this process, kept for the next map (the last
    :data:`OPEN_STORES`, by path, name and version: a rewritten store is opened anew)."""
    from weatherunc.service.stores import open_served_store

    key = (path, name, version)
    if key not in _opened:
        _opened[key] = open_served_store(Path(path), name)
        while len(_opened) > OPEN_STORES:
            _opened.popitem(last=False)
    _opened.move_to_end(key)
    return _opened[key]


def draw_map(
    path: str, name: str, time_index: int, layer: str, threshold: float | None, version: str = ""
) -> RenderedMap:
    """Draw the map of ``layer`` at the ``time_index``-th time of the store at ``path`` and ``version``
    (in the drawing process: it opens the store itself and draws without a display)."""
    prepare_drawing()
    import matplotlib.pyplot as plt

    from weatherunc.plotting.maps import exceedance_map, mean_map, observed_map, std_map

    store = opened_store(path, name, version)
    names = [
        variable
        for variable in (
            conventions.PRECIPITATION,
            conventions.PRECIPITATION_MEAN,
            conventions.PRECIPITATION_STD,
            conventions.EXCEEDANCE_PROBABILITY,
        )
        if variable in store.reader
    ]
    frame = store.reader[names].isel({conventions.TIME: time_index}).load()  # keeps crs and attrs
    if layer == "observed":
        figure = observed_map(frame)
    elif layer == "mean":
        figure = mean_map(frame)
    elif layer == "std":
        figure = std_map(frame)
    else:
        figure = exceedance_map(frame, threshold)
    try:
        figure.set_dpi(MAP_DPI)
        figure.canvas.draw()
        axes = figure.axes[0]
        box = axes.get_window_extent()
        width, height = int(round(figure.bbox.width)), int(round(figure.bbox.height))
        extent = tuple(float(value) for value in axes.get_extent())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=MAP_DPI)
    finally:
        plt.close(figure)
    return RenderedMap(
        png=buffer.getvalue(),
        width=width,
        height=height,
        axes_box=(float(box.x0), float(height - box.y1), float(box.x1), float(height - box.y0)),
        extent=extent,
    )
