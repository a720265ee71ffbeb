"""Checks on incoming data. Each failure raises :class:`InputDataError` naming the check.

Checks on values run per frame, after conversion to mm/h, so that a lazily opened dataset
raises as soon as the offending frame is computed; checks on metadata run at open.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pyproj
import xarray as xr

from weatherunc import conventions
from weatherunc.errors import InputDataError

_EQUIVALENT_UNITS = {"mm/h": "mm h-1", "mm hr-1": "mm h-1", "kg m-2 h-1": "mm h-1", "kg m-2": "mm"}


def normalise_units(units: str) -> str:
    """Map spellings of the same unit onto one (``mm/h`` -> ``mm h-1``)."""
    return _EQUIVALENT_UNITS.get(units.strip(), units.strip())


def located(source: str | Path, time: datetime | str | None) -> str:
    """``source`` with the frame's ``time`` where it has one, for error messages."""
    return str(source) if time is None else f"{source} (time {time})"


def check_frame(
    rate: np.ndarray,
    *,
    source: str | Path,
    variable: str,
    time: datetime | str | None,
    negative_hint: str = "",
) -> None:
    """Check one field ``[ny, nx]`` of precipitation rate [mm/h].

    Fails on undeclared fill values, negative or impossible rates and frames with no
    observation at all. A frame that is observed everywhere and dry is valid. ``time`` is named in
    the errors (None: a frame without one); ``negative_hint`` is added to the negative-rate error
    (what the caller can do about it).
    """
    where = located(source, time)
    finite = rate[np.isfinite(rate)]
    if finite.size == 0:
        raise InputDataError(
            source=where, variable=variable, check="not all NaN", detail="the frame has no observed pixel"
        )
    check_fill_values(finite, source=source, variable=variable, time=time)
    if np.isinf(rate).any():
        raise InputDataError(source=where, variable=variable, check="finite values", detail="infinite values")
    minimum, maximum = float(finite.min()), float(finite.max())
    if minimum < 0:
        raise InputDataError(
            source=where,
            variable=variable,
            check="non-negative rate",
            detail=f"minimum {minimum:g} mm/h at {int(np.count_nonzero(finite < 0))} pixel(s){negative_hint}",
        )
    if maximum > conventions.MAXIMUM_RATE_MM_PER_HOUR:
        raise InputDataError(
            source=where,
            variable=variable,
            check="plausible rate",
            detail=f"maximum {maximum:g} mm/h exceeds {conventions.MAXIMUM_RATE_MM_PER_HOUR:g} mm/h",
        )


def check_fill_values(
    values: np.ndarray, *, source: str | Path, variable: str, time: datetime | str | None
) -> None:
    """Fail when ``values`` (any shape, native units or mm/h) hold a fill value that producers use
    without declaring it (:data:`weatherunc.conventions.UNDECLARED_FILL_VALUES`).

    Readers call it on the native values, before conversion to mm/h: a conversion (an
    accumulation divided by its period, reflectivity through a Z-R law) turns a fill value into
    a plausible-looking rate (65535 tenths of a millimetre a day are 273 mm/h).
    """
    for fill in conventions.UNDECLARED_FILL_VALUES:
        count = int(np.count_nonzero(values == fill))
        if count:
            raise InputDataError(
                source=located(source, time),
                variable=variable,
                check="no undeclared fill values",
                detail=f"{count} pixels equal {fill:g}; declare it as _FillValue",
            )


def check_times(times: Sequence[datetime] | np.ndarray, *, source: str | Path, variable: str) -> None:
    """Times must be strictly increasing: no duplicates, no disorder."""
    values = np.asarray(times, dtype="datetime64[ns]")
    steps = np.diff(values)
    zero = np.timedelta64(0, "ns")
    if (steps == zero).any():
        duplicate = values[1:][steps == zero][0]
        raise InputDataError(
            source=source,
            variable=variable,
            check="unique times",
            detail=f"time {duplicate} appears more than once",
        )
    if (steps < zero).any():
        index = int(np.argmax(steps < zero))
        raise InputDataError(
            source=source,
            variable=variable,
            check="sorted times",
            detail=f"time {values[index + 1]} follows {values[index]}",
        )


