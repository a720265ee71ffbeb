"""Catalogue cases for gridded input: file formats (truncated, empty, corrupt), values, units,
coordinates, dimensions and times, each ingested over an earlier store of good data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from tests.bad_inputs.runner import Case, Scenario, named
from tests.conftest import write_entry
from weatherunc.catalog import Catalog
from weatherunc.errors import InputDataError
from weatherunc.pipelines.ingest import ingest

SHAPE = (3, 8, 10)
#: Time pattern of one-frame files named ``<anything>_YYYYmmddHHMM.nc``.
TIME_PATTERN = {"pattern": r"_(\d{12})\.nc$", "format": "%Y%m%d%H%M"}


def good_values(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """Plausible rates [mm/h] with dry pixels: gamma-distributed, below 0.3 set to 0."""
    values = np.random.default_rng(7).gamma(0.5, 2.0, size=shape)
    values[values < 0.3] = 0.0
    return values


def write_grid(
    path: Path,
    values: np.ndarray | None = None,
    *,
    units: str | None = "mm h-1",
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    x_units: str = "m",
    y_units: str = "m",
    times: list[str] | None = None,
    dims: tuple[str, ...] = ("time", "y", "x"),
    coordinates: bool = True,
    extra_attrs: dict[str, Any] | None = None,
    encoding: dict[str, Any] | None = None,
    file_format: str | None = None,
    unlimited: bool = False,
) -> Path:
    """A CF NetCDF file ``precipitation(dims)`` (NetCDF-4 unless ``file_format`` says otherwise)."""
    values = good_values() if values is None else values
    shape = dict(zip(dims, values.shape))
    ny, nx = values.shape[-2], values.shape[-1]
    attrs = {} if units is None else {"units": units}
    attrs.update(extra_attrs or {})
    coords: dict[str, Any] = {}
    if coordinates:
        if "time" in dims:
            coords["time"] = pd.to_datetime(
                times or [str(t) for t in pd.date_range("2020-01-01", periods=shape["time"], freq="5min")]
            )
        coords[dims[-2]] = (dims[-2], 1000.0 * np.arange(ny) if y is None else y, {"units": y_units})
        coords[dims[-1]] = (dims[-1], 1000.0 * np.arange(nx) if x is None else x, {"units": x_units})
    dataset = xr.Dataset({"precipitation": (dims, values.astype(np.float32), attrs)}, coords=coords)
    dataset.to_netcdf(
        path,
        format=file_format,
        engine="netcdf4" if file_format else None,
        encoding={"precipitation": encoding} if encoding else None,
        unlimited_dims=["time"] if unlimited else None,
    )
    return path


def _catalog(work: Path) -> Catalog:
    return Catalog.load([work / "catalog"], data_root_dir=work / "data")


def _ingest_action(work: Path) -> Callable[[], object]:
    """Ingest entry ``synthetic`` into ``work/out.zarr``, replacing an earlier store."""
    return lambda: ingest(
        "synthetic",
        work / "out.zarr",
        catalog=_catalog(work),
        overwrite=True,
        scheduler="synchronous",
        progress=False,
    )


def grid_case(
    case_id: str,
    variable: str,
    check: str,
    bad: Callable[[Path], object] | None,
    *,
    entry: dict[str, Any] | None = None,
    files: str = "synthetic.nc",
    earlier: bool = True,
) -> Case:
    """A case on entry ``synthetic``: a good file is ingested (the earlier store), then
    ``bad(path)`` rewrites or damages it (and ``entry`` changes the catalog entry), and the
    re-ingest must fail with ``check`` on ``variable``. ``check=""`` makes a valid control,
    which is ingested into a fresh store."""

    def build(work: Path, shared: Path | None) -> Scenario:
        root = work / "data"
        root.mkdir()
        path = root / "synthetic.nc"
        write_entry(work / "catalog", files=files)
        if earlier:
            write_grid(path)
            ingest(
                "synthetic",
                work / "out.zarr",
                catalog=_catalog(work),
                scheduler="synchronous",
                progress=False,
            )
        if bad is not None:
            bad(path)
        if entry:
            write_entry(work / "catalog", files=files, **entry)
        return Scenario(action=_ingest_action(work), earlier=work / "out.zarr" if earlier else None)

    if not check:
        return Case(case_id, "grid file", build, error=None)
    return Case(case_id, "grid file", build, InputDataError, named(variable, check))


def _values(change: Callable[[np.ndarray], object]) -> Callable[[Path], object]:
    """Rewrite the file with good values changed in place by ``change``."""

    def write(path: Path) -> None:
        values = good_values()
        change(values)
        write_grid(path, values)

    return write


def _setter(index: tuple[int, ...], value: float) -> Callable[[np.ndarray], object]:
    return lambda values: values.__setitem__(index, value)


def cut(keep: Callable[[int], int]) -> Callable[[Path], object]:
    """Truncate the file to ``keep(length)`` bytes."""
    return lambda path: path.write_bytes(path.read_bytes()[: keep(path.stat().st_size)])


def _classic(file_format: str, *, unlimited: bool = False, cut: int = 400) -> Callable[[Path], object]:
    """Rewrite the file as classic NetCDF and cut ``cut`` bytes from its end (0: intact)."""

    def write(path: Path) -> None:
        write_grid(path, file_format=file_format, unlimited=unlimited)
        if cut:
            path.write_bytes(path.read_bytes()[:-cut])

    return write


def _malformed_classic_header(path: Path) -> None:
    """A classic file whose dimension list tag is replaced by an attribute tag."""
    write_grid(path, file_format="NETCDF3_64BIT")
    data = bytearray(path.read_bytes())
    data[8:12] = (0x0C).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def _one_frame_files(names: list[str]) -> Callable[[Path], object]:
    """Replace the file by 2-D one-frame files named ``names`` (timed by their names)."""

    def write(path: Path) -> None:
        for old in path.parent.glob("*.nc"):
            old.unlink()
        for number, name in enumerate(names):
            write_grid(path.parent / name, good_values((8, 10)) * (number + 1), dims=("y", "x"))

    return write


P = "precipitation"
_SEQUENCE = 1000.0 * np.arange(10)

GRID_CASES: list[Case] = [
    # Valid controls: NetCDF-4, the three classic formats, a declared fill value, one-frame files.
    grid_case("grid-valid-netcdf4", P, "", lambda path: write_grid(path), earlier=False),
    grid_case("grid-valid-cdf1", P, "", _classic("NETCDF3_CLASSIC", cut=0), earlier=False),
    grid_case(
        "grid-valid-cdf2-record", P, "", _classic("NETCDF3_64BIT", unlimited=True, cut=0), earlier=False
    ),
    grid_case("grid-valid-cdf5", P, "", _classic("NETCDF3_64BIT_DATA", cut=0), earlier=False),
    grid_case(
        "grid-valid-declared-fill",
        P,
        "",
        lambda path: write_grid(
            path, np.where(good_values() > 3, np.nan, good_values()), encoding={"_FillValue": -9999.0}
        ),
        earlier=False,
    ),
    grid_case(
        "grid-valid-one-frame-files",
        P,
        "",
        _one_frame_files(["a_202001010000.nc", "a_202001010005.nc"]),
        entry={"time_from_filename": TIME_PATTERN},
        files="*.nc",
        earlier=False,
    ),
    # Truncated, empty and corrupt files.
    grid_case("netcdf4-zero-bytes", P, "readable file", cut(lambda length: 0)),
    grid_case("netcdf4-truncated-half", P, "readable file", cut(lambda length: length // 2)),
    grid_case("netcdf4-truncated-tail", P, "readable file", cut(lambda length: length - 200)),
    grid_case("netcdf4-header-only", P, "readable file", cut(lambda length: 512)),
    grid_case(
        "netcdf4-garbage-after-signature",
        P,
        "readable file",
        lambda path: path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 20),
    ),
    grid_case("cdf1-truncated", P, "file complete", _classic("NETCDF3_CLASSIC")),
    grid_case("cdf2-truncated", P, "file complete", _classic("NETCDF3_64BIT")),
    grid_case("cdf5-truncated", P, "file complete", _classic("NETCDF3_64BIT_DATA")),
    grid_case("cdf2-record-truncated", P, "file complete", _classic("NETCDF3_64BIT", unlimited=True, cut=8)),
    grid_case(
        "cdf2-header-truncated",
        "<header>",
        "file complete",
        lambda path: (_classic("NETCDF3_64BIT", cut=0)(path), cut(lambda length: 40)(path)),
    ),
    grid_case("cdf2-header-malformed", "<header>", "readable file", _malformed_classic_header),
    # Values.
    grid_case("rate-negative", P, "non-negative rate", _values(_setter((1, 2, 3), -0.5))),
    grid_case("rate-above-500", P, "plausible rate", _values(_setter((0, 1, 1), 501.0))),
    grid_case("rate-times-1e6", P, "plausible rate", _values(lambda values: values.__imul__(1e6))),
    grid_case(
        "rate-dbz-in-mm-per-hour", P, "non-negative rate", _values(lambda values: values.__isub__(32.0))
    ),
    grid_case("rate-all-nan-frame", P, "not all NaN", _values(_setter((1,), np.nan))),
    grid_case("rate-positive-infinity", P, "finite values", _values(_setter((2, 0, 0), np.inf))),
    grid_case("rate-negative-infinity", P, "finite values", _values(_setter((0, 4, 4), -np.inf))),
    *[
        grid_case(
            f"undeclared-fill-{fill:g}", P, "no undeclared fill values", _values(_setter((1, 3, 3), fill))
        )
        for fill in (-9999.0, -999.0, -32768.0, 65535.0, 9.969209968386869e36)
    ],
    grid_case(
        "undeclared-fill-65535-daily-accumulation",
        P,
        "no undeclared fill values",
        lambda path: write_grid(path, np.where(good_values() > 4, 65535.0, good_values()), units="0.1 mm"),
        entry={"units": "0.1 mm", "accumulation_minutes": 1440},
    ),
    grid_case(
        "undeclared-fill-32768-reflectivity",
        P,
        "no undeclared fill values",
        lambda path: write_grid(
            path, np.where(good_values() > 4, -32768.0, 10.0 + good_values()), units="dBZ"
        ),
        entry={
            "units": "dBZ",
            "zr_relation": {"a": 200.0, "b": 1.6, "reference": "Marshall-Palmer"},
            "no_echo_dbz": -32.0,
        },
    ),
    # Units.
    grid_case("units-missing", P, "units present", lambda path: write_grid(path, units=None)),
    grid_case("units-blank", P, "units present", lambda path: write_grid(path, units="  ")),
    grid_case(
        "units-accumulation-for-rate", P, "units match catalog", lambda path: write_grid(path, units="mm")
    ),
    grid_case(
        "units-reflectivity-for-rate", P, "units match catalog", lambda path: write_grid(path, units="dBZ")
    ),
    grid_case("units-inches", P, "units match catalog", lambda path: write_grid(path, units="in/h")),
    grid_case(
        "units-rate-for-accumulation",
        P,
        "units match catalog",
        None,
        entry={"units": "mm", "accumulation_minutes": 5},
    ),
    # Coordinates and dimensions.
    grid_case(
        "coordinate-x-nan",
        "x",
        "finite coordinates",
        lambda path: write_grid(path, x=np.r_[_SEQUENCE[:9], np.nan]),
    ),
    grid_case(
        "coordinate-y-infinite",
        "y",
        "finite coordinates",
        lambda path: write_grid(path, y=np.r_[np.inf, _SEQUENCE[1:8]]),
    ),
    grid_case(
        "coordinate-x-duplicated",
        "x",
        "monotonic coordinates",
        lambda path: write_grid(path, x=np.r_[_SEQUENCE[:5], _SEQUENCE[4:9]]),
    ),
    grid_case(
        "coordinate-y-unsorted",
        "y",
        "monotonic coordinates",
        lambda path: write_grid(path, y=_SEQUENCE[[0, 1, 2, 3, 5, 4, 6, 7]]),
    ),
    grid_case(
        "coordinate-latitude-95",
        "y",
        "latitude within ±90",
        lambda path: write_grid(
            path,
            y=np.linspace(88.0, 95.0, 8),
            x=np.linspace(0, 9, 10),
            y_units="degrees_north",
            x_units="degrees_east",
        ),
        entry={"crs": "EPSG:4326"},
    ),
    grid_case(
        "coordinate-longitude-400",
        "x",
        "longitude within ±360",
        lambda path: write_grid(
            path,
            y=np.linspace(40.0, 47.0, 8),
            x=np.linspace(395, 404, 10),
            y_units="degrees_north",
            x_units="degrees_east",
        ),
        entry={"crs": "EPSG:4326"},
    ),
    grid_case(
        "coordinate-units-unknown", "x", "coordinate units", lambda path: write_grid(path, x_units="furlong")
    ),
    grid_case(
        "coordinates-missing", P, "coordinates present", lambda path: write_grid(path, coordinates=False)
    ),
    grid_case(
        "dimension-unknown", P, "known dimensions", lambda path: write_grid(path, dims=("time", "level", "x"))
    ),
    grid_case(
        "grid-mapping-dangling",
        P,
        "CRS present",
        lambda path: write_grid(path, extra_attrs={"grid_mapping": "nowhere"}),
    ),
    grid_case("variable-missing", "rain", "variable present", None, entry={"variable": "rain"}),
    # Times.
    grid_case(
        "times-duplicated",
        "time",
        "unique times",
        lambda path: write_grid(path, times=["2020-01-01T00:00", "2020-01-01T00:05", "2020-01-01T00:05"]),
    ),
    grid_case(
        "times-unsorted",
        "time",
        "sorted times",
        lambda path: write_grid(path, times=["2020-01-01T00:00", "2020-01-01T00:10", "2020-01-01T00:05"]),
    ),
    grid_case(
        "times-duplicated-across-files",
        "time",
        "unique times",
        _one_frame_files(["a_202001010000.nc", "b_202001010000.nc"]),
        entry={"time_from_filename": TIME_PATTERN},
        files="*.nc",
    ),
    grid_case(
        "times-file-name-without-time",
        P,
        "readable file",
        _one_frame_files(["a_202001010000.nc", "a_latest.nc"]),
        entry={"time_from_filename": {"pattern": r"_(\d{12}|latest)\.nc$", "format": "%Y%m%d%H%M"}},
        files="*.nc",
    ),
]
