"""OGC EDR position and area queries on a prediction store, answered as CoverageJSON.

Query syntax follows OGC API - Environmental Data Retrieval 1.1 (OGC 19-086r6), sections 8.2.1
(``coords`` as WKT ``POINT``/``MULTIPOINT``/``POLYGON``), 8.2.3 (``datetime``: an instant, or an
interval ``start/end`` with ``..`` for an open end) and 8.2.2 (``parameter-name``); responses are
CoverageJSON (OGC 21-069r2): a ``PointSeries`` coverage per point, a ``MultiPointSeries`` for an
area. Coordinates are longitude/latitude (CRS84) unless ``crs`` names another CRS, or ``native``
for the store's own; they are transformed into the store's CRS and matched to the nearest pixel
centre (points) or the pixel centres inside the polygon (areas). The extra axes of the
distribution (``quantile``, ``threshold``, ``bin``) become extra CoverageJSON axes.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
import pandas as pd
import pyproj
import xarray as xr
from matplotlib.path import Path as PolygonPath

from weatherunc import conventions
from weatherunc.service import coverage
from weatherunc.service.chunks import ChunkCache
from weatherunc.service.settings import GEOGRAPHIC_RANGE, RequestError, ServiceLimits, on_the_globe
from weatherunc.service.stores import ServedStore

#: Variables a query returns when ``parameter-name`` is not given.
DEFAULT_PARAMETERS = (
    conventions.PRECIPITATION,
    conventions.PRECIPITATION_MEAN,
    conventions.PRECIPITATION_STD,
    conventions.PRECIPITATION_QUANTILE,
    conventions.EXCEEDANCE_PROBABILITY,
    conventions.BIN_PROBABILITY,
    conventions.OBSERVATION,
)
NATIVE_CRS = "native"
#: The default CRS of query coordinates: longitude, latitude on WGS 84.
GEOGRAPHIC_CRS = pyproj.CRS.from_user_input("OGC:CRS84")
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf|infinity)"
PAIR = re.compile(rf"^\s*\(?\s*({NUMBER})\s+({NUMBER})\s*\)?\s*$", re.IGNORECASE)
GEOMETRY = re.compile(r"^\s*(POINT|MULTIPOINT|POLYGON)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)


def _pairs(text: str, what: str) -> np.ndarray:
    """``x y, x y, ...`` as a finite ``[n, 2]`` array."""
    pairs = []
    for part in text.split(","):
        match = PAIR.match(part)
        if match is None:
            raise RequestError(400, f"coords: cannot read {part.strip()!r} of the {what} as 'x y'")
        pairs.append((float(match.group(1)), float(match.group(2))))
    values = np.asarray(pairs, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise RequestError(400, f"coords: the {what} holds NaN or infinite coordinates")
    return values


def parse_coords(text: str | None) -> tuple[str, np.ndarray]:
    """A WKT ``coords`` parameter: its kind (``POINT``, ``MULTIPOINT``, ``POLYGON``) and its vertices
    ``[n, 2]``."""
    if not text:
        raise RequestError(400, "coords is required, e.g. coords=POINT(5.1 52.1) (longitude latitude)")
    match = GEOMETRY.match(text)
    if match is None:
        raise RequestError(400, f"coords must be WKT POINT, MULTIPOINT or POLYGON, got {text[:80]!r}")
    kind, body = match.group(1).upper(), match.group(2)
    if kind == "POLYGON":
        rings = re.findall(r"\(([^()]*)\)", body)
        if len(rings) != 1 or body.strip()[0] != "(":
            raise RequestError(400, "coords: a POLYGON must have exactly one ring: POLYGON((x y, x y, ...))")
        vertices = _pairs(rings[0], "polygon")
        if len(vertices) < 4 or not np.array_equal(vertices[0], vertices[-1]):
            raise RequestError(
                400, "coords: a POLYGON ring needs at least 4 points, the last equal to the first"
            )
        return kind, vertices
    points = _pairs(body, kind.lower())
    if kind == "POINT" and len(points) != 1:
        raise RequestError(400, "coords: a POINT has exactly one 'x y' pair")
    return kind, points


def query_crs(text: str | None, store: ServedStore) -> pyproj.CRS:
    """The CRS of the query's coordinates: CRS84 by default, ``native`` for the store's own."""
    if text is None or text in (coverage.CRS84, "CRS84", "EPSG:4326"):
        return GEOGRAPHIC_CRS
    if text == NATIVE_CRS:
        return store.crs
    try:
        return pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as error:
        raise RequestError(400, f"crs: cannot read {text!r} ({error}); use CRS84 or native") from error


def to_store_coordinates(points: np.ndarray, crs: pyproj.CRS, store: ServedStore) -> np.ndarray:
    """``points`` ``[n, 2]`` in ``crs`` (x/longitude first) as ``[n, 2]`` in the store's CRS."""
    if crs.is_geographic:
        longitude, latitude = points[:, 0], points[:, 1]
        if not on_the_globe(longitude, latitude):
            raise RequestError(400, f"coords: {GEOGRAPHIC_RANGE} (order: lon lat)")
    if crs is store.crs:
        return points
    x, y = store.transformer_from(crs).transform(points[:, 0], points[:, 1])
    transformed = np.stack([np.asarray(x), np.asarray(y)], axis=1)
    if not np.all(np.isfinite(transformed)):
        raise RequestError(400, "coords: a point lies outside the domain of the store's projection")
    return transformed


