"""The service's application: xpublish with its zarr and dataset-info plugins and weatherunc's routes.

Routes added to xpublish's (``/datasets``, ``/datasets/{name}/info``, ``/datasets/{name}/zarr/...``):

- ``GET /datasets/{name}/metadata``: times, grid, variables, model, calibration, provenance;
- ``GET /datasets/{name}/edr/position`` and ``/edr/area``: OGC EDR queries
  (:mod:`weatherunc.service.queries`);
- ``GET /datasets/{name}/map/{layer}.png`` and ``.json`` (its geometry): cached maps
  (:mod:`weatherunc.service.maps`);
- ``POST /fill``: on-demand filling (:mod:`weatherunc.service.fill_requests`);
- ``GET /`` and ``GET /static/{file}``: the map page; ``GET /names``: the output names it reads.

Every refusal is JSON ``{"detail": message}`` with a 4xx status, as FastAPI's own errors are.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from xpublish import Plugin, Rest, hookimpl
from xpublish.plugins.included.dataset_info import DatasetInfoPlugin
from xpublish.utils.api import DATASET_ID_ATTR_KEY
from xpublish_zarr import ZarrPlugin

from weatherunc import conventions
from weatherunc.service import queries
from weatherunc.service.chunks import ChunkCache
from weatherunc.service.fast_path import MAP_CACHE_CONTROL, MemoryFastPath, map_time_index, position_answer
from weatherunc.service.fill_requests import fill_request
from weatherunc.service.maps import MapRenderer, check_layer
from weatherunc.service.settings import BATCH_JOB_HINT, RequestError, ServiceLimits
from weatherunc.service.stores import ServedStore, open_served_store, store_metadata, store_version

STATIC = Path(__file__).resolve().parent / "static"
#: Output names the map page uses, by the page's key: the page holds no name of its own.
PAGE_NAMES = {
    "observed": conventions.PRECIPITATION,
    "mean": conventions.PRECIPITATION_MEAN,
    "std": conventions.PRECIPITATION_STD,
    "quantile": conventions.PRECIPITATION_QUANTILE,
    "exceedance": conventions.EXCEEDANCE_PROBABILITY,
    "bins": conventions.BIN_PROBABILITY,
    "flags": conventions.OBSERVATION,
}
#: The map page's files: the only files ``/static`` serves, with their media types.
STATIC_FILES = {"page.js": "text/javascript", "page.css": "text/css"}
#: Fills waiting or running at once; more are refused (503) rather than queued without bound.
MAX_PENDING_FILLS = 2


@dataclass
class ServiceState:
    """What the routes share: the stores, the limits, the map and chunk caches and the fill worker."""

    stores: dict[str, ServedStore]
    limits: ServiceLimits
    renderer: MapRenderer = field(init=False)
    chunks: ChunkCache = field(init=False)
    fill_worker: ThreadPoolExecutor = field(init=False)
    pending_fills: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    metadata_by_store: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.renderer = MapRenderer(self.limits.map_cache_entries)
        self.chunks = ChunkCache(self.limits.chunk_cache_mb * 1024 * 1024)
        self.fill_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weatherunc-fill")

    def fill_ended(self) -> None:
        """Give back the place of a fill that ended (returned, failed or was cancelled before it ran)."""
        with self.lock:
            self.pending_fills -= 1

    def store(self, name: str) -> ServedStore:
        """The store called ``name``, opened anew when it was rewritten on disk since it was opened
        (its :func:`~weatherunc.service.stores.store_version` changed); 404 naming the served ones
        for an unknown name, 503 while a rewritten store is not complete."""
        if name not in self.stores:
            raise RequestError(404, f"no store {name!r}; stores: {', '.join(self.stores)}")
        store = self.stores[name]
        if store_version(store.path) != store.version:
            with self.lock:
                store = self.stores[name]
                if store_version(store.path) != store.version:
                    store = self._reopen(store)
        return store

    def _reopen(self, store: ServedStore) -> ServedStore:
        try:
            reopened = open_served_store(store.path, store.name)
        except (OSError, ValueError, KeyError) as error:
            raise RequestError(
                503, f"store {store.name!r} is being rewritten and is not complete now; retry later ({error})"
            ) from error
        self.stores[store.name] = reopened
        self.metadata_by_store.pop(store.name, None)
        return reopened

    def metadata(self, name: str) -> dict[str, Any]:
        """:func:`~weatherunc.service.stores.store_metadata` of the store ``name``, computed once per
        version of the store."""
        store = self.store(name)
        if name not in self.metadata_by_store:
            self.metadata_by_store[name] = store_metadata(store)
        return self.metadata_by_store[name]

    def published(self, name: str) -> xr.Dataset | None:
        """The dataset xpublish serves as ``name`` (its zarr endpoint and dataset description), tagged
        with the store's version so that xpublish's own caches do not outlive a rewrite."""
        if name not in self.stores:
            return None
        store = self.store(name)
        return store.dataset.assign_attrs({DATASET_ID_ATTR_KEY: f"{name}@{store.version}"})


def _json(content: Any, status: int = 200) -> Response:
    """``content`` as JSON (json.dumps: much faster than FastAPI's encoder on long lists)."""
    return Response(json.dumps(content, allow_nan=False), status_code=status, media_type="application/json")


def dataset_routes(state: ServiceState) -> APIRouter:
    """Routes under ``/datasets/{dataset_id}``."""
    router = APIRouter(tags=["weatherunc"])

    @router.get("/metadata")
    def metadata(dataset_id: str) -> Response:
        """Times, grid, variables, model, calibration and provenance of one store."""
        return _json(state.metadata(dataset_id))

    def query(
        dataset_id: str, coords: str | None, datetime: str | None, parameters: str | None, crs: str | None
    ):
        store = state.store(dataset_id)
        kind, points = queries.parse_coords(coords)
        return (
            store,
            kind,
            points,
            queries.query_crs(crs, store),
            queries.parse_datetime(datetime, store),
            (queries.parse_parameters(parameters, store)),
        )

    @router.get("/edr/position")
    def position(
        dataset_id: str,
        coords: str | None = None,
        datetime: str | None = None,
        parameter_name: str | None = Query(None, alias="parameter-name"),
        crs: str | None = None,
    ) -> Response:
        """EDR position query: CoverageJSON of the variables at the pixel nearest to each point.

        Answered ahead of this route, from memory, when the chunks it needs are decoded already
        (:mod:`weatherunc.service.fast_path`)."""
        parameters = {"coords": coords, "datetime": datetime, "parameter-name": parameter_name, "crs": crs}
        return _json(position_answer(state, dataset_id, parameters))

    @router.get("/edr/area")
    def area(
        dataset_id: str,
        coords: str | None = None,
        datetime: str | None = None,
        parameter_name: str | None = Query(None, alias="parameter-name"),
        crs: str | None = None,
    ) -> Response:
        """EDR area query: CoverageJSON of the variables at every pixel centre inside the polygon."""
        store, kind, points, crs_, times, names = query(dataset_id, coords, datetime, parameter_name, crs)
        if kind != "POLYGON":
            raise RequestError(
                400, "coords: an area query takes a POLYGON((x y, ...)); use /edr/position for points"
            )
        return _json(queries.area(store, points, crs_, times, names, state.limits))

    async def rendered(dataset_id: str, layer: str, time: str | None, threshold: float | None):
        """The map, awaited without holding a worker thread while it is drawn."""
        store = state.store(dataset_id)
        threshold = check_layer(store, layer, threshold)
        drawing = state.renderer.submit(store, map_time_index(state, dataset_id, time), layer, threshold)
        return await asyncio.wrap_future(drawing)

    @router.get("/map/{layer}.png")
    async def map_image(
        dataset_id: str, layer: str, time: str | None = None, threshold: float | None = None
    ) -> Response:
        """The map of a layer (observed, mean, std, exceedance) at one time, as PNG."""
        image = await rendered(dataset_id, layer, time, threshold)
        return Response(image.png, media_type="image/png", headers={"Cache-Control": MAP_CACHE_CONTROL})

    @router.get("/map/{layer}.json")
    async def map_geometry(
        dataset_id: str, layer: str, time: str | None = None, threshold: float | None = None
    ) -> Response:
        """Where the map's axes lie in its PNG and which extent of the store's CRS they show."""
        return _json((await rendered(dataset_id, layer, time, threshold)).geometry())

    return router


def _reject_constant(name: str) -> float:
    raise RequestError(400, f"the body holds {name}; JSON numbers must be finite (use null for unobserved)")


def app_routes(state: ServiceState) -> APIRouter:
    """Routes at the top level: the map page and ``POST /fill``."""
    router = APIRouter(tags=["weatherunc"])

    @router.get("/", include_in_schema=False)
    def page() -> Response:
        """The map page."""
        return Response((STATIC / "index.html").read_bytes(), media_type="text/html")

    @router.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        """One of the map page's files (only those of :data:`STATIC_FILES`)."""
        if name not in STATIC_FILES:
            raise RequestError(404, f"no static file {name!r}")
        return Response((STATIC / name).read_bytes(), media_type=STATIC_FILES[name])

    @router.get("/names")
    def names() -> Response:
        """The output variables' names (:mod:`weatherunc.conventions`) that the map page reads."""
        return _json(PAGE_NAMES)

    @router.get("/stores")
    def stores() -> Response:
        """Every served store's metadata, by name."""
        return _json({name: state.metadata(name) for name in state.stores})

    @router.post("/fill")
    async def fill(request: Request) -> Response:
        """Fill posted observations with a registered model (synchronous, within the size limits)."""
        limits = state.limits
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise RequestError(
                413, f"the body has {declared} bytes, more than {limits.max_body_bytes}; {BATCH_JOB_HINT}"
            )
        body = await request.body()
        if len(body) > limits.max_body_bytes:
            raise RequestError(
                413, f"the body has {len(body)} bytes, more than {limits.max_body_bytes}; {BATCH_JOB_HINT}"
            )
        try:
            parsed = json.loads(body, parse_constant=_reject_constant)
        except ValueError as error:
            if isinstance(error, RequestError):
                raise
            raise RequestError(400, f"the body is not valid JSON: {error}") from error
        with state.lock:
            if state.pending_fills >= MAX_PENDING_FILLS:
                raise RequestError(
                    503, "the service is busy with other fills; retry later, or " + BATCH_JOB_HINT
                )
            state.pending_fills += 1
        future = state.fill_worker.submit(fill_request, parsed, limits)
        # the fill holds its place until it has ended, not until its request was answered: a fill that
        # timed out while running goes on in the worker, and fills queued behind it would wait for it
        future.add_done_callback(lambda _: state.fill_ended())
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), timeout=limits.fill_timeout_s)
        except TimeoutError as error:
            future.cancel()  # a fill still queued never runs (and gives its place back at once)
            raise RequestError(
                503, f"the fill took longer than {limits.fill_timeout_s:g} s; {BATCH_JOB_HINT}"
            ) from error
        return _json(result)

    return router