def check_units(declared: str | None, expected: str, *, source: str | Path, variable: str) -> None:
    """The units a file declares must be present and equal the catalog's."""
    if declared is None or not str(declared).strip():
        raise InputDataError(
            source=source,
            variable=variable,
            check="units present",
            detail=f"no units attribute; expected {expected!r}",
        )
    if normalise_units(str(declared)) != normalise_units(expected):
        raise InputDataError(
            source=source,
            variable=variable,
            check="units match catalog",
            detail=f"file says {declared!r}, catalog says {expected!r}",
        )


def check_grid(
    x: np.ndarray, y: np.ndarray, crs: pyproj.CRS, *, source: str | Path, names: tuple[str, str] = ("x", "y")
) -> None:
    """Coordinates must be finite and strictly monotonic; geographic ones on the globe. ``names``:
    the coordinates' own names (x, y), which the errors give."""
    for name, values in zip(names, (x, y)):
        if values.size == 0:
            raise InputDataError(
                source=source, variable=name, check="coordinates present", detail="empty coordinate"
            )
        if not np.all(np.isfinite(values)):
            raise InputDataError(
                source=source,
                variable=name,
                check="finite coordinates",
                detail="NaN or infinite coordinate values",
            )
        steps = np.diff(values)
        if values.size > 1 and not (np.all(steps > 0) or np.all(steps < 0)):
            raise InputDataError(
                source=source,
                variable=name,
                check="monotonic coordinates",
                detail="coordinate is not strictly monotonic",
            )
    if crs.is_geographic:
        if np.abs(y).max() > 90.0:
            raise InputDataError(
                source=source,
                variable=names[1],
                check="latitude within ±90",
                detail=f"latitude reaches {np.abs(y).max():.3f}",
            )
        if np.abs(x).max() > 360.0:
            raise InputDataError(
                source=source,
                variable=names[0],
                check="longitude within ±360",
                detail=f"longitude reaches {np.abs(x).max():.3f}",
            )


def check_dataset(dataset: xr.Dataset, *, source: str | Path) -> None:
    """A dataset in weatherunc's conventions: ``precipitation`` in mm/h, a CRS, coordinates.

    Metadata only; values are checked frame by frame with :func:`check_frame`.
    """
    name = conventions.PRECIPITATION
    if name not in dataset:
        raise InputDataError(
            source=source,
            variable=name,
            check="variable present",
            detail=f"dataset has {sorted(dataset.data_vars)}",
        )
    precipitation = dataset[name]
    check_units(
        precipitation.attrs.get("units"), conventions.PRECIPITATION_UNITS, source=source, variable=name
    )
    allowed = {conventions.TIME, conventions.Y, conventions.X, conventions.STATION}
    unknown = [dim for dim in precipitation.dims if dim not in allowed]
    if unknown:
        raise InputDataError(
            source=source, variable=name, check="known dimensions", detail=f"unknown dimensions {unknown}"
        )
    if conventions.CRS_VARIABLE not in dataset.variables:
        raise InputDataError(
            source=source,
            variable=conventions.CRS_VARIABLE,
            check="CRS present",
            detail="no grid mapping variable 'crs'",
        )
    for dim in precipitation.dims:
        if dim != conventions.STATION and dim not in dataset.coords:
            raise InputDataError(
                source=source,
                variable=str(dim),
                check="coordinates present",
                detail=f"no coordinate for dimension {dim!r}",
            )
    if conventions.LATITUDE in dataset.coords:
        latitude = dataset[conventions.LATITUDE]
        if bool((abs(latitude) > 90).any()):
            raise InputDataError(
                source=source,
                variable=conventions.LATITUDE,
                check="latitude within ±90",
                detail="latitude beyond ±90",
            )
    if conventions.TIME in precipitation.dims:
        check_times(dataset[conventions.TIME].values, source=source, variable=conventions.TIME)