@functools.lru_cache(maxsize=1024)
def _instant(value: str, parameter: str = "datetime") -> np.datetime64:
    """An ISO 8601 time as a UTC ``datetime64[ns]``; ``RequestError`` when it is not one."""
    try:
        stamp = pd.Timestamp(value)
    except ValueError as error:
        raise RequestError(400, f"{parameter}: cannot read {value!r} as an ISO 8601 time") from error
    if stamp is pd.NaT:
        raise RequestError(400, f"{parameter}: {value!r} is not a time")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return np.datetime64(stamp.to_datetime64(), "ns")


def parse_datetime(text: str | None, store: ServedStore, parameter: str = "datetime") -> np.ndarray:
    """Indices of the store times that an EDR ``datetime`` selects (all when absent); 404 when none;
    errors name the query ``parameter`` (``time`` for maps)."""
    times = store.memoised("times_ns", lambda: store.times.astype("datetime64[ns]"))
    if text is None:
        return np.arange(times.size)

    def instant(value: str) -> np.datetime64 | None:
        return None if value in ("..", "") else _instant(value, parameter)

    span = f"{np.datetime_as_string(times[0], unit='m')}Z to {np.datetime_as_string(times[-1], unit='m')}Z"
    if "/" in text:
        start_text, _, end_text = text.partition("/")
        start, end = instant(start_text), instant(end_text)
        if start is not None and end is not None and end < start:
            raise RequestError(400, f"{parameter}: the interval {text!r} ends before it starts")
        selected = np.flatnonzero(
            ((times >= start) if start is not None else True) & ((times <= end) if end is not None else True)
        )
        if selected.size == 0:
            raise RequestError(
                404, f"{parameter}: no time of store {store.name!r} in {text!r}; it holds {span}"
            )
        return selected
    moment = instant(text)
    if moment is None:
        return np.arange(times.size)
    selected = np.flatnonzero(times == moment)
    if selected.size == 0:
        nearest = times[np.argmin(np.abs(times - moment))]
        raise RequestError(
            404,
            f"{parameter}: store {store.name!r} has no time {text!r} (it holds {span}; nearest "
            f"{np.datetime_as_string(nearest, unit='m')}Z); give an interval start/end for a range",
        )
    return selected


