"""CoverageJSON pieces of the EDR answers (OGC 21-069r2 CoverageJSON: parameters, NdArray ranges,
axes and referencing), from xarray selections of a prediction store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyproj
import xarray as xr

from weatherunc import conventions
from weatherunc.service.settings import finite_or_none
from weatherunc.service.stores import ServedStore

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


#: The extra dims of the distribution, which become extra CoverageJSON axes.
EXTRA_AXES = (conventions.QUANTILE, conventions.THRESHOLD, conventions.BIN)


def axis_values(store: ServedStore) -> dict[str, np.ndarray]:
    """The values of the store's extra axes (quantile levels, thresholds, bin numbers) by dim."""
    return {dim: store.reader.variables[dim].values for dim in EXTRA_AXES if dim in store.reader.variables}


def coverage_parts(
    block: Mapping[str, xr.Variable], axes_by_dim: Mapping[str, np.ndarray], spatial: list[str]
) -> tuple[dict, dict, dict]:
    """CoverageJSON ``parameters``, ``ranges`` and extra axes of the variables of ``block`` (dims time,
    *spatial, extra), the extra axes' values from ``axes_by_dim``."""
    parameters, ranges, axes = {}, {}, {}
    for name, variable in block.items():
        extra = [str(dim) for dim in variable.dims if dim not in (conventions.TIME, *spatial)]
        for dim in extra:
            axes[dim] = {"values": [float(value) for value in axes_by_dim[dim]]}
        ordered = variable.transpose(conventions.TIME, *spatial, *extra)
        values = np.asarray(ordered.values, dtype=np.float64)
        integer = np.issubdtype(variable.dtype, np.integer)
        parameters[name] = {
            "type": "Parameter",
            "description": {"en": str(variable.attrs.get("long_name", name))},
            "unit": {"symbol": str(variable.attrs.get("units", "1"))},
            "observedProperty": {
                "id": str(variable.attrs.get("standard_name", name)),
                "label": {"en": name},
            },
        }
        if "flag_meanings" in variable.attrs:
            flags = np.atleast_1d(variable.attrs.get("flag_values", []))
            parameters[name]["categoryEncoding"] = {
                meaning: int(flag)
                for flag, meaning in zip(flags, str(variable.attrs["flag_meanings"]).split())
            }
        ranges[name] = {
            "type": "NdArray",
            "dataType": "integer" if integer else "float",
            "axisNames": ["t", *(["composite"] if spatial else []), *extra],
            "shape": list(values.shape),
            "values": [
                None if not np.isfinite(value) else (int(value) if integer else float(value))
                for value in values.ravel()
            ],
        }
    return parameters, ranges, axes


def time_axis(store: ServedStore, times: np.ndarray) -> dict[str, Any]:
    values = store.times[times].astype("datetime64[s]")
    return {"values": [str(np.datetime_as_string(time)) + "Z" for time in values]}


def referencing(crs: pyproj.CRS) -> list[dict[str, Any]]:
    system = (
        {"type": "GeographicCRS", "id": CRS84}
        if crs.is_geographic
        else {"type": "ProjectedCRS", "wkt": crs.to_wkt()}
    )
    return [
        {"coordinates": ["x", "y"], "system": system},
        {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}},
    ]


def bin_edges(store: ServedStore) -> dict[str, list[float]]:
    dataset = store.dataset
    if conventions.BIN_LOWER not in dataset.coords:
        return {}
    return {
        "bin_lower": [finite_or_none(value) for value in dataset[conventions.BIN_LOWER].values],
        "bin_upper": [finite_or_none(value) for value in dataset[conventions.BIN_UPPER].values],
    }
