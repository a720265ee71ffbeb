"""A job store as the Pangeo tools see it: plain ``xr.open_zarr``, cf_xarray and rioxarray."""

from __future__ import annotations

import warnings
from pathlib import Path

import cf_xarray  # noqa: F401 - registers the .cf accessor
import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import rioxarray  # noqa: F401 - registers the .rio accessor
import xarray as xr

from tests.conftest import write_entry
from weatherunc.catalog import Catalog
from weatherunc.geolocation import grid_mapping
from weatherunc.pipelines.job_config import JobConfig
from weatherunc.pipelines.run_job import run_job
from weatherunc.prediction.attributes import STANDARD_NAMES

CRS = pyproj.CRS("EPSG:3035")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store of a tiny idw job on a projected (EPSG:3035) synthetic field of two frames."""
    root = tmp_path_factory.mktemp("projected")
    rng = np.random.default_rng(1)
    values = rng.gamma(1.0, 2.0, size=(2, 48, 64)).astype(np.float32)
    grid = xr.Dataset(
        {"precipitation": (("time", "y", "x"), values, {"units": "mm h-1", "grid_mapping": "crs"})},
        coords={
            "time": pd.date_range("2020-01-01", periods=2, freq="5min"),
            "y": (
                "y",
                3.2e6 - 1000.0 * np.arange(48),
                {"standard_name": "projection_y_coordinate", "units": "m"},
            ),
            "x": (
                "x",
                4.3e6 + 1000.0 * np.arange(64),
                {"standard_name": "projection_x_coordinate", "units": "m"},
            ),
        },
    )
    grid["crs"] = grid_mapping(CRS)
    (root / "data").mkdir()
    grid.to_netcdf(root / "data" / "synthetic.nc")
    write_entry(root / "catalog")
    job = JobConfig(
        name="projected",
        dataset="synthetic",
        targets={"mode": "withheld", "blocks": 2, "block_pixels": 8, "min_wet_fraction": 0.2},
        model={"name": "idw"},
        tiling={"tile_pixels": 32, "halo_pixels": 8, "max_context": 500},
        plots={"enabled": False},
        output_dir=str(root / "out"),
    )
    catalog = Catalog.load([root / "catalog"], data_root_dir=root / "data")
    return run_job(job, scheduler="synchronous", progress=False, catalog=catalog).store


@pytest.fixture(scope="module")
def opened(store: Path) -> xr.Dataset:
    """The store opened with plain ``xr.open_zarr``; no warning may come (consolidated metadata)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return xr.open_zarr(store)


def test_cf_xarray_finds_axes_geolocation_grid_mapping_and_standard_names(opened: xr.Dataset) -> None:
    assert opened.cf.axes["X"] == ["x"] and opened.cf.axes["Y"] == ["y"] and opened.cf.axes["T"] == ["time"]
    assert opened.cf["latitude"].dims == ("y", "x") and opened.cf["longitude"].dims == ("y", "x")
    assert opened.cf.grid_mapping_names == {"lambert_azimuthal_equal_area": ["crs"]}
    names = opened.cf.standard_names
    assert {"precipitation_mean", "precipitation_quantile", "precipitation"} <= set(
        names["lwe_precipitation_rate"]
    )
    assert names["lwe_precipitation_rate standard_error"] == ["precipitation_std"]
    assert opened.cf["lwe_precipitation_rate standard_error"].name == "precipitation_std"


def test_every_output_variable_is_described(opened: xr.Dataset) -> None:
    for name, variable in opened.data_vars.items():
        attrs = variable.attrs
        assert attrs.get("long_name") and attrs.get("cell_methods") == "time: point", name
        assert "units" in attrs or "flag_values" in attrs, f"{name} has no units"
        assert attrs.get("standard_name") == STANDARD_NAMES.get(name), name
    assert opened["quantile"].attrs["units"] == "1"
    assert opened["threshold"].attrs["units"] == "mm h-1"
    assert opened["threshold"].attrs["standard_name"] == "lwe_precipitation_rate"


def test_rioxarray_finds_the_crs_and_writes_it_to_geotiff(opened: xr.Dataset, tmp_path: Path) -> None:
    assert opened.rio.crs.to_epsg() == 3035
    mean = opened["precipitation_mean"].isel(time=0)
    assert mean.rio.crs.to_epsg() == 3035
    path = tmp_path / "mean.tif"
    mean.rio.to_raster(path)
    with rasterio.open(path) as raster:
        assert raster.crs.to_epsg() == 3035
        assert raster.shape == (48, 64)
        assert raster.transform.a == 1000.0 and raster.transform.c == pytest.approx(4.3e6 - 500.0)