def parse_parameters(text: str | None, store: ServedStore) -> list[str]:
    """The variables ``parameter-name`` names (comma-separated), each on the store's (time, y, x) grid."""
    queryable = store.memoised(
        "queryable",
        lambda: [
            str(name)
            for name, variable in store.reader.variables.items()
            if variable.dims[:3] == (conventions.TIME, conventions.Y, conventions.X)
        ],
    )
    if not text:
        return [name for name in DEFAULT_PARAMETERS if name in queryable]
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in queryable]
    if unknown or not names:
        raise RequestError(
            400,
            f"parameter-name: unknown variable(s) {unknown}; store {store.name!r} has {', '.join(queryable)}",
        )
    return list(dict.fromkeys(names))


def _pixel_index(values: np.ndarray, axis: np.ndarray, what: str) -> np.ndarray:
    """Nearest pixel-centre index of each value along ``axis``; 404 beyond half a pixel outside the grid."""
    index = np.abs(values[:, None] - axis[None, :]).argmin(axis=1)
    step = abs(float(axis[1] - axis[0])) if axis.size > 1 else np.inf
    outside = np.abs(values - axis[index]) > 0.5 * step * (1 + 1e-9)
    if np.any(outside):
        raise RequestError(
            404, f"coords: {int(outside.sum())} point(s) lie outside the store's grid ({what})"
        )
    return index


def _check_size(count: int, limits: ServiceLimits, what: str) -> None:
    if count > limits.max_values:
        raise RequestError(
            413,
            f"{what} would return {count} values, more than the limit of {limits.max_values}; ask for fewer "
            "times (datetime), variables (parameter-name) or a smaller area, or open the zarr endpoint",
        )


def _values_per_pixel(store: ServedStore, names: list[str]) -> int:
    """How many values the variables ``names`` hold per pixel and time (their extra entries)."""
    sizes = store.memoised(
        "values_per_pixel",
        lambda: {
            str(name): int(np.prod(variable.shape[3:])) for name, variable in store.reader.variables.items()
        },
    )
    return sum(sizes[name] for name in names)


def position(
    store: ServedStore,
    points: np.ndarray,
    crs: pyproj.CRS,
    times: np.ndarray,
    names: list[str],
    limits: ServiceLimits,
    chunks: ChunkCache,
    *,
    loading: bool = True,
) -> dict[str, Any]:
    """Values at the pixels nearest to ``points`` ``[n, 2]`` (in ``crs``): a CoverageJSON ``Coverage``
    (one point) or ``CoverageCollection``. The values are read through ``chunks`` (with ``loading``
    false, only from memory: :class:`~weatherunc.service.chunks.ChunkMiss` otherwise)."""
    if len(points) > limits.max_points:
        raise RequestError(413, f"coords: {len(points)} points, more than the limit of {limits.max_points}")
    native = to_store_coordinates(points, crs, store)
    columns = _pixel_index(native[:, 0], store.x, "x")
    rows = _pixel_index(native[:, 1], store.y, "y")
    per_point = _values_per_pixel(store, names)
    _check_size(len(points) * len(times) * per_point, limits, "the position query")
    coverages = []
    for point, row, column in zip(points, rows, columns):
        series = chunks.pixel_series(store, names, times, int(row), int(column), loading=loading)
        parameters, ranges, axes = coverage.coverage_parts(store, series, [])
        coverages.append(
            {
                "type": "Coverage",
                "domain": {
                    "type": "Domain",
                    "domainType": "PointSeries",
                    "axes": {
                        "x": {"values": [float(point[0])]},
                        "y": {"values": [float(point[1])]},
                        "t": coverage.time_axis(store, times),
                        **axes,
                    },
                    "referencing": coverage.referencing(crs),
                },
                "parameters": parameters,
                "ranges": ranges,
                "weatherunc:pixel": {
                    "store": store.name,
                    "row": int(row),
                    "column": int(column),
                    "x": float(store.x[column]),
                    "y": float(store.y[row]),
                    **coverage.bin_edges(store),
                },
            }
        )
    if len(coverages) == 1:
        return coverages[0]
    return {"type": "CoverageCollection", "coverages": coverages}


