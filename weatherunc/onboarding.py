"""Draft a catalog entry from data files: ``weatherunc catalog new FILE... --name NAME``.

CF NetCDF and ODIM_H5 files are inspected for a precipitation variable (precipitation-like units or CF
``standard_name``), its units, the CRS of its CF grid mapping (or latitude/longitude
dimensions) and its time range; the entry written is validated by the catalog schema and opened
once, so that it loads as written. Descriptive fields (``description``, ``licence``,
``attribution``) are left for the user to review.

Reference: CF Conventions 1.10, sections 3.3 (standard names) and 5.6 (grid mappings).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr
import yaml
from pydantic import ValidationError

from weatherunc import conventions
from weatherunc.catalog import Catalog, CatalogEntry, schema_error
from weatherunc.errors import InputDataError
from weatherunc.onboarding_fields import MARSHALL_PALMER, crs_text, files_pattern, regular_time_step
from weatherunc.onboarding_odim import inspect_odim
from weatherunc.readers.netcdf import file_crs, open_netcdf
from weatherunc.validation import normalise_units

#: CF standard names of precipitation rates, amounts and radar reflectivity.
PRECIPITATION_STANDARD_NAMES = frozenset(
    {
        "lwe_precipitation_rate",
        "precipitation_flux",
        "precipitation_amount",
        "lwe_thickness_of_precipitation_amount",
        "rainfall_rate",
        "rainfall_amount",
        "thickness_of_rainfall_amount",
        "equivalent_reflectivity_factor",
    }
)
#: Digits in a file name read as a time, longest first: run length -> ``strptime`` format.
FILENAME_TIME_FORMATS = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M", 10: "%Y%m%d%H", 8: "%Y%m%d"}


def catalog_units(declared: str | None) -> str | None:
    """The catalog spelling of ``declared`` units, or ``None`` when the catalog knows none."""
    if declared is None:
        return None
    if str(declared).strip() in conventions.KNOWN_UNITS:
        return str(declared).strip()
    wanted = normalise_units(str(declared))
    for units in sorted(conventions.KNOWN_UNITS):
        if normalise_units(units) == wanted:
            return units
    return None


def precipitation_variable(dataset: xr.Dataset, path: Path, variable: str | None = None) -> str:
    """The name of the precipitation variable in ``dataset``: ``variable`` when given, else the one
    variable of two or more dimensions whose units the catalog knows or whose ``standard_name`` is a
    precipitation name (a standard-name match wins). :class:`InputDataError` when none fits."""
    if variable is not None:
        if variable not in dataset.data_vars:
            raise InputDataError(
                source=path,
                variable=variable,
                check="variable present",
                detail=f"file has {sorted(map(str, dataset.data_vars))}",
            )
        return variable
    described = {
        str(name): (data.attrs.get("standard_name"), data.attrs.get("units"))
        for name, data in dataset.data_vars.items()
        if data.ndim >= 2
    }
    by_name = [name for name, (standard, _) in described.items() if standard in PRECIPITATION_STANDARD_NAMES]
    by_units = [name for name, (_, units) in described.items() if catalog_units(units) is not None]
    candidates = by_name or by_units
    if not candidates:
        found = ", ".join(f"{name} (units {units!r})" for name, (_, units) in described.items()) or "none"
        raise InputDataError(
            source=path,
            variable="<precipitation variable>",
            check="precipitation variable found",
            detail=(
                "no gridded variable has precipitation units "
                f"({', '.join(sorted(conventions.KNOWN_UNITS))}) or a precipitation standard_name; "
                f"gridded variables: {found}; name one with --variable"
            ),
        )
    if len(candidates) > 1:
        raise InputDataError(
            source=path,
            variable=", ".join(candidates),
            check="one precipitation variable",
            detail="several variables fit; name one with --variable",
        )
    return candidates[0]


def time_from_filenames(files: list[Path]) -> dict[str, str] | None:
    """``{pattern, format}`` reading every file's time from the longest run of digits in its name
    that parses as a date (14, 12, 10 or 8 digits), or ``None`` when no such run fits all files."""
    for digits, time_format in FILENAME_TIME_FORMATS.items():
        pattern = rf"(?<!\d)(\d{{{digits}}})(?!\d)"
        try:
            for path in files:
                match = re.search(pattern, path.name)
                if match is None:
                    raise ValueError(path.name)
                datetime.strptime(match.group(1), time_format)
        except ValueError:
            continue
        return {"pattern": pattern, "format": time_format}
    return None


def inspect_netcdf(
    files: list[Path], name: str, root: Path, *, variable: str | None = None, crs: str | None = None
) -> dict[str, Any]:
    """A draft entry (a dict in catalog field order) for the CF NetCDF ``files`` under ``root``."""
    first = files[0]
    with open_netcdf(first) as dataset:
        chosen = precipitation_variable(dataset, first, variable)
        data = dataset[chosen]
        declared = data.attrs.get("units")
        units = catalog_units(declared)
        if units is None:
            raise InputDataError(
                source=first,
                variable=chosen,
                check="units known",
                detail=(
                    f"units {declared!r}; a catalog entry takes {', '.join(sorted(conventions.KNOWN_UNITS))}"
                ),
            )
        wkt = file_crs(dataset, data, first, chosen)
        dims = {conventions.DIMENSION_ALIASES.get(str(dim).lower()): str(dim) for dim in data.dims}
        geographic = any(dim.lower() in ("lat", "latitude") for dim in dims.values())
        time_dim = dims.get(conventions.TIME)
        title = str(dataset.attrs.get("title", "")).strip()
        cell_methods = str(data.attrs.get("cell_methods", ""))
    entry: dict[str, Any] = {
        "name": name,
        "description": "",
        "kind": "grid",
        "reader": "cf_netcdf",
        "files": files_pattern(files, root),
        "variable": chosen,
        "units": units,
    }
    times = _times(files, time_dim)
    if times is None:
        from_names = time_from_filenames(files)
        if from_names is None:
            raise InputDataError(
                source=first,
                variable=chosen,
                check="times found",
                detail="no time dimension, valid_time or date-time digits in the file names",
            )
        entry["time_from_filename"] = from_names
        times = pd.DatetimeIndex(
            sorted(
                datetime.strptime(re.search(from_names["pattern"], path.name).group(1), from_names["format"])
                for path in files
            )
        )
    entry.update(regular_time_step(times))
    if units in conventions.ACCUMULATION_UNITS:
        interval = re.search(r"interval:\s*([\d.]+)\s*min", cell_methods)
        minutes = float(interval.group(1)) if interval else entry.get("time_step_minutes")
        if minutes is None:
            raise InputDataError(
                source=first,
                variable=chosen,
                check="accumulation period found",
                detail=(
                    f"units {units!r} are an accumulation; no cell_methods interval "
                    "or time step says its period"
                ),
            )
        entry["accumulation_minutes"] = minutes
    if units in conventions.REFLECTIVITY_UNITS:
        entry["zr_relation"] = dict(MARSHALL_PALMER)
    if crs is not None:
        entry["crs"] = crs
    elif wkt is not None:
        entry["crs"] = crs_text(wkt)
    elif geographic:
        entry["crs"] = "EPSG:4326"
    else:
        raise InputDataError(
            source=first,
            variable=chosen,
            check="CRS present",
            detail="no grid mapping and no latitude/longitude dimensions; pass the CRS with --crs",
        )
    span = f"{times[0]:%Y-%m-%d %H:%M}-{times[-1]:%Y-%m-%d %H:%M} UTC, {len(times)} frame(s)"
    entry["description"] = f"{title or chosen} ({span})"
    return entry


def _times(files: list[Path], time_dim: str | None) -> pd.DatetimeIndex | None:
    """Every file's times from its time coordinate or ``valid_time``, sorted; ``None`` when absent."""
    times: list[pd.Timestamp] = []
    for path in files:
        with open_netcdf(path) as dataset:
            if time_dim is not None and time_dim in dataset.variables:
                times.extend(pd.to_datetime(dataset[time_dim].values))
            elif "valid_time" in dataset.variables:
                times.append(pd.Timestamp(dataset["valid_time"].values))
            else:
                return None
    return pd.DatetimeIndex(sorted(times))


