"""Every shared dataset opens through the catalog with the grid, times and units of MANIFEST.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from weatherunc import conventions
from weatherunc.catalog import Catalog
from weatherunc.loading import open_dataset


@dataclass(frozen=True)
class Expected:
    """MANIFEST.md's description of one dataset, plus the wet and observed fractions of
    frame 10 (measured from the data; wet means above 0.1 mm/h, among observed pixels)."""

    frames: int
    shape: tuple[int, int]
    step_minutes: float
    start: str
    end: str
    spacing: float
    grid_mapping: str
    wet_fraction_frame10: float
    observed_fraction_frame10: float


EXPECTED = {
    "knmi_20100826": Expected(
        92, (765, 700), 5, "2010-08-26T00:00", "2010-08-26T07:35", 1000.0, "polar_stereographic", 0.558, 0.256
    ),
    "knmi_sample_20100826": Expected(
        92, (765, 700), 5, "2010-08-26T00:00", "2010-08-26T07:35", 1000.0, "polar_stereographic", 0.558, 0.256
    ),
    "mch_20150515": Expected(
        40, (640, 710), 5, "2015-05-15T15:45", "2015-05-15T19:00", 1000.0, "oblique_mercator", 0.208, 0.692
    ),
    "mch_20170131": Expected(
        40, (640, 710), 5, "2017-01-31T09:45", "2017-01-31T13:00", 1000.0, "oblique_mercator", 0.185, 0.717
    ),
    "fmi_20160928": Expected(
        40,
        (1226, 760),
        5,
        "2016-09-28T14:45",
        "2016-09-28T18:00",
        1000.0,
        "polar_stereographic",
        0.301,
        0.757,
    ),
    "bom_prcp_c10_20201031": Expected(
        144,
        (512, 512),
        10,
        "2020-10-31T00:00",
        "2020-10-31T23:50",
        500.0,
        "albers_conical_equal_area",
        0.087,
        1.0,
    ),
    "bom_prcp_cscn_20180616": Expected(
        61,
        (512, 512),
        6,
        "2018-06-16T10:00",
        "2018-06-16T16:00",
        500.0,
        "albers_conical_equal_area",
        0.141,
        1.0,
    ),
    "mrms_20190610": Expected(
        36, (3500, 7000), 2, "2019-06-10T00:00", "2019-06-10T01:10", 0.01, "latitude_longitude", 0.061, 0.643
    ),
    "mrms_sample_20190610": Expected(
        36, (256, 256), 2, "2019-06-10T00:00", "2019-06-10T01:10", 0.01, "latitude_longitude", 0.169, 1.0
    ),
    "mrms_embedded": Expected(
        36, (256, 256), 2, "2019-06-10T00:00", "2019-06-10T01:10", 0.01, "latitude_longitude", 0.169, 1.0
    ),
}


@pytest.fixture(scope="module")
def catalog(data_dir: Path) -> Catalog:
    return Catalog.load(data_root_dir=data_dir)


def test_every_grid_entry_has_an_expectation(catalog: Catalog) -> None:
    grids = {name for name, entry in catalog.entries.items() if entry.kind == "grid"}
    assert grids == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entry_matches_manifest(catalog: Catalog, name: str) -> None:
    expected = EXPECTED[name]
    dataset = open_dataset(name, catalog=catalog)
    precipitation = dataset[conventions.PRECIPITATION]

    assert precipitation.dims == ("time", "y", "x")
    assert precipitation.shape == (expected.frames, *expected.shape)
    assert precipitation.chunks is not None, "must be lazy and Dask-chunked"
    assert precipitation.data.chunksize == (1, *expected.shape)
    assert precipitation.attrs["units"] == "mm h-1"
    assert precipitation.attrs["standard_name"] == "lwe_precipitation_rate"
    assert precipitation.attrs["grid_mapping"] == "crs"

    times = dataset.time.values
    assert str(times[0])[:16] == expected.start and str(times[-1])[:16] == expected.end
    steps = np.unique(np.diff(times).astype("timedelta64[s]").astype(int))
    assert steps.tolist() == [expected.step_minutes * 60]

    assert dataset["crs"].attrs["grid_mapping_name"] == expected.grid_mapping
    assert abs(float(dataset.x[1] - dataset.x[0])) == pytest.approx(expected.spacing, rel=0.005)
    assert dataset.latitude.shape == expected.shape and dataset.longitude.shape == expected.shape

    frame = precipitation.isel(time=10).values
    observed = np.isfinite(frame)
    assert observed.mean() == pytest.approx(expected.observed_fraction_frame10, abs=0.005)
    assert (frame[observed] > 0.1).mean() == pytest.approx(expected.wet_fraction_frame10, abs=0.005)
    assert np.nanmin(frame) >= 0.0 and np.nanmax(frame) <= conventions.MAXIMUM_RATE_MM_PER_HOUR


def test_mrms_sample_wet_fraction_is_manifest_18_percent(catalog: Catalog) -> None:
    values = open_dataset("mrms_sample_20190610", catalog=catalog).precipitation.values
    assert np.nanmax(values) == pytest.approx(103.8, abs=0.01)
    assert (values > 0.1).mean() == pytest.approx(0.18, abs=0.01)


def test_knmi_files_and_sample_agree(catalog: Catalog) -> None:
    """The KNMI HDF5 files and the compact sample decode to the same rates (sample is
    stored to 0.01 mm, i.e. 0.12 mm/h) and the same coverage mask."""
    from_files = open_dataset("knmi_20100826", catalog=catalog).precipitation.isel(time=[0, 45, 91]).values
    from_sample = (
        open_dataset("knmi_sample_20100826", catalog=catalog).precipitation.isel(time=[0, 45, 91]).values
    )
    np.testing.assert_array_equal(np.isnan(from_files), np.isnan(from_sample))
    np.testing.assert_allclose(from_files, from_sample, atol=0.061, equal_nan=True)


def test_unobserved_is_nan_not_zero(catalog: Catalog) -> None:
    frame = open_dataset("knmi_20100826", catalog=catalog).precipitation.isel(time=0).values
    assert np.isnan(frame[0, 0]), "the grid corner lies outside radar coverage"
    assert np.isnan(frame).any() and (frame == 0).any()


def test_latitude_longitude_place_the_grids(catalog: Catalog) -> None:
    knmi = open_dataset("knmi_20100826", catalog=catalog)
    de_bilt = np.hypot(knmi.latitude - 52.10, knmi.longitude - 5.18).argmin(...)
    assert 0 < int(de_bilt["y"]) < 765 and 0 < int(de_bilt["x"]) < 700
    mch = open_dataset("mch_20150515", catalog=catalog)
    assert 45.5 < float(mch.latitude.mean()) < 47.0 and 6.0 < float(mch.longitude.mean()) < 9.0
    bom = open_dataset("bom_prcp_c10_20201031", catalog=catalog)
    assert float(bom.latitude.mean()) == pytest.approx(-27.7, abs=0.1)


def test_fmi_reflectivity_converted_with_stated_zr(catalog: Catalog) -> None:
    dataset = open_dataset("fmi_20160928", catalog=catalog)
    assert "Z = 223 R^1.53" in dataset.attrs["zr_relation"]
    frame = dataset.precipitation.isel(time=0).values
    assert np.nanmin(frame) == 0.0, "the lowest reportable reflectivity (-32 dBZ) is dry"


def test_accumulations_become_rates(catalog: Catalog, data_dir: Path) -> None:
    """BoM 10-minute accumulations [kg m-2] times 6 equal the rate [mm/h]."""
    import xarray as xr

    path = data_dir / "radar/bom/prcp-c10/66/2020/10/31/66_20201031_131000.prcp-c10.nc"
    native = xr.open_dataset(path, engine="h5netcdf").precipitation.values
    rate = (
        open_dataset("bom_prcp_c10_20201031", catalog=catalog)
        .precipitation.sel(time="2020-10-31T13:10")
        .values
    )
    np.testing.assert_allclose(rate, native * 6.0, rtol=1e-6)


def test_sic97_stations(catalog: Catalog) -> None:
    dataset = open_dataset("sic97", catalog=catalog)
    assert dataset.precipitation.dims == ("station",)
    assert dataset.sizes["station"] == 100
    assert {"x", "y", "altitude_m"} <= set(dataset.coords)
    assert dataset.precipitation.attrs["units"] == "mm h-1"
    rainfall = np.loadtxt(
        catalog.root_of(catalog.get("sic97")) / "sic97/sic97_train_100.csv",
        delimiter=",",
        skiprows=1,
        usecols=3,
    )
    np.testing.assert_allclose(dataset.precipitation.values, rainfall * 0.1 / 24.0, rtol=1e-6)
    assert "Dubois" in dataset.attrs["attribution"]


def test_station_sets_have_no_time_series(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="stations set, not a grid"):
        from weatherunc.loading import GridSource

        GridSource.from_catalog(catalog, "sic97")
