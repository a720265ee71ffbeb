"""One-call fill of a user's own DataArray: outputs, CRS sources, dims, units, the accessor, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr

import weatherunc
from weatherunc.errors import InputDataError
from weatherunc.filling import FILLED, OBSERVED, UNFILLED
from weatherunc.geolocation import grid_mapping
from weatherunc.loading import open_dataset
from weatherunc.tiling import GridTiling

CRS = pyproj.CRS.from_epsg(3035)
#: Few contexts keep the GP to seconds on one core.
GP_TILING = GridTiling(max_context=600)
GAP = (slice(20, 30), slice(15, 25))


def _truth(ny: int = 48, nx: int = 48) -> np.ndarray:
    """Smooth rain [mm/h] ``[ny, nx]``, wet everywhere."""
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    return 3.0 * np.sin(xx / 6.0) * np.cos(yy / 9.0) + 3.5


def _field(ny: int = 48, nx: int = 48, gap: tuple[slice, slice] = GAP) -> xr.DataArray:
    """``rain(y, x)`` in mm/h on a 1 km EPSG:3035 grid (metres) with a 10x10 NaN gap."""
    values = _truth(ny, nx)
    values[gap] = np.nan
    coords = {
        "y": ("y", 4e6 - 1000.0 * np.arange(ny), {"standard_name": "projection_y_coordinate", "units": "m"}),
        "x": ("x", 3e6 + 1000.0 * np.arange(nx), {"standard_name": "projection_x_coordinate", "units": "m"}),
    }
    return xr.DataArray(values, dims=("y", "x"), coords=coords, name="rain", attrs={"units": "mm h-1"})


def _assert_filled(filled: xr.Dataset, data: xr.DataArray, gap: np.ndarray) -> None:
    """The gap is filled with finite means and positive stds, observed pixels are unchanged, the
    output keeps the input's dims and coordinates; ``gap``: bool, shaped like ``data``."""
    mean, std = filled["precipitation_mean"].values, filled["precipitation_std"].values
    assert np.isfinite(mean[gap]).all() and (std[gap] > 0).all()
    np.testing.assert_array_equal(mean[~gap], data.values[~gap])
    np.testing.assert_array_equal(std[~gap], 0.0)
    np.testing.assert_array_equal(filled["observation"].values, np.where(gap, FILLED, OBSERVED))
    for name in ("precipitation", "precipitation_mean", "precipitation_std", "observation"):
        assert filled[name].dims == data.dims
    for name in data.coords:
        xr.testing.assert_identical(filled[name].variable, data[name].variable)


