"""Human-readable summaries of precipitation datasets."""

from __future__ import annotations

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.geolocation import crs_of

#: Rate above which a pixel counts as wet [mm/h] (the usual 0.1 mm/h radar threshold).
WET_THRESHOLD_MM_PER_HOUR = 0.1


def summarise(dataset: xr.Dataset) -> dict[str, object]:
    """Sizes, time span and step, CRS, and statistics of ``precipitation`` (computes it)."""
    precipitation = dataset[conventions.PRECIPITATION]
    values = precipitation.values
    observed = np.isfinite(values)
    finite = values[observed]
    summary: dict[str, object] = {
        "entry": dataset.attrs.get("weatherunc_catalog_entry"),
        "dims": {str(dim): int(size) for dim, size in precipitation.sizes.items()},
        "units": precipitation.attrs.get("units"),
        "crs": crs_of(dataset).name,
        "observed_fraction": float(observed.mean()),
        "wet_fraction": float((finite > WET_THRESHOLD_MM_PER_HOUR).mean()) if finite.size else float("nan"),
        "mean_rate_mm_per_hour": float(finite.mean()) if finite.size else float("nan"),
        "max_rate_mm_per_hour": float(finite.max()) if finite.size else float("nan"),
    }
    if conventions.TIME in dataset.coords and dataset.sizes.get(conventions.TIME, 0):
        times = dataset[conventions.TIME].values
        summary["time_start"] = str(times[0].astype("datetime64[s]"))
        summary["time_end"] = str(times[-1].astype("datetime64[s]"))
        if times.size > 1:
            steps = np.unique(np.diff(times).astype("timedelta64[s]").astype(int))
            summary["time_step_minutes"] = [float(step) / 60 for step in steps]
    if conventions.LATITUDE in dataset.coords:
        summary["latitude_range"] = [
            float(dataset[conventions.LATITUDE].min()),
            float(dataset[conventions.LATITUDE].max()),
        ]
        summary["longitude_range"] = [
            float(dataset[conventions.LONGITUDE].min()),
            float(dataset[conventions.LONGITUDE].max()),
        ]
    return summary
