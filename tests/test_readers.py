"""Reader registry, grid geometry, CRS helpers, summaries and store helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyproj
import pytest
import xarray as xr

from tests.conftest import write_entry
from weatherunc.catalog import Catalog
from weatherunc.errors import InputDataError
from weatherunc.fingerprints import fingerprint
from weatherunc.geolocation import crs_of, grid_mapping, latitude_longitude
from weatherunc.readers import GRID_READERS, STATION_READERS, get_reader
from weatherunc.readers.base import centres
from weatherunc.store import frame_encoding
from weatherunc.summary import summarise


def test_registry_lists_valid_names_on_error() -> None:
    assert get_reader("knmi_hdf5") is GRID_READERS["knmi_hdf5"]
    assert get_reader("station_csv") is STATION_READERS["station_csv"]
    with pytest.raises(ValueError, match="valid readers: cf_netcdf, fmi_pgm"):
        get_reader("teletype")


#: Readers without shared data, tested on files their tests write (tests/test_odim.py).
TESTED_ON_WRITTEN_FILES = {"odim_hdf5"}


def test_every_registered_reader_is_used_by_the_catalog() -> None:
    used = {entry.reader for entry in Catalog.load().entries.values()}
    assert used | TESTED_ON_WRITTEN_FILES == set(GRID_READERS) | set(STATION_READERS)


def _station_catalog(tmp_path: Path, rows: str) -> Catalog:
    """A catalog with one station set ``stations.csv`` (columns ID, x, y, rainfall, altitude_m)."""
    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "stations.csv").write_text("ID,x,y,rainfall,altitude_m\n" + rows)
    write_entry(
        tmp_path / "catalog",
        name="stations",
        kind="stations",
        reader="station_csv",
        files="stations.csv",
        variable="rainfall",
        time_step_minutes=None,
    )
    return Catalog.load([tmp_path / "catalog"], data_root_dir=data_root)


def test_station_csv_reads_a_good_file(tmp_path: Path) -> None:
    from weatherunc.loading import open_dataset

    catalog = _station_catalog(tmp_path, "1,0,0,1.5,300\n2,1000,0,,350\n3,0,2000,0,400\n")
    stations = open_dataset("stations", catalog=catalog).compute()
    np.testing.assert_array_equal(
        stations.precipitation.values, np.array([1.5, np.nan, 0.0], dtype=np.float32)
    )
    np.testing.assert_array_equal(stations.altitude_m.values, [300.0, 350.0, 400.0])


@pytest.mark.parametrize(
    ("rows", "column", "check", "detail"),
    [
        pytest.param(
            "1,0,0,1.5,300\n2,1000,north,2.0,350\n",
            "y",
            "numeric values",
            "data row 2 (ID 2) holds 'north'",
            id="text-coordinate",
        ),
        pytest.param(
            "1,0,0,1.5,300\n2,1000,0,heavy,350\n",
            "rainfall",
            "numeric values",
            "data row 2 (ID 2) holds 'heavy'",
            id="text-rate",
        ),
        pytest.param(
            "1,0,0,1.5,300\n2,1000,0,2.0,high\n",
            "altitude_m",
            "numeric values",
            "data row 2 (ID 2) holds 'high'",
            id="text-covariate",
        ),
        pytest.param(
            "1,0,0,1.5,300\n2,1000,0,2.0,\n",
            "altitude_m",
            "finite covariates",
            "data row 2 (ID 2) holds nan",
            id="empty-covariate",
        ),
        pytest.param(
            "1,0,0,1.5,inf\n2,1000,0,2.0,350\n",
            "altitude_m",
            "finite covariates",
            "data row 1 (ID 1) holds inf",
            id="infinite-covariate",
        ),
    ],
)
def test_station_csv_names_file_column_and_check_of_a_bad_value(
    tmp_path: Path, rows: str, column: str, check: str, detail: str
) -> None:
    from weatherunc.loading import open_dataset

    catalog = _station_catalog(tmp_path, rows)
    with pytest.raises(InputDataError) as raised:
        open_dataset("stations", catalog=catalog)
    assert raised.value.source == str(tmp_path / "data" / "stations.csv")
    assert (raised.value.variable, raised.value.check) == (column, check)
    assert detail in raised.value.detail


def test_centres() -> None:
    np.testing.assert_allclose(centres(0.0, 1000.0, 3), [500.0, 1500.0, 2500.0])
    np.testing.assert_allclose(centres(10.0, -2.0, 2), [9.0, 7.0])


def test_knmi_geometry_in_metres(data_dir: Path) -> None:
    catalog = Catalog.load(data_root_dir=data_dir)
    entry = catalog.get("knmi_20100826")
    path = catalog.resolve_files(entry)[0]
    geometry = GRID_READERS["knmi_hdf5"].geometry(path, entry)
    assert geometry.shape == (765, 700)
    assert geometry.x[0] == 500.0 and geometry.y[0] == -3650500.0, (
        "pysteps' km corners, as metres, upper row first"
    )
    assert geometry.units == "mm"


def test_grid_mapping_round_trip() -> None:
    crs = pyproj.CRS.from_epsg(21781)
    dataset = xr.Dataset({"crs": grid_mapping(crs)})
    assert dataset["crs"].attrs["grid_mapping_name"] == "oblique_mercator"
    assert crs_of(dataset).equals(crs)


def test_latitude_longitude() -> None:
    geographic = pyproj.CRS.from_epsg(4326)
    latitude, longitude = latitude_longitude(
        np.array([10.0, 11.0, 12.0]), np.array([50.0, 49.0]), geographic, chunk=2
    )
    np.testing.assert_allclose(latitude.compute(), [[50, 50, 50], [49, 49, 49]])
    np.testing.assert_allclose(longitude.compute(), [[10, 11, 12]] * 2)
    # Swiss LV03: the old observatory of Bern is the projection's origin (600000, 200000).
    latitude, longitude = latitude_longitude(
        np.array([600000.0]), np.array([200000.0]), pyproj.CRS.from_epsg(21781)
    )
    assert float(latitude[0, 0]) == pytest.approx(46.9510, abs=0.002)
    assert float(longitude[0, 0]) == pytest.approx(7.4386, abs=0.002)


def test_summarise() -> None:
    values = np.array([[[0.0, 0.05], [2.0, np.nan]]])
    dataset = xr.Dataset(
        {
            "precipitation": (("time", "y", "x"), values, {"units": "mm h-1"}),
            "crs": grid_mapping(pyproj.CRS.from_epsg(4326)),
        },
        coords={"time": [np.datetime64("2020-01-01")], "y": [1.0, 0.0], "x": [0.0, 1.0]},
    )
    summary = summarise(dataset)
    assert summary["observed_fraction"] == 0.75
    assert summary["wet_fraction"] == pytest.approx(1 / 3)
    assert summary["max_rate_mm_per_hour"] == 2.0
    assert summary["crs"] == "WGS 84"


def test_fingerprint_is_order_independent_and_content_sensitive() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_frame_encoding_splits_large_frames() -> None:
    dataset = xr.Dataset({"precipitation": (("time", "y", "x"), np.zeros((2, 3000, 10), dtype=np.float32))})
    assert frame_encoding(dataset, ["precipitation"])["precipitation"]["chunks"] == (1, 2048, 10)


@pytest.mark.parametrize("file_format", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"])
@pytest.mark.parametrize(
    "record_types", [("i1",), ("i2", "f8", "S1"), ()], ids=["one-byte-record", "mixed-records", "no-records"]
)
def test_classic_netcdf_extents_reach_the_end_of_the_file(
    tmp_path: Path, file_format: str, record_types: tuple[str, ...]
) -> None:
    """The header's extents end within the 4-byte padding of a complete classic file, and a
    file one byte shorter than the last extent fails the 'file complete' check."""
    import netCDF4

    from weatherunc.readers.netcdf_classic import check_classic_complete, classic_extents

    path = tmp_path / "classic.nc"
    with netCDF4.Dataset(path, "w", format=file_format) as handle:
        handle.title = "odd length"
        handle.createDimension("time", None)
        handle.createDimension("y", 3)
        handle.createDimension("x", 5)
        handle.createVariable("fixed", "i2", ("y", "x"))[...] = np.ones((3, 5), dtype="i2")
        for number, type_code in enumerate(record_types):
            variable = handle.createVariable(f"record{number}", type_code, ("time", "x"))
            variable.units = "mm"
            variable[...] = (
                np.full((3, 5), b"r", dtype="S1") if type_code == "S1" else np.ones((3, 5), dtype=type_code)
            )
    size = path.stat().st_size
    extents = classic_extents(path)
    assert sorted(extent.name for extent in extents) == sorted(
        ["fixed", *(f"record{n}" for n in range(len(record_types)))]
    )
    end = max(extent.end for extent in extents)
    assert size - 4 < end <= size
    check_classic_complete(path)
    path.write_bytes(path.read_bytes()[: end - 1])
    with pytest.raises(InputDataError, match="file complete"):
        check_classic_complete(path)


def test_hidden_root_metadata_is_revealed_with_numpy_attributes(tmp_path: Path) -> None:
    """A staged store with hidden root metadata does not open; revealed with attributes
    (numpy scalars included), it opens with them."""
    import zarr

    from weatherunc.store import hide_root_metadata, reveal_root_metadata

    store = tmp_path / "store.zarr"
    xr.Dataset({"a": ("x", np.arange(3.0))}, attrs={"title": "t"}).to_zarr(
        store, zarr_format=3, consolidated=False
    )
    hide_root_metadata(store)
    with pytest.raises(FileNotFoundError):
        xr.open_zarr(store, consolidated=False)
    reveal_root_metadata(store, {"factor": np.float32(1.5), "flag": np.bool_(True), "weights": np.arange(2)})
    attrs = zarr.open_group(store, mode="r").attrs
    assert (attrs["title"], attrs["factor"], attrs["flag"], attrs["weights"]) == ("t", 1.5, True, [0, 1])
    np.testing.assert_array_equal(xr.open_zarr(store, consolidated=False).a.values, [0.0, 1.0, 2.0])
    reveal_root_metadata(store, {"more": 1})  # in place already: only adds the attribute
    assert zarr.open_group(store, mode="r").attrs["more"] == 1
