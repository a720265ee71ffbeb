"""Drafting a catalog entry from data files: ``weatherunc catalog new`` and weatherunc.onboarding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr
from typer.testing import CliRunner

from tests.conftest import write_cf_netcdf
from weatherunc.catalog import Catalog, load_entry
from weatherunc.cli import app
from weatherunc.errors import InputDataError
from weatherunc.geolocation import crs_of, grid_mapping
from weatherunc.loading import open_dataset
from weatherunc.onboarding import (
    catalog_units,
    draft_entry,
    inspect_netcdf,
    precipitation_variable,
    time_from_filenames,
    validate_draft,
    write_draft,
)
from weatherunc.onboarding_fields import crs_text, files_pattern, regular_time_step


def _one_frame_file(path: Path, *, units: str = "mm h-1", crs: str | None = "EPSG:3035") -> Path:
    """``rain(y, x)`` without a time dimension (times come from the file name)."""
    rng = np.random.default_rng(1)
    attrs = {"units": units, "standard_name": "lwe_precipitation_rate"}
    dataset = xr.Dataset(
        {"rain": (("y", "x"), rng.gamma(0.5, 2.0, (6, 7)).astype(np.float32), attrs)},
        coords={
            "y": ("y", 1000.0 * np.arange(6), {"units": "m"}),
            "x": ("x", 1000.0 * np.arange(7), {"units": "m"}),
        },
    )
    dataset["temperature"] = (("y", "x"), np.zeros((6, 7), np.float32), {"units": "K"})
    if crs is not None:
        dataset["crs"] = grid_mapping(pyproj.CRS.from_user_input(crs))
        dataset["rain"].attrs["grid_mapping"] = "crs"
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.to_netcdf(path)
    return path


def test_a_drafted_entry_for_a_cf_time_series_loads_as_written(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "radar").mkdir(parents=True)
    path = write_cf_netcdf(root / "radar" / "series.nc", crs="EPSG:3035")
    entry = draft_entry([path], "my_radar", data_root=root)
    assert entry["reader"] == "cf_netcdf" and entry["variable"] == "precipitation"
    assert entry["units"] == "mm h-1" and entry["crs"] == "EPSG:3035"
    assert entry["files"] == "radar/series.nc" and entry["time_step_minutes"] == 5.0
    assert "2020-01-01 00:00-2020-01-01 00:10 UTC, 3 frame(s)" in entry["description"]
    written = write_draft(entry, tmp_path / "catalog")
    assert written.read_text().startswith("# Drafted by `weatherunc catalog new`")
    assert "\n  " not in written.read_text()  # one line per field, also for long descriptions
    assert load_entry(written).name == "my_radar"
    dataset = open_dataset("my_radar", catalog_dirs=[tmp_path / "catalog"], data_dir=root)
    assert dataset.precipitation.shape == (3, 8, 10)
    assert crs_of(dataset).equals(pyproj.CRS.from_epsg(3035))
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_draft(entry, tmp_path / "catalog")


def test_one_frame_files_take_their_times_from_their_names(tmp_path: Path) -> None:
    files = [
        _one_frame_file(tmp_path / f"radar_{time:%Y%m%d%H%M}.nc")
        for time in pd.date_range("2021-07-14 12:00", periods=3, freq="10min")
    ]
    entry = draft_entry(files, "one_frame_files", data_root=tmp_path)
    assert entry["variable"] == "rain" and entry["files"] == "radar_*.nc"
    assert entry["time_from_filename"] == {"pattern": r"(?<!\d)(\d{12})(?!\d)", "format": "%Y%m%d%H%M"}
    assert entry["time_step_minutes"] == 10.0
    assert "2021-07-14 12:00-2021-07-14 12:20 UTC" in entry["description"]


def test_accumulations_take_their_period_and_reflectivity_a_zr_relation(tmp_path: Path) -> None:
    path = write_cf_netcdf(tmp_path / "accumulation.nc", units="mm", crs="EPSG:3035")
    assert inspect_netcdf([path], "accumulation", tmp_path)["accumulation_minutes"] == 5.0
    path = write_cf_netcdf(tmp_path / "reflectivity.nc", units="dBZ", crs="EPSG:3035")
    assert inspect_netcdf([path], "reflectivity", tmp_path)["zr_relation"]["a"] == 200.0


def test_a_latitude_longitude_grid_without_grid_mapping_is_geographic(tmp_path: Path) -> None:
    values = np.ones((2, 4, 5), np.float32)
    dataset = xr.Dataset(
        {"precipitation": (("time", "lat", "lon"), values, {"units": "mm/h"})},
        coords={
            "time": pd.date_range("2020-01-01", periods=2, freq="1h"),
            "lat": ("lat", np.linspace(50.0, 51.0, 4), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(4.0, 5.0, 5), {"units": "degrees_east"}),
        },
    )
    dataset.to_netcdf(tmp_path / "geographic.nc")
    entry = draft_entry([tmp_path / "geographic.nc"], "geographic", data_root=tmp_path)
    assert entry["crs"] == "EPSG:4326" and entry["units"] == "mm/h" and entry["time_step_minutes"] == 60.0


@pytest.mark.parametrize(
    ("options", "check"),
    [
        ({"units": "K"}, "precipitation variable found"),
        ({}, "CRS present"),
        ({"units": "mm s-1"}, "precipitation"),
    ],
)
def test_files_that_do_not_fit_name_the_failed_check(tmp_path: Path, options: dict, check: str) -> None:
    path = write_cf_netcdf(tmp_path / "file.nc", **options)
    with pytest.raises(InputDataError, match=check):
        draft_entry([path], "bad", data_root=tmp_path)


def test_several_fitting_variables_or_a_missing_one_are_refused(tmp_path: Path) -> None:
    path = _one_frame_file(tmp_path / "two.nc")
    with xr.open_dataset(path) as dataset:
        twice = dataset.load().assign(rain_too=dataset.rain)
    twice.to_netcdf(tmp_path / "twice.nc")
    with xr.open_dataset(tmp_path / "twice.nc") as dataset:
        with pytest.raises(InputDataError, match="one precipitation variable"):
            precipitation_variable(dataset, tmp_path / "twice.nc")
        assert precipitation_variable(dataset, tmp_path / "twice.nc", "rain_too") == "rain_too"
        with pytest.raises(InputDataError, match="variable present"):
            precipitation_variable(dataset, tmp_path / "twice.nc", "snow")


def test_files_pattern_stays_inside_the_root_and_one_folder(tmp_path: Path) -> None:
    names = [tmp_path / "a" / "x_01.nc", tmp_path / "a" / "x_02.nc"]
    assert files_pattern(names, tmp_path) == "a/x_*.nc"
    assert files_pattern(names[:1], tmp_path) == "a/x_01.nc"
    with pytest.raises(InputDataError, match="path inside data root"):
        files_pattern(names, tmp_path / "b")
    with pytest.raises(InputDataError, match="files in one folder"):
        files_pattern([tmp_path / "a" / "x.nc", tmp_path / "b" / "x.nc"], tmp_path)


def test_helpers_units_crs_and_time_patterns() -> None:
    assert catalog_units("mm/h") == "mm/h" and catalog_units("mm hr-1") == "mm hr-1"
    assert catalog_units("K") is None and catalog_units(None) is None
    assert crs_text(pyproj.CRS.from_epsg(3035).to_wkt()) == "EPSG:3035"
    custom = "+proj=stere +lat_0=90 +lon_0=0 +lat_ts=60 +a=6378137 +b=6356752 +units=m +no_defs"
    assert (
        crs_text(pyproj.CRS.from_proj4(custom).to_wkt()).startswith("PROJCRS") and crs_text(custom) == custom
    )
    assert time_from_filenames([Path("RAD_20100826.h5")])["format"] == "%Y%m%d"
    assert time_from_filenames([Path("no_time.nc")]) is None
    assert regular_time_step(pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 00:05"])) == {
        "time_step_minutes": 5.0
    }
    assert (
        regular_time_step(pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 00:05", "2020-01-01 00:15"]))
        == {}
    )


def test_validate_draft_lists_every_schema_error(tmp_path: Path) -> None:
    with pytest.raises(InputDataError) as caught:
        validate_draft({"name": "Bad Name", "units": "inches"}, tmp_path, tmp_path / "x.nc")
    assert {"name", "units", "reader", "files"} <= set(caught.value.variable.split(", "))


def test_a_crs_given_for_a_file_without_one_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEATHERUNC_DATA_DIR", raising=False)  # the root is then the files' folder
    path = write_cf_netcdf(tmp_path / "file.nc")
    entry = draft_entry([path], "given_crs", data_root=tmp_path, crs="EPSG:32631")
    assert entry["crs"] == "EPSG:32631"
    result = CliRunner().invoke(
        app, ["catalog", "new", str(path), "--name", "given", "--out", str(tmp_path), "--crs", "EPSG:32631"]
    )
    assert result.exit_code == 0, result.output
    assert load_entry(tmp_path / "given.yaml").crs == "EPSG:32631"


def test_catalog_new_command_writes_an_entry_that_lists(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    path = write_cf_netcdf(root / "series.nc", crs="EPSG:3035")
    arguments = ["catalog", "new", str(path), "--name", "from_cli", "--out", str(tmp_path / "catalog")]
    result = CliRunner().invoke(app, [*arguments, "--data-dir", str(root)])
    assert result.exit_code == 0, result.output
    assert "from_cli.yaml" in result.output
    assert "from_cli" in Catalog.load([tmp_path / "catalog"]).names()
    again = CliRunner().invoke(app, [*arguments, "--data-dir", str(root)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    missing = CliRunner().invoke(app, ["catalog", "new", str(tmp_path / "none.nc"), "--name", "x"])
    assert missing.exit_code == 2 and "files exist" in missing.output
