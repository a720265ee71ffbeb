"""Answers from memory ahead of the application's routing: EDR position queries whose chunks are
decoded already and maps drawn before.

Under many concurrent clients most of a point query's time goes to the web framework (routing,
parameter validation, the hand-off to a worker thread), not to the query, whose values come
from :class:`~weatherunc.service.chunks.ChunkCache`. :class:`MemoryFastPath` is an ASGI middleware
that answers ``GET /datasets/{name}/edr/position`` and ``GET /datasets/{name}/map/{layer}.png``
itself, on the event loop, when everything the answer needs is in memory, and hands every other
request, and those that would read from disk or draw, to the application unchanged. Both paths
share :func:`position_answer` and the same refusals (JSON ``{"detail": ...}`` with a 4xx status).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.datastructures import QueryParams

from weatherunc.service import queries
from weatherunc.service.chunks import ChunkMiss
from weatherunc.service.maps import check_layer
from weatherunc.service.settings import RequestError

if TYPE_CHECKING:
    from weatherunc.service.app import ServiceState

POSITION_PATH = re.compile(r"^/datasets/([^/]+)/edr/position$")
MAP_PATH = re.compile(r"^/datasets/([^/]+)/map/([^/]+)\.png$")
#: Header of a cached map answer (maps of a store version do not change).
MAP_CACHE_CONTROL = "max-age=3600"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def position_answer(
    state: ServiceState, dataset_id: str, parameters: Mapping[str, str | None], *, loading: bool = True
) -> dict[str, Any]:
    """The CoverageJSON answer of an EDR position query on store ``dataset_id`` with the query
    ``parameters`` (``coords``, ``datetime``, ``parameter-name``, ``crs``); ``RequestError`` when
    refused, :class:`~weatherunc.service.chunks.ChunkMiss` when ``loading`` is false and a chunk
    is not in memory."""
    store = state.store(dataset_id)
    kind, points = queries.parse_coords(parameters.get("coords"))
    if kind == "POLYGON":
        raise RequestError(
            400, "coords: a position query takes a POINT or MULTIPOINT; use /edr/area for a POLYGON"
        )
    return queries.position(
        store,
        points,
        queries.query_crs(parameters.get("crs"), store),
        queries.parse_datetime(parameters.get("datetime"), store),
        queries.parse_parameters(parameters.get("parameter-name"), store),
        state.limits,
        state.chunks,
        loading=loading,
    )


def map_time_index(state: ServiceState, dataset_id: str, time: str | None) -> int:
    """The index of the store time ``time`` names (the first when ``None``); ``RequestError`` otherwise."""
    store = state.store(dataset_id)
    if time is None:
        return 0
    selected = queries.parse_datetime(time, store, parameter="time")
    if selected.size != 1:
        raise RequestError(400, f"time: {time!r} selects {selected.size} times; give one time")
    return int(selected[0])


class MemoryFastPath:
    """ASGI middleware answering position queries and maps from memory (see the module's description)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], state: ServiceState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            answer = self._answer(scope)
            if answer is not None:
                await _send(send, *answer)
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        """Status, body and headers of the answer from memory, or ``None`` to hand the request on."""
        path = scope["path"]
        position = POSITION_PATH.match(path)
        drawn = MAP_PATH.match(path) if position is None else None
        if position is None and drawn is None:
            return None
        parameters = QueryParams(scope["query_string"])
        try:
            if position is not None:
                answer = position_answer(self.state, position.group(1), parameters, loading=False)
                return (
                    200,
                    json.dumps(answer, allow_nan=False).encode(),
                    [(b"content-type", b"application/json")],
                )
            return self._cached_map(drawn.group(1), drawn.group(2), parameters)
        except ChunkMiss:
            return None
        except RequestError as error:
            body = json.dumps({"detail": error.message}).encode()
            return error.status, body, [(b"content-type", b"application/json")]

    def _cached_map(
        self, dataset_id: str, layer: str, parameters: QueryParams
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        threshold_text = parameters.get("threshold")
        try:
            threshold = None if threshold_text is None else float(threshold_text)
        except ValueError:
            return None  # the application's validation answers 422
        store = self.state.store(dataset_id)
        threshold = check_layer(store, layer, threshold)
        time_index = map_time_index(self.state, dataset_id, parameters.get("time"))
        rendered = self.state.renderer.cached(store, time_index, layer, threshold)
        if rendered is None:
            return None
        headers = [(b"content-type", b"image/png"), (b"cache-control", MAP_CACHE_CONTROL.encode())]
        return 200, rendered.png, headers


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