class WeatherUncPlugin(Plugin):
    """weatherunc's routes as an xpublish plugin (dataset routes under ``/datasets/{name}``)."""

    name: str = "weatherunc"
    state: Any = None

    @hookimpl
    def dataset_router(self, deps) -> APIRouter:
        """Metadata, EDR queries and maps of one store."""
        return dataset_routes(self.state)

    @hookimpl
    def get_datasets(self) -> list[str]:
        """The served stores' names."""
        return list(self.state.stores)

    @hookimpl
    def get_dataset(self, dataset_id: str) -> xr.Dataset | None:
        """The served store ``dataset_id`` (its latest version), ``None`` for another name."""
        return self.state.published(dataset_id)

    @hookimpl
    def app_router(self, deps) -> APIRouter:
        """The map page and ``POST /fill``."""
        return app_routes(self.state)


def _request_error(request: Request, error: RequestError) -> JSONResponse:
    return JSONResponse({"detail": error.message}, status_code=error.status)


def create_app(stores: dict[str, ServedStore], limits: ServiceLimits | None = None) -> FastAPI:
    """The FastAPI application serving ``stores`` (read-only) with ``limits``."""
    state = ServiceState(stores=stores, limits=limits or ServiceLimits())
    rest = Rest(
        {},
        plugins={
            "zarr": ZarrPlugin(),
            "dataset_info": DatasetInfoPlugin(),
            "weatherunc": WeatherUncPlugin(state=state),
        },
        app_kws={
            "title": "weatherunc",
            "description": "Precipitation predictions and their uncertainty: EDR, zarr, maps, fills.",
        },
    )
    app = rest.app
    app.add_exception_handler(RequestError, _request_error)
    app.add_middleware(MemoryFastPath, state=state)
    app.state.weatherunc = state
    state.renderer.start()
    return app
