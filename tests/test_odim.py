"""The ODIM_H5 reader on small files the tests write with h5py, and ``catalog new`` on them."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyproj
import pytest

from tests.conftest import write_entry
from weatherunc.catalog import Catalog
from weatherunc.errors import InputDataError
from weatherunc.geolocation import crs_of
from weatherunc.loading import open_dataset
from weatherunc.onboarding import draft_entry, write_draft
from weatherunc.onboarding_odim import inspect_odim
from weatherunc.readers.odim import (
    attributes,
    data_groups,
    decode,
    is_odim,
    nominal_time,
    odim_geometry,
    period_minutes,
    text,
)

#: The OPERA composite's projection (Lambert azimuthal equal area on WGS84).
PROJDEF = "+proj=laea +lat_0=55.0 +lon_0=10.0 +x_0=1950000.0 +y_0=-2100000.0 +units=m +ellps=WGS84"
LEFT, BOTTOM, SCALE = 1_900_000.0, -2_200_000.0, 2000.0
#: Stored values: 0 = undetect, 255 = nodata, the rest ``raw * gain + offset``.
RAW = np.array([[0, 100, 255, 120], [80, 0, 90, 255], [110, 130, 0, 70]], dtype=np.uint8)


def write_odim(
    path: Path,
    raw: np.ndarray = RAW,
    *,
    quantity: str = "DBZH",
    gain: float = 0.5,
    offset: float = -32.0,
    time: str = "120000",
    kind: str = "COMP",
    where: bool = True,
) -> Path:
    """A one-dataset ODIM_H5 file: ``/what``, ``/where`` and ``/dataset1/data1`` holding ``raw``."""
    to_geographic = pyproj.Transformer.from_crs(PROJDEF, "EPSG:4326", always_xy=True).transform
    ny, nx = raw.shape
    corners = {"LL": (LEFT, BOTTOM), "UR": (LEFT + SCALE * nx, BOTTOM + SCALE * ny)}
    corners |= {"UL": (LEFT, BOTTOM + SCALE * ny), "LR": (LEFT + SCALE * nx, BOTTOM)}
    with h5py.File(path, "w") as handle:
        handle.attrs["Conventions"] = np.bytes_("ODIM_H5/V2_4")
        what = handle.create_group("what")
        for key, value in {"object": kind, "date": "20210714", "time": time, "source": "ORG:247"}.items():
            what.attrs[key] = np.bytes_(value)
        if where:
            location = handle.create_group("where")
            location.attrs["projdef"] = np.bytes_(PROJDEF)
            location.attrs["xscale"], location.attrs["yscale"] = SCALE, SCALE
            for corner, (x, y) in corners.items():
                location.attrs[f"{corner}_lon"], location.attrs[f"{corner}_lat"] = to_geographic(x, y)
            location.attrs["xsize"], location.attrs["ysize"] = raw.shape[1], raw.shape[0]
        dataset = handle.create_group("dataset1")
        dataset_what = dataset.create_group("what")
        for key, value in {
            "startdate": "20210714",
            "starttime": "114500",
            "enddate": "20210714",
            "endtime": time,
        }.items():
            dataset_what.attrs[key] = np.bytes_(value)
        data = dataset.create_group("data1")
        data.create_dataset("data", data=raw)
        data_what = data.create_group("what")
        data_what.attrs["quantity"] = np.bytes_(quantity)
        data_what.attrs.update({"gain": gain, "offset": offset, "nodata": 255.0, "undetect": 0.0})
    return path


def _catalog(tmp_path: Path, **overrides: object) -> Catalog:
    entry = {"reader": "odim_hdf5", "files": "radar/*.h5", "variable": "DBZH", "units": "dBZ", "crs": None}
    entry["zr_relation"] = {"a": 200.0, "b": 1.6, "reference": "Marshall and Palmer (1948)"}
    entry.update(overrides)
    write_entry(tmp_path / "catalog", name="odim", **entry)
    return Catalog.load([tmp_path / "catalog"], data_root_dir=tmp_path)


def test_reflectivity_becomes_rate_with_nodata_nan_and_undetect_dry(tmp_path: Path) -> None:
    (tmp_path / "radar").mkdir()
    write_odim(tmp_path / "radar" / "a.h5")
    write_odim(tmp_path / "radar" / "b.h5", time="121500")
    dataset = open_dataset("odim", catalog=_catalog(tmp_path))
    rate = dataset.precipitation.isel(time=0).values
    assert np.isnan(rate[RAW == 255]).all() and (rate[RAW == 0] == 0.0).all()
    dbz = RAW.astype(float) * 0.5 - 32.0
    expected = (10.0 ** (dbz / 10.0) / 200.0) ** (1.0 / 1.6)
    observed = (RAW != 0) & (RAW != 255)
    np.testing.assert_allclose(rate[observed], expected[observed], rtol=1e-5)
    assert crs_of(dataset).equals(pyproj.CRS.from_user_input(PROJDEF))
    np.testing.assert_allclose(dataset.x.values, LEFT + SCALE * (np.arange(4) + 0.5), atol=1e-3)
    np.testing.assert_allclose(dataset.y.values, BOTTOM + SCALE * (2.5 - np.arange(3)), atol=1e-3)
    assert [str(time)[:19] for time in dataset.time.values] == ["2021-07-14T12:00:00", "2021-07-14T12:15:00"]


def test_rates_and_accumulations_are_read_directly(tmp_path: Path) -> None:
    (tmp_path / "radar").mkdir()
    write_odim(tmp_path / "radar" / "a.h5", quantity="ACRR", gain=0.1, offset=0.0)
    catalog = _catalog(tmp_path, variable="ACRR", units="mm", accumulation_minutes=15, zr_relation=None)
    rate = open_dataset("odim", catalog=catalog).precipitation.isel(time=0).values
    observed = (RAW != 0) & (RAW != 255)
    np.testing.assert_allclose(rate[observed], RAW[observed] * 0.1 * 4.0, rtol=1e-5)
    assert (rate[RAW == 0] == 0.0).all()
    write_odim(tmp_path / "radar" / "a.h5", quantity="RATE", gain=0.01, offset=0.0)
    catalog = _catalog(tmp_path, variable="RATE", units="mm h-1", zr_relation=None)
    rate = open_dataset("odim", catalog=catalog).precipitation.isel(time=0).values
    np.testing.assert_allclose(rate[observed], RAW[observed] * 0.01, rtol=1e-5)


@pytest.mark.parametrize(
    ("options", "variable", "check"),
    [
        ({}, "RATE", "variable present"),
        ({"kind": "PVOL"}, "DBZH", "Cartesian product"),
        ({"where": False}, "DBZH", "grid described"),
    ],
)
def test_unreadable_products_name_the_failed_check(
    tmp_path: Path, options: dict, variable: str, check: str
) -> None:
    (tmp_path / "radar").mkdir()
    write_odim(tmp_path / "radar" / "a.h5", **options)
    units = "mm h-1" if variable == "RATE" else "dBZ"
    catalog = _catalog(tmp_path, variable=variable, units=units)
    with pytest.raises(InputDataError, match=check):
        open_dataset("odim", catalog=catalog)


def test_a_file_that_is_not_odim_is_refused(tmp_path: Path) -> None:
    (tmp_path / "radar").mkdir()
    with h5py.File(tmp_path / "radar" / "a.h5", "w") as handle:
        handle.attrs["Conventions"] = np.bytes_("CF-1.8")
    assert not is_odim(tmp_path / "radar" / "a.h5") and not is_odim(tmp_path / "missing.h5")
    with pytest.raises(InputDataError, match="ODIM_H5 file"):
        open_dataset("odim", catalog=_catalog(tmp_path))


def test_helpers_decode_attributes_and_times(tmp_path: Path) -> None:
    path = write_odim(tmp_path / "a.h5", time="120000")
    assert is_odim(path) and text(np.bytes_("COMP\x00")) == "COMP" and text(np.array([b"x"])) == "x"
    with h5py.File(path, "r") as handle:
        assert nominal_time(handle).isoformat() == "2021-07-14T12:00:00"
        assert attributes(handle, "nothing") == {} and text(attributes(handle, "what")["object"]) == "COMP"
        (group, what), *rest = data_groups(handle)
        assert group == "dataset1/data1" and not rest and period_minutes(what) == 15.0
        x, y, projdef = odim_geometry(handle, RAW.shape, path)
    assert projdef == PROJDEF and y[0] > y[-1]
    assert period_minutes({}) is None
    decoded = decode(RAW, {"gain": 2.0, "offset": 1.0, "nodata": 255, "undetect": 0}, "RATE")
    assert decoded[0, 1] == 201.0 and decoded[0, 0] == 0.0 and np.isnan(decoded[0, 2])
    assert decode(RAW, {"undetect": 0}, "DBZH")[0, 0] == -np.inf


def test_catalog_new_drafts_an_odim_entry_that_loads(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "opera").mkdir(parents=True)
    files = [
        write_odim(root / "opera" / f"T_PAAH21_C_EUOC_20210714{time}.h5", time=time)
        for time in ("120000", "121500")
    ]
    entry = draft_entry(files, "opera_dbzh", data_root=root)
    assert entry["reader"] == "odim_hdf5" and entry["variable"] == "DBZH" and entry["units"] == "dBZ"
    assert entry["zr_relation"]["a"] == 200.0 and entry["time_step_minutes"] == 15.0
    assert entry["crs"] == PROJDEF
    write_draft(entry, tmp_path / "catalog")
    dataset = open_dataset("opera_dbzh", catalog_dirs=[tmp_path / "catalog"], data_dir=root)
    assert dataset.precipitation.shape == (2, 3, 4)
    write_odim(root / "opera" / "acrr.h5", quantity="ACRR")
    assert inspect_odim([root / "opera" / "acrr.h5"], "acrr", root)["accumulation_minutes"] == 15.0
    with pytest.raises(InputDataError, match="precipitation variable found"):
        inspect_odim(files, "x", root, variable="VRADH")
