"""CoverageJSON pieces of the EDR answers (OGC 21-069r2 CoverageJSON: parameters, NdArray ranges,
axes and referencing), from xarray selections of a prediction store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyproj

from weatherunc import conventions
from weatherunc.service.settings import finite_or_none
from weatherunc.service.stores import ServedStore

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


#: The extra dims of the distribution, which become extra CoverageJSON axes.
EXTRA_AXES = (conventions.QUANTILE, conventions.THRESHOLD, conventions.BIN)


def axis_values(store: ServedStore) -> dict[str, np.ndarray]:
    """The values of the store's extra axes (quantile levels, thresholds, bin numbers) by dim."""
    return store.memoised(
        "axis_values",
        lambda: {
            dim: store.reader.variables[dim].values for dim in EXTRA_AXES if dim in store.reader.variables
        },
    )


def _axes_json(store: ServedStore) -> dict[str, dict[str, list[float]]]:
    return store.memoised(
        "axes_json",
        lambda: {
            dim: {"values": [float(value) for value in values]} for dim, values in axis_values(store).items()
        },
    )


def parameter(store: ServedStore, name: str) -> dict[str, Any]:
    """The CoverageJSON ``Parameter`` of the store's variable ``name`` (its description, unit,
    observed property and, for flags, category encoding)."""

    def compute() -> dict[str, Any]:
        attrs = store.reader.variables[name].attrs
        described = {
            "type": "Parameter",
            "description": {"en": str(attrs.get("long_name", name))},
            "unit": {"symbol": str(attrs.get("units", "1"))},
            "observedProperty": {"id": str(attrs.get("standard_name", name)), "label": {"en": name}},
        }
        if "flag_meanings" in attrs:
            flags = np.atleast_1d(attrs.get("flag_values", []))
            described["categoryEncoding"] = {
                meaning: int(flag) for flag, meaning in zip(flags, str(attrs["flag_meanings"]).split())
            }
        return described

    return store.memoised(f"parameter:{name}", compute)


def json_values(values: np.ndarray, integer: bool) -> list[float | int | None]:
    """``values`` flattened as JSON numbers, ``None`` where not finite."""
    if integer:
        return np.asarray(values).astype(np.int64).ravel().tolist()
    numbers = np.asarray(values, dtype=np.float64).ravel()
    listed = numbers.tolist()
    missing = ~np.isfinite(numbers)
    if missing.any():
        for index in np.flatnonzero(missing).tolist():
            listed[index] = None
    return listed


def coverage_parts(
    store: ServedStore, block: Mapping[str, tuple[tuple[str, ...], np.ndarray]], spatial: list[str]
) -> tuple[dict, dict, dict]:
    """CoverageJSON ``parameters``, ``ranges`` and extra axes of the variables of ``block`` (by name:
    dims and values, dims in the order time, *spatial, extra), the extra axes' values from the store."""
    parameters, ranges, axes = {}, {}, {}
    axes_json = _axes_json(store)
    for name, (dims, values) in block.items():
        extra = [str(dim) for dim in dims if dim not in (conventions.TIME, *spatial)]
        for dim in extra:
            axes[dim] = axes_json[dim]
        integer = np.issubdtype(values.dtype, np.integer)
        parameters[name] = parameter(store, name)
        ranges[name] = {
            "type": "NdArray",
            "dataType": "integer" if integer else "float",
            "axisNames": ["t", *(["composite"] if spatial else []), *extra],
            "shape": list(values.shape),
            "values": json_values(values, integer),
        }
    return parameters, ranges, axes


def time_axis(store: ServedStore, times: np.ndarray) -> dict[str, Any]:
    """The CoverageJSON ``t`` axis of the store's times ``times`` (indices)."""
    values = store.times[times].astype("datetime64[s]")
    return {"values": [str(np.datetime_as_string(time)) + "Z" for time in values]}


def referencing(crs: pyproj.CRS) -> list[dict[str, Any]]:
    """CoverageJSON ``referencing`` of x/y in ``crs`` and of t."""
    system = (
        {"type": "GeographicCRS", "id": CRS84}
        if crs.is_geographic
        else {"type": "ProjectedCRS", "wkt": crs.to_wkt()}
    )
    return [
        {"coordinates": ["x", "y"], "system": system},
        {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}},
    ]


def bin_edges(store: ServedStore) -> dict[str, list[float | None]]:
    """The store's rain-bin edges (``bin_lower``, ``bin_upper``; ``None`` for an open edge)."""

    def compute() -> dict[str, list[float | None]]:
        dataset = store.dataset
        if conventions.BIN_LOWER not in dataset.coords:
            return {}
        return {
            "bin_lower": [finite_or_none(value) for value in dataset[conventions.BIN_LOWER].values],
            "bin_upper": [finite_or_none(value) for value in dataset[conventions.BIN_UPPER].values],
        }

    return store.memoised("bin_edges", compute)
