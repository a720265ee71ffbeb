"""The prediction stores a service serves: found from the paths it was started with, complete only.

A path is either a zarr store or a folder searched for stores (``RUN/prediction.zarr`` of a batch
job, or any ``*.zarr``). A store is served only when :func:`weatherunc.plotting.files.open_prediction_store`
accepts it: marked complete and holding the prediction variables. Staging folders
(``*.zarr.partial``, see :mod:`weatherunc.pipelines.job_store`) are never served. A store is named by its run
folder (``knmi_anp`` for ``outputs/knmi_anp/prediction.zarr``) or its file name without ``.zarr``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import xarray as xr

from weatherunc import conventions
from weatherunc.geolocation import crs_of
from weatherunc.plotting.files import open_prediction_store
from weatherunc.service.settings import finite_or_none

LOGGER = logging.getLogger("weatherunc.service")
#: The name of a job's prediction store inside its run folder.
JOB_STORE_NAME = "prediction.zarr"
#: The root metadata file of a zarr v3 store.
ROOT_METADATA = "zarr.json"
#: Suffixes of a store that is still being written (never served).
STAGING_SUFFIXES = (".partial", ".partial.creating", ".replaced")
#: Characters allowed in a store name (it is a URL path segment).
UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ServedStore:
    """One complete prediction store: its name in URLs, its path, its CRS and the store opened twice,
    lazily: ``dataset`` with Dask chunks (for xpublish and its zarr endpoint) and ``reader`` without
    Dask, whose indexing reads only the chunks it touches (for point, area and map requests). Its
    times ``[time]`` and pixel-centre axes ``x`` ``[x]`` and ``y`` ``[y]`` are kept as arrays;
    ``version`` (:func:`store_version`) tells whether the store on disk is still the one opened;
    ``memo`` keeps what queries derive from the store's metadata, computed once per opening."""

    name: str
    path: Path
    dataset: xr.Dataset
    reader: xr.Dataset
    crs: pyproj.CRS
    times: np.ndarray
    x: np.ndarray
    y: np.ndarray
    version: str = ""
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    transformers: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    def memoised(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, its kept value after."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def transformer_from(self, crs: pyproj.CRS) -> pyproj.Transformer:
        """A transformer from ``crs`` (x/longitude first) to the store's CRS, made once per thread
        (pyproj transformers are not shared between threads)."""
        per_thread = self.transformers.__dict__
        if crs.srs not in per_thread:
            per_thread[crs.srs] = pyproj.Transformer.from_crs(crs, self.crs, always_xy=True)
        return per_thread[crs.srs]


def _is_zarr_store(path: Path) -> bool:
    return path.is_dir() and ((path / ROOT_METADATA).exists() or (path / ".zgroup").exists())


def _is_observation_store(path: Path) -> bool:
    """Whether ``path`` holds a job's ingested observations (``precipitation``), not a prediction."""
    observed, predicted = path / conventions.PRECIPITATION, path / conventions.PRECIPITATION_MEAN
    return observed.is_dir() and not predicted.is_dir()


def _is_staging(path: Path) -> bool:
    return any(path.name.endswith(suffix) for suffix in STAGING_SUFFIXES)


def _candidates(path: Path) -> list[Path]:
    """The stores a command-line path names: itself, or the stores in the folder (not staging ones)."""
    if _is_staging(path):
        return []
    if path.suffix == ".zarr" or _is_zarr_store(path):
        return [path]
    if not path.is_dir():
        return []
    found = [
        store
        for store in sorted(path.rglob("*.zarr"))
        if not any(_is_staging(parent) for parent in (store, *store.parents))
        and not any(parent.suffix == ".zarr" for parent in store.parents)
    ]
    return found


def store_name(path: Path) -> str:
    """A store's name in URLs: the run folder of a job store, else the file name without ``.zarr``."""
    stem = path.parent.name if path.name == JOB_STORE_NAME else path.name.removesuffix(".zarr")
    return UNSAFE_NAME_CHARACTERS.sub("_", stem).strip("_") or "store"


def store_version(path: Path) -> str:
    """A token that changes whenever the store at ``path`` is written anew: the identity and
    modification time of its root metadata (a job replaces a store by renaming a new one into
    place, and marks it complete by rewriting that file); ``""`` when it has none."""
    try:
        status = (path / ROOT_METADATA).stat()
    except OSError:
        return ""
    return f"{status.st_ino}-{status.st_mtime_ns}-{status.st_size}"


def open_served_store(path: Path, name: str) -> ServedStore:
    """Open a complete prediction store lazily; ``ValueError`` / ``FileNotFoundError`` otherwise.

    The grid mapping ``crs`` becomes a coordinate, so that every variable served keeps it.
    """
    if _is_staging(path):
        raise ValueError(f"{path} is a store still being written (a staging folder); not served")
    version = store_version(path)
    dataset = open_prediction_store(path)
    if conventions.CRS_VARIABLE not in dataset.variables:
        raise ValueError(f"prediction store {path} has no grid mapping variable {conventions.CRS_VARIABLE!r}")
    for dim in (conventions.TIME, conventions.Y, conventions.X):
        if dim not in dataset.dims:
            raise ValueError(
                f"prediction store {path} has no {dim!r} dimension; only gridded stores are served"
            )
    dataset = dataset.set_coords(conventions.CRS_VARIABLE)
    reader = xr.open_zarr(path, consolidated=False, chunks=None).set_coords(conventions.CRS_VARIABLE)
    edges = [name for name in (conventions.BIN_LOWER, conventions.BIN_UPPER) if name in dataset.coords]
    edge_values = {name: reader[name].load() for name in edges}  # small, read by every query
    dataset, reader = dataset.assign_coords(edge_values), reader.assign_coords(edge_values)
    return ServedStore(
        name=name,
        path=path.resolve(),
        dataset=dataset,
        reader=reader,
        crs=crs_of(dataset),
        times=np.atleast_1d(reader[conventions.TIME].values),
        x=np.asarray(reader[conventions.X].values),
        y=np.asarray(reader[conventions.Y].values),
        version=version,
    )


def discover_stores(paths: Iterable[Path | str]) -> dict[str, ServedStore]:
    """The complete prediction stores that ``paths`` name, by name (``_2``, ``_3``... on clashes).

    A store named directly that is incomplete raises ``ValueError``; incomplete stores found by
    searching a folder are skipped with a warning in the log, a job's observation stores quietly.
    Raises ``ValueError`` when no store is found at all.
    """
    stores: dict[str, ServedStore] = {}
    for given in paths:
        given = Path(given)
        if not given.exists():
            raise FileNotFoundError(f"{given} does not exist")
        direct = given.suffix == ".zarr" or _is_zarr_store(given) or _is_staging(given)
        if direct and _is_staging(given):
            raise ValueError(f"{given} is a store still being written (a staging folder); not served")
        for path in _candidates(given):
            if not direct and _is_observation_store(path):
                LOGGER.info("%s: the observations of a job, not a prediction; not served", path)
                continue
            name = store_name(path)
            unique, number = name, 2
            while unique in stores:
                unique, number = f"{name}_{number}", number + 1
            try:
                stores[unique] = open_served_store(path, unique)
            except (OSError, ValueError, KeyError) as error:
                if direct:
                    raise ValueError(f"{path}: not served: {error}") from error
                LOGGER.warning("%s: not served: %s", path, error)
    if not stores:
        raise ValueError("no complete prediction store found in " + ", ".join(str(path) for path in paths))
    return stores


def _parsed(text: Any) -> Any:
    """A JSON attribute parsed, or the attribute itself when it is not JSON."""
    if not isinstance(text, str):
        return text.tolist() if isinstance(text, np.ndarray | np.generic) else text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _iso(times: np.ndarray) -> list[str]:
    return [str(np.datetime_as_string(time, unit="s")) + "Z" for time in times.astype("datetime64[s]")]


def geographic_bounds(store: ServedStore) -> list[float]:
    """``[west, south, east, north]`` of the grid's pixel centres in degrees (EPSG:4326)."""
    x, y = store.dataset[conventions.X].values, store.dataset[conventions.Y].values
    transformer = pyproj.Transformer.from_crs(store.crs, "EPSG:4326", always_xy=True)
    edge_x = np.concatenate([x, x, np.full(y.size, x[0]), np.full(y.size, x[-1])])
    edge_y = np.concatenate([np.full(x.size, y[0]), np.full(x.size, y[-1]), y, y])
    longitude, latitude = transformer.transform(edge_x, edge_y)
    return [
        float(np.min(longitude)),
        float(np.min(latitude)),
        float(np.max(longitude)),
        float(np.max(latitude)),
    ]


def store_metadata(store: ServedStore) -> dict[str, Any]:
    """What ``/datasets/{name}/metadata`` returns: times, grid, variables, model, calibration, provenance."""
    dataset = store.dataset
    x, y = dataset[conventions.X].values, dataset[conventions.Y].values
    variables = {
        str(name): {
            "dims": list(variable.dims),
            **{
                key: str(variable.attrs[key])
                for key in ("units", "standard_name", "long_name", "flag_meanings")
                if key in variable.attrs
            },
        }
        for name, variable in dataset.data_vars.items()
    }
    extra_axes = {
        axis: [float(value) for value in dataset[axis].values]
        for axis in (conventions.QUANTILE, conventions.THRESHOLD)
        if axis in dataset.coords
    }
    if conventions.BIN_LOWER in dataset.coords:
        extra_axes["bin_lower"] = [finite_or_none(value) for value in dataset[conventions.BIN_LOWER].values]
        extra_axes["bin_upper"] = [finite_or_none(value) for value in dataset[conventions.BIN_UPPER].values]
    attributes = dataset.attrs
    return {
        "name": store.name,
        "times": _iso(store.times),
        "grid": {
            "shape": {conventions.Y: int(y.size), conventions.X: int(x.size)},
            "x": {
                "first": float(x[0]),
                "last": float(x[-1]),
                "units": dataset[conventions.X].attrs.get("units"),
            },
            "y": {
                "first": float(y[0]),
                "last": float(y[-1]),
                "units": dataset[conventions.Y].attrs.get("units"),
            },
            "crs_wkt": store.crs.to_wkt(),
            "crs_name": store.crs.name,
            "bounds_lon_lat": geographic_bounds(store),
        },
        "variables": variables,
        "axes": extra_axes,
        "model": attributes.get("model"),
        "calibration": _parsed(attributes.get("calibration")),
        "provenance": _parsed(attributes.get("provenance")),
        "job_config": _parsed(attributes.get("job_config")),
        "source": attributes.get("source"),
        "attribution": attributes.get("attribution"),
    }