def validate_draft(entry: dict[str, Any], root: Path, source: Path) -> CatalogEntry:
    """``entry`` validated by the schema and opened once from ``root`` (its grid, CRS and frames)."""
    from weatherunc.loading import GridSource

    try:
        validated = CatalogEntry.model_validate(entry)
    except ValidationError as error:
        raise schema_error(source, error) from None
    GridSource.from_catalog(Catalog({validated.name: validated}, data_root=root), validated.name)
    return validated


def write_draft(entry: dict[str, Any], out: Path, *, overwrite: bool = False) -> Path:
    """Write ``entry`` to ``out/NAME.yaml`` with a header asking for review; refuses to replace a
    file unless ``overwrite``."""
    path = Path(out) / f"{entry['name']}.yaml"
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Drafted by `weatherunc catalog new`: review description, time step, units and crs, and add\n"
        "# licence and attribution if the data are not your own.\n"
    )
    path.write_text(
        header + yaml.safe_dump(entry, sort_keys=False, allow_unicode=True, width=1_000_000), encoding="utf-8"
    )
    return path


def draft_entry(
    files: list[Path],
    name: str,
    *,
    data_root: Path | None = None,
    variable: str | None = None,
    crs: str | None = None,
) -> dict[str, Any]:
    """Inspect ``files`` and return a catalog entry that validates and opens, for review;
    ``variable`` and ``crs`` override what the files say.

    ``data_root`` (default ``WEATHERUNC_DATA_DIR``, else the folder of the files) is the root the
    written ``files`` pattern is relative to.
    """
    from weatherunc.catalog import data_root as default_root

    if not files:
        raise ValueError("no files given")
    for path in files:
        if not Path(path).is_file():
            raise InputDataError(source=path, variable="files", check="files exist", detail="no such file")
    files = sorted(Path(path) for path in files)
    root = default_root(data_root) or files[0].resolve().parent
    from weatherunc.readers.odim import is_odim

    inspect = inspect_odim if is_odim(files[0]) else inspect_netcdf
    entry = inspect(files, name, root, variable=variable, crs=crs)
    validate_draft(entry, root, files[0])
    return entry
