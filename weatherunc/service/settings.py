"""The service's limits, the one error type its request handlers raise, and the range of coordinates."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ServiceLimits:
    """Bounds on what one request may ask for; larger requests are refused with a 4xx status.

    max_body_bytes: largest request body (``POST /fill``).
    max_points: most points of one EDR position query (a MULTIPOINT) or of a fill's targets.
    max_area_pixels: most grid pixels inside one EDR area polygon.
    max_values: most values (pixels x times x variables x extra entries) one EDR response holds.
    max_gauges: most gauge observations of one fill.
    max_grid_pixels: most pixels of a fill's observed or target grid.
    fill_timeout_s: seconds a synchronous fill may take before the request is answered 503.
    map_cache_entries: PNG maps kept in memory.
    chunk_cache_mb: decoded zarr chunks kept in memory for point queries [MB].
    """

    max_body_bytes: int = 8_000_000
    max_points: int = 1_000
    max_area_pixels: int = 20_000
    max_values: int = 2_000_000
    max_gauges: int = 2_000
    max_grid_pixels: int = 512 * 512
    fill_timeout_s: float = 120.0
    map_cache_entries: int = 256
    chunk_cache_mb: int = 512


#: What a refused fill points to: the batch jobs, which have no size limit.
BATCH_JOB_HINT = "for larger requests run a batch job: `weatherunc run JOB.yaml` (see docs/jobs.md)"


class RequestError(ValueError):
    """A request the service refuses: ``status`` is the HTTP status (4xx), ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or ``None`` (JSON ``null``) when NaN or infinite (an open bin edge)."""
    number = float(value)
    return number if math.isfinite(number) else None


#: Longitudes a request may give (west of -180 is refused; up to 360 for 0-360 grids) and its message.
GEOGRAPHIC_RANGE = "longitude in [-180, 360], latitude in [-90, 90]"


def on_the_globe(longitude: np.ndarray, latitude: np.ndarray) -> bool:
    """Whether every longitude ``[n]`` and latitude ``[m]`` (points' or a grid's axes) lies within
    :data:`GEOGRAPHIC_RANGE` (NaN does not)."""
    return bool(np.all((longitude >= -180) & (longitude <= 360)) and np.all(np.abs(latitude) <= 90))
