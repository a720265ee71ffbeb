"""Draft a catalog entry for ODIM_H5 Cartesian products (``weatherunc catalog new``).

Reference: Michelson et al., "EUMETNET OPERA weather radar information model for implementation
with the HDF5 file format" (ODIM_H5), version 2.4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import pandas as pd

from weatherunc import conventions
from weatherunc.errors import InputDataError
from weatherunc.onboarding_fields import MARSHALL_PALMER, crs_text, files_pattern, regular_time_step
from weatherunc.readers import odim

#: ODIM quantities a draft prefers, best first: rates need no conversion, reflectivity a Z-R law.
ODIM_PREFERENCE = ("RATE", "ACRR", "DBZH", "TH", "DBZV", "TV")


def inspect_odim(
    files: list[Path], name: str, root: Path, *, variable: str | None = None, crs: str | None = None
) -> dict[str, Any]:
    """A draft entry for the ODIM_H5 Cartesian ``files`` under ``root``: reader ``odim_hdf5``, the
    quantity (``variable``, else the first of :data:`ODIM_PREFERENCE` present), its units, the
    ``projdef`` CRS and the nominal times."""
    first = files[0]
    with h5py.File(first, "r") as handle:
        groups = {odim.text(what.get("quantity", "")): what for _group, what in odim.data_groups(handle)}
        source = odim.text(odim.attributes(handle, "what").get("source", ""))
        projdef = odim.text(odim.attributes(handle, "where").get("projdef", ""))
    chosen = variable or next((quantity for quantity in ODIM_PREFERENCE if quantity in groups), None)
    if chosen is None or chosen not in groups or chosen not in odim.QUANTITY_UNITS:
        raise InputDataError(
            source=first,
            variable=chosen or "<quantity>",
            check="precipitation variable found",
            detail=f"quantities in the file: {sorted(groups)}; readable: {sorted(odim.QUANTITY_UNITS)}",
        )
    units = odim.QUANTITY_UNITS[chosen]
    times = []
    for path in files:
        with h5py.File(path, "r") as handle:
            times.append(odim.nominal_time(handle))
    times_index = pd.DatetimeIndex(sorted(times))
    entry: dict[str, Any] = {
        "name": name,
        "description": "",
        "kind": "grid",
        "reader": "odim_hdf5",
        "files": files_pattern(files, root),
        "variable": chosen,
        "units": units,
        **regular_time_step(times_index),
    }
    if units in conventions.ACCUMULATION_UNITS:
        minutes = odim.period_minutes(groups[chosen]) or entry.get("time_step_minutes")
        if minutes is None:
            raise InputDataError(
                source=first,
                variable=chosen,
                check="accumulation period found",
                detail="no startdate/starttime to enddate/endtime and no regular time step",
            )
        entry["accumulation_minutes"] = minutes
    if units in conventions.REFLECTIVITY_UNITS:
        entry["zr_relation"] = dict(MARSHALL_PALMER)
    if crs is not None:
        entry["crs"] = crs
    elif projdef:
        entry["crs"] = crs_text(projdef)
    span = (
        f"{times_index[0]:%Y-%m-%d %H:%M}-{times_index[-1]:%Y-%m-%d %H:%M} UTC, {len(times_index)} frame(s)"
    )
    entry["description"] = f"ODIM {chosen} {source or 'composite'} ({span})"
    return entry