def test_gp_fills_the_gap_with_cf_described_uncertainty() -> None:
    data = _field()
    filled = weatherunc.fill(data, model="gp", crs="EPSG:3035", tiling=GP_TILING, progress=False)
    gap = data.isnull().values
    _assert_filled(filled, data, gap)
    assert (
        np.abs(filled["precipitation_mean"].values[gap] - _truth()[gap]).mean() < 0.3
    )  # a smooth field is recovered
    quantiles = filled["precipitation_quantile"].values
    assert (np.diff(quantiles[gap], axis=-1) >= 0).all()
    np.testing.assert_array_equal(
        quantiles[~gap], np.repeat(data.values[~gap][:, None], filled.sizes["quantile"], axis=1)
    )
    np.testing.assert_allclose(filled["bin_probability"].sum("bin").values, 1.0, atol=1e-9)
    exceedance = filled["exceedance_probability"].values
    assert ((exceedance >= 0) & (exceedance <= 1)).all()
    np.testing.assert_array_equal(exceedance[~gap], data.values[~gap][:, None] > filled["threshold"].values)
    assert filled.attrs["model"] == "gp" and filled.attrs["Conventions"].startswith("CF-")
    assert pyproj.CRS.from_wkt(filled["crs"].attrs["crs_wkt"]) == CRS
    for name, variable in filled.data_vars.items():
        assert variable.attrs["long_name"] and "units" in variable.attrs or name == "observation", name
        assert variable.attrs["grid_mapping"] == "crs"
    assert filled["precipitation_mean"].attrs["standard_name"] == "lwe_precipitation_rate"
    assert filled["precipitation_std"].attrs["standard_name"] == "lwe_precipitation_rate standard_error"
    meanings = filled["observation"].attrs["flag_meanings"].split()
    assert meanings == ["filled", "observed", "unfilled", "withheld"]
    share = filled["epistemic_share"].values
    assert np.isnan(share[~gap]).all() and ((share[gap] > 0) & (share[gap] < 1)).all()
    rows, columns = GAP
    centre = share[(rows.start + rows.stop) // 2, (columns.start + columns.stop) // 2]
    assert centre > share[rows.start, columns.start]  # the GP's posterior variance grows from the edge


def test_a_self_calibrated_gp_shares_one_fit_per_frame_and_records_each_tile() -> None:
    """``gp+self``: the GP is fitted once per frame (as ``gp`` is) and every tile's self-calibration
    record reaches the output; ``idw+self`` has no fit to share."""
    from weatherunc.models.interface import SharesFit
    from weatherunc.models.registry import get_model

    assert isinstance(get_model("gp+self"), SharesFit) and not isinstance(get_model("idw+self"), SharesFit)
    data = _field(gap=(slice(8, 40), slice(8, 40)))  # a gap wide enough for pseudo-targets around it
    tiling = GridTiling(tile_pixels=24, halo_pixels=16, max_context=600)
    filled = weatherunc.fill(data, model="gp+self", crs=CRS, tiling=tiling, progress=False)
    _assert_filled(filled, data, data.isnull().values)
    assert "one fit per frame shared by its tiles" in filled.attrs["source"]
    records = json.loads(filled.attrs["self_calibration"])
    assert len(records) >= 2 and {record["frame"] for record in records} == {0}
    assert len({record["tile"] for record in records}) == len(records)
    assert all(record["method"] in ("self", "none") for record in records)
    assert any(record["method"] == "self" and record["scores"]["pseudo_targets"] > 0 for record in records)
    assert filled.attrs["self_calibration_seconds"] >= 0.0
    assert "self_calibration" not in weatherunc.fill(data, model="idw", crs=CRS, progress=False).attrs


def test_idw_through_the_accessor_equals_the_function_and_any_crs_spelling() -> None:
    data = _field()
    filled = data.weatherunc.fill(model="idw", crs=CRS, progress=False)
    _assert_filled(filled, data, data.isnull().values)
    assert filled.attrs["model"] == "idw"
    for crs in ("EPSG:3035", 3035, CRS.to_wkt()):
        xr.testing.assert_identical(weatherunc.fill(data, model="idw", crs=crs, progress=False), filled)


def test_a_model_instance_may_be_passed() -> None:
    from weatherunc.models.baselines import InverseDistanceInterpolator

    data = _field()
    filled = weatherunc.fill(
        data, model=InverseDistanceInterpolator(neighbours=4, name="idw4"), crs=CRS, progress=False
    )
    assert filled.attrs["model"] == "idw4"
    assert not np.allclose(
        filled["precipitation_mean"].values,
        weatherunc.fill(data, model="idw", crs=CRS, progress=False)["precipitation_mean"].values,
    )


@pytest.mark.parametrize("dims", [("lat", "lon"), ("latitude", "longitude")])
def test_latitude_longitude_dims_imply_epsg_4326(dims: tuple[str, str]) -> None:
    projected = _field()
    data = xr.DataArray(
        projected.values,
        dims=dims,
        coords={dims[0]: 50.0 - 0.01 * np.arange(48), dims[1]: 8.0 + 0.015 * np.arange(48)},
        name="rain",
        attrs={"units": "mm/h"},
    )
    filled = weatherunc.fill(data, model="idw", progress=False)
    _assert_filled(filled, data, data.isnull().values)
    assert pyproj.CRS.from_wkt(filled["crs"].attrs["crs_wkt"]) == pyproj.CRS.from_epsg(4326)
    assert set(filled.dims) == {*dims, "quantile", "threshold", "bin"}


def test_time_cube_fills_each_frame_on_its_own() -> None:
    first, second = _field(), _field(gap=(slice(5, 15), slice(30, 40))) * 0.5
    data = xr.concat(
        [first, second], dim=pd.Index(pd.to_datetime(["2024-06-01T12:00", "2024-06-01T12:10"]), name="time")
    ).assign_attrs(units="mm h-1")
    filled = weatherunc.fill(data, model="idw", crs=CRS, progress=False)
    _assert_filled(filled, data, data.isnull().values)
    assert filled["precipitation_quantile"].dims == ("time", "y", "x", "quantile")
    for number in range(2):
        alone = weatherunc.fill(data.isel(time=number), model="idw", crs=CRS, progress=False)
        xr.testing.assert_identical(filled.isel(time=number), alone)


@pytest.mark.parametrize("form", ["crs_wkt", "spatial_ref", "cf_parameters"])
def test_cf_grid_mapping_is_read_from_the_data_and_kept(form: str) -> None:
    attributes = dict(grid_mapping(CRS).attrs)
    if form == "spatial_ref":  # GDAL / rioxarray spell the WKT spatial_ref
        attributes = {"spatial_ref": attributes["crs_wkt"]}
    elif form == "cf_parameters":
        del attributes["crs_wkt"]
    data = (
        _field()
        .assign_coords(lambert=xr.DataArray(np.int32(0), attrs=attributes))
        .assign_attrs(grid_mapping="lambert")
    )
    filled = weatherunc.fill(data, model="idw", progress=False)
    assert "crs" not in filled.variables and filled["precipitation_mean"].attrs["grid_mapping"] == "lambert"
    xr.testing.assert_identical(filled["lambert"], data["lambert"])
    xr.testing.assert_identical(
        filled.drop_vars("lambert").drop_attrs(),
        weatherunc.fill(_field(), model="idw", crs=CRS, progress=False).drop_vars("crs").drop_attrs(),
    )


def test_rioxarray_spatial_ref_coordinate_without_attribute() -> None:
    data = _field().assign_coords(
        spatial_ref=xr.DataArray(np.int32(0), attrs={"crs_wkt": CRS.to_wkt(), "spatial_ref": CRS.to_wkt()})
    )
    filled = weatherunc.fill(data, model="idw", progress=False)
    assert filled["precipitation_std"].attrs["grid_mapping"] == "spatial_ref"


def test_grid_mapping_of_a_cf_netcdf_file_opened_by_xarray(tmp_path: Path) -> None:
    path = tmp_path / "rain.nc"
    data = _field().assign_attrs(grid_mapping="crs")
    xr.Dataset({"rain": data, "crs": grid_mapping(CRS)}).to_netcdf(path)
    with xr.open_dataset(path, decode_coords="all") as dataset:
        rain = dataset["rain"].load()
    assert "grid_mapping" not in rain.attrs and rain.encoding["grid_mapping"] == "crs"  # where xarray puts it
    filled = weatherunc.fill(rain, model="idw", progress=False)
    assert pyproj.CRS.from_wkt(filled["crs"].attrs["crs_wkt"]) == CRS
    scaled = (rain * 2.0).rename("doubled").assign_attrs(units="mm h-1")  # arithmetic drops the encoding
    assert "grid_mapping" not in scaled.encoding and "crs" in scaled.coords
    doubled = weatherunc.fill(scaled, model="idw", progress=False)
    assert pyproj.CRS.from_wkt(doubled["crs"].attrs["crs_wkt"]) == CRS
    two = scaled.assign_coords(other=grid_mapping(pyproj.CRS.from_epsg(3857)))
    with pytest.raises(InputDataError, match="crs known"):  # which of two is meant is not guessed
        weatherunc.fill(two, model="idw", progress=False)


def test_units_are_converted_to_mm_per_hour_or_given() -> None:
    data = _field()
    reference = weatherunc.fill(data, model="idw", crs=CRS, progress=False)
    flux = weatherunc.fill(
        (data / 3600.0).assign_attrs(units="kg m-2 s-1"), model="idw", crs=CRS, progress=False
    )
    np.testing.assert_allclose(
        flux["precipitation_mean"].values, reference["precipitation_mean"].values, rtol=1e-12
    )
    assert (
        flux["precipitation_mean"].attrs["units"] == "mm h-1"
        and flux["precipitation"].attrs["source_units"] == "kg m-2 s-1"
    )
    given = weatherunc.fill(data.drop_attrs(), model="idw", crs=CRS, units="mm h-1", progress=False)
    np.testing.assert_array_equal(given["precipitation_mean"].values, reference["precipitation_mean"].values)


def test_pixels_out_of_reach_stay_nan_flagged_and_warned() -> None:
    data = _field(gap=(slice(4, 44), slice(4, 44)))
    with pytest.warns(UserWarning, match="fewer observed pixels within reach than 'idw' needs \\(1\\)"):
        filled = weatherunc.fill(
            data, model="idw", crs=CRS, tiling=GridTiling(tile_pixels=8, halo_pixels=2), progress=False
        )
    unfilled = filled["observation"].values == UNFILLED
    assert unfilled.any() and (filled["observation"].values == FILLED).any()
    assert (
        np.isnan(filled["precipitation_mean"].values[unfilled]).all()
        and np.isfinite(filled["precipitation_mean"].values[~unfilled]).all()
    )


def test_tiles_with_fewer_contexts_than_kriging_needs_stay_unfilled() -> None:
    """Two observed pixels alone in a gap cannot fit a variogram: their tile stays NaN and warned,
    the rest of the frame is filled."""
    from weatherunc.models.interface import minimum_contexts
    from weatherunc.models.registry import get_model

    assert minimum_contexts(get_model("kriging")) == 3 and minimum_contexts(get_model("idw")) == 1
    data = _field(gap=(slice(4, 44), slice(4, 44)))
    data[20, 20] = data[20, 22] = 1.0  # alone, far inside the gap
    with pytest.warns(UserWarning, match="than 'kriging' needs \\(3\\)"):
        filled = weatherunc.fill(
            data, model="kriging", crs=CRS, tiling=GridTiling(tile_pixels=8, halo_pixels=2), progress=False
        )
    observation = filled["observation"].values
    assert observation[20, 21] == UNFILLED and np.isnan(filled["precipitation_mean"].values[20, 21])
    assert (observation == FILLED).any()
    assert np.isfinite(filled["precipitation_mean"].values[observation == FILLED]).all()


def test_embedded_mrms_sample() -> None:
    dataset = open_dataset("mrms_embedded")
    frame = dataset["precipitation"].isel(time=18, y=slice(96, 160), x=slice(96, 160)).load()
    gap = np.zeros(frame.shape, dtype=bool)
    gap[28:36, 28:36] = True
    data = frame.copy(data=np.where(gap, np.nan, frame.values)).assign_coords(
        crs=dataset["crs"]
    )  # the grid mapping the attribute names
    filled = weatherunc.fill(data, model="idw", progress=False)
    _assert_filled(filled, data, gap)
    assert (
        filled["precipitation_mean"].attrs["grid_mapping"] == "crs"
        and filled["crs"].attrs["crs_wkt"] == dataset["crs"].attrs["crs_wkt"]
    )
    np.testing.assert_array_equal(filled["precipitation_mean"].values[~gap], frame.values[~gap])


def _bad(change: Callable[[xr.DataArray], object]) -> object:
    return change(_field())


def _negative(data: xr.DataArray) -> xr.DataArray:
    data[0, 0] = -1.0
    return data


def _infinite(data: xr.DataArray) -> xr.DataArray:
    data[0, 0] = np.inf
    return data


class _NotAModel:
    name = "not a model"


@pytest.mark.parametrize(
    ("change", "options", "error", "check"),
    [
        (lambda data: data.to_dataset(), {}, TypeError, "DataArray input"),
        (lambda data: data.values, {}, TypeError, "DataArray input"),
        (lambda data: data.transpose("x", "y"), {}, ValueError, "'dimensions'"),
        (lambda data: data.isel(y=0), {}, ValueError, "'dimensions'"),
        (lambda data: data.rename(y="row"), {}, ValueError, "'dimensions'"),
        (lambda data: data.drop_vars("y"), {}, ValueError, "'coordinates present'"),
        (lambda data: data.copy(data=np.full(data.shape, np.nan)), {}, ValueError, "'not all NaN'"),
        (_negative, {}, ValueError, r"^weatherunc.fill: .*'non-negative rate'.*data.clip\(min=0\)"),
        (_infinite, {}, ValueError, "'finite values'"),
        (lambda data: data + 600.0, {"units": "mm h-1"}, ValueError, "'plausible rate'"),
        (
            lambda data: data.assign_coords(x=data.x.values[::-1] * np.r_[1.0, -np.ones(47)]),
            {},
            ValueError,
            "'monotonic coordinates'",
        ),
        (
            lambda data: data.copy(data=np.nan_to_num(data.values)),
            {},
            ValueError,
            "'unobserved pixels present'",
        ),
        (lambda data: data.drop_attrs(), {}, ValueError, "'units present'"),
        (lambda data: data.assign_attrs(units="mm"), {}, ValueError, "'units convertible to mm/h'"),
        (lambda data: data.assign_attrs(units="dBZ"), {}, ValueError, "'units convertible to mm/h'"),
        (lambda data: data, {"units": "mm s-1"}, ValueError, "'units agree'"),
        (lambda data: data, {"crs": None}, ValueError, "'crs known'"),
        (
            lambda data: data.assign_attrs(grid_mapping="crs"),
            {"crs": None},
            ValueError,
            r"'crs known'.*assign_coords\(crs=",
        ),
        (lambda data: data, {"crs": "EPSG:not a code"}, ValueError, "'crs readable'"),
        (
            lambda data: data.rename(y="lat", x="lon").assign_coords(lat=np.linspace(60.0, 107.0, 48)),
            {"crs": None},
            ValueError,
            "'lat' failed check 'latitude within ±90'",
        ),
        (
            lambda data: data.assign_coords(crs=xr.DataArray(0, attrs={"units": "1"})).assign_attrs(
                grid_mapping="crs"
            ),
            {"crs": None},
            ValueError,
            "'grid mapping readable'",
        ),
    ],
)
def test_bad_input_raises_naming_the_variable_and_the_check(
    change: Callable, options: dict, error: type[Exception], check: str
) -> None:
    with pytest.raises(error, match=check) as raised:
        weatherunc.fill(_bad(change), model="idw", **{"crs": CRS, **options}, progress=False)
    if error is ValueError:
        assert "'rain'" in str(raised.value)


def test_bad_model_or_tiling_raises() -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        weatherunc.fill(_field(), model="nope", crs=CRS)
    with pytest.raises(TypeError, match="check 'model'"):
        weatherunc.fill(_field(), model=_NotAModel(), crs=CRS)
    with pytest.raises(ValueError, match="check 'tiling'"):
        weatherunc.fill(_field(), model="idw", crs=CRS, tiling=GridTiling(targets="all"))


@pytest.mark.parametrize("order", ["import weatherunc, xarray as xr", "import xarray as xr, weatherunc"])
def test_accessor_is_registered_whichever_is_imported_first(order: str) -> None:
    code = f"{order}; import numpy; print(type(xr.DataArray(numpy.zeros(2)).weatherunc).__name__)"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "WeatherUncAccessor"


def test_docs_example_runs() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "fill.md").read_text(encoding="utf-8")
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(
        compile(
            example.replace('crs="EPSG:3035")', 'crs="EPSG:3035", progress=False)'), "docs/fill.md", "exec"
        ),
        namespace,
    )
    filled, gap = namespace["filled"], np.isnan(namespace["rain"])
    assert filled.attrs["model"] == "gp" and namespace["quick"].attrs["model"] == "idw"
    assert (namespace["spread"].values[gap] > 0).all() and namespace["spread"].notnull().sum() == gap.sum()
    assert ((namespace["wet"].values >= 0) & (namespace["wet"].values <= 1)).all()