def area(
    store: ServedStore,
    vertices: np.ndarray,
    crs: pyproj.CRS,
    times: np.ndarray,
    names: list[str],
    limits: ServiceLimits,
) -> dict[str, Any]:
    """Values at every pixel centre inside the polygon ``vertices`` ``[n, 2]`` (in ``crs``): a CoverageJSON
    ``MultiPointSeries`` coverage, points in the store's CRS and in longitude/latitude."""
    reader = store.reader
    native = to_store_coordinates(vertices, crs, store)
    x, y = store.x, store.y
    in_x = np.flatnonzero((x >= native[:, 0].min()) & (x <= native[:, 0].max()))
    in_y = np.flatnonzero((y >= native[:, 1].min()) & (y <= native[:, 1].max()))
    if in_x.size == 0 or in_y.size == 0:
        raise RequestError(404, "coords: the polygon holds no pixel centre of the store's grid")
    if in_x.size * in_y.size > 4 * limits.max_area_pixels:
        raise RequestError(
            413,
            f"coords: the polygon's bounding box covers {in_x.size * in_y.size} pixels; the limit is "
            f"{limits.max_area_pixels} pixels inside the polygon",
        )
    grid_x, grid_y = np.meshgrid(x[in_x], y[in_y])
    inside = PolygonPath(native).contains_points(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1))
    inside = inside.reshape(grid_x.shape)
    count = int(inside.sum())
    if count == 0:
        raise RequestError(404, "coords: the polygon holds no pixel centre of the store's grid")
    if count > limits.max_area_pixels:
        raise RequestError(
            413, f"coords: the polygon holds {count} pixels, more than the limit of {limits.max_area_pixels}"
        )
    per_pixel = _values_per_pixel(store, names)
    _check_size(count * len(times) * per_pixel, limits, "the area query")
    rows, columns = np.nonzero(inside)
    window = (
        reader[names]
        .isel(
            {
                conventions.TIME: times,
                conventions.Y: slice(int(in_y.min()), int(in_y.max()) + 1),
                conventions.X: slice(int(in_x.min()), int(in_x.max()) + 1),
            }
        )
        .load()
    )
    pixels = window.isel(
        {
            conventions.Y: xr.DataArray(rows, dims="composite"),
            conventions.X: xr.DataArray(columns, dims="composite"),
        }
    )
    block = {}
    for name in names:
        variable = pixels.variables[name]
        order = (
            conventions.TIME,
            "composite",
            *(dim for dim in variable.dims if dim not in (conventions.TIME, "composite")),
        )
        block[name] = (order, variable.transpose(*order).values)
    parameters, ranges, axes = coverage.coverage_parts(store, block, ["composite"])
    pixel_x, pixel_y = grid_x[rows, columns], grid_y[rows, columns]
    longitude, latitude = pyproj.Transformer.from_crs(store.crs, GEOGRAPHIC_CRS, always_xy=True).transform(
        pixel_x, pixel_y
    )
    return {
        "type": "Coverage",
        "domain": {
            "type": "Domain",
            "domainType": "MultiPointSeries",
            "axes": {
                "composite": {
                    "dataType": "tuple",
                    "coordinates": ["x", "y"],
                    "values": [[float(a), float(b)] for a, b in zip(longitude, latitude)],
                },
                "t": coverage.time_axis(store, times),
                **axes,
            },
            "referencing": coverage.referencing(GEOGRAPHIC_CRS),
        },
        "parameters": parameters,
        "ranges": ranges,
        "weatherunc:pixels": {
            "store": store.name,
            "count": count,
            "x": [float(value) for value in pixel_x],
            "y": [float(value) for value in pixel_y],
            **coverage.bin_edges(store),
        },
    }
