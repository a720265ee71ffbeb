"""Every kind of bad input raises InputDataError naming the file, the variable and the check."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tests.conftest import write_classic_netcdf, write_entry
from weatherunc.catalog import Catalog
from weatherunc.errors import InputDataError
from weatherunc.loading import open_dataset
from weatherunc.validation import check_dataset, check_frame, check_times, normalise_units


def _field(value: float = 1.0) -> np.ndarray:
    values = np.full((3, 8, 10), value)
    values[:, 0, 0] = 0.0
    return values


def _open_and_compute(catalog) -> xr.Dataset:
    return open_dataset("synthetic", catalog=catalog).compute()


def _expect(check: str, catalog_factory, file_options=None, **entry) -> InputDataError:
    with pytest.raises(InputDataError) as caught:
        _open_and_compute(catalog_factory(file_options, **entry))
    error = caught.value
    assert error.check == check, str(error)
    assert "synthetic" in error.source or "synthetic" in str(error)
    assert error.variable in str(error)
    return error


def test_valid_synthetic_file_opens(synthetic) -> None:
    dataset = _open_and_compute(synthetic({"values": _field(2.0)}))
    assert dataset.precipitation.shape == (3, 8, 10)
    assert float(dataset.precipitation.max()) == pytest.approx(2.0)


def test_all_dry_frames_are_valid(synthetic) -> None:
    dataset = _open_and_compute(synthetic({"values": np.zeros((3, 8, 10))}))
    assert float(dataset.precipitation.max()) == 0.0
    assert not bool(dataset.precipitation.isnull().any())


def test_all_nan_frame(synthetic) -> None:
    values = _field()
    values[1] = np.nan
    error = _expect("not all NaN", synthetic, {"values": values})
    assert "2020-01-01 00:05" in error.source


def test_negative_rate(synthetic) -> None:
    values = _field()
    values[2, 3, 3] = -0.5
    error = _expect("non-negative rate", synthetic, {"values": values})
    assert "-0.5" in error.detail


def test_impossible_rate(synthetic) -> None:
    values = _field()
    values[0, 1, 1] = 612.0
    _expect("plausible rate", synthetic, {"values": values})


@pytest.mark.parametrize("fill", [-9999.0, 65535.0])
def test_undeclared_fill_value(synthetic, fill: float) -> None:
    values = _field()
    values[0, 2:4, 2:4] = fill
    error = _expect("no undeclared fill values", synthetic, {"values": values})
    assert "4 pixels" in error.detail


def test_missing_units(synthetic) -> None:
    _expect("units present", synthetic, {"units": None})


def test_units_differ_from_catalog(synthetic) -> None:
    _expect("units match catalog", synthetic, {"units": "m s-1"})


def test_unknown_units_in_catalog(synthetic) -> None:
    error = _expect("schema", synthetic, None, units="furlongs per fortnight")
    assert error.variable == "units"


def test_missing_coordinates(synthetic) -> None:
    _expect("coordinates present", synthetic, {"with_coordinates": False})


def test_missing_crs_in_catalog_and_in_the_file(synthetic) -> None:
    """``crs`` may be left out of an entry whose files carry a grid mapping; here neither has one."""
    error = _expect("CRS present", synthetic, None, crs=None)
    assert "set crs in the catalog entry" in str(error)


def test_unparsable_crs_in_catalog(synthetic) -> None:
    error = _expect("schema", synthetic, None, crs="+proj=nowhere")
    assert error.variable == "crs"


def test_grid_mapping_pointing_nowhere(synthetic) -> None:
    _expect("CRS present", synthetic, {"grid_mapping": "lambert"})


def test_latitude_beyond_90(synthetic) -> None:
    _expect("latitude within ±90", synthetic, {"latitude": True}, crs="EPSG:4326")


def test_duplicated_times(synthetic) -> None:
    times = ["2020-01-01T00:00", "2020-01-01T00:05", "2020-01-01T00:05"]
    _expect("unique times", synthetic, {"times": times})


def test_unsorted_times(synthetic) -> None:
    times = ["2020-01-01T00:00", "2020-01-01T00:10", "2020-01-01T00:05"]
    _expect("sorted times", synthetic, {"times": times})


def test_unknown_dimensions(synthetic) -> None:
    _expect("known dimensions", synthetic, {"dims": ("time", "level", "x")})


def test_truncated_file(synthetic, tmp_path: Path) -> None:
    catalog = synthetic({"values": _field()})
    path = tmp_path / "data" / "synthetic.nc"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputDataError) as caught:
        _open_and_compute(catalog)
    assert caught.value.check == "readable file"
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("engine", "unlimited_time"),
    [
        pytest.param("netcdf4", False, id="netcdf4"),
        pytest.param("scipy", False, id="scipy"),
        pytest.param("netcdf4", True, id="record-dimension"),
    ],
)
def test_truncated_classic_netcdf_fails_as_incomplete(
    tmp_path: Path, engine: str, unlimited_time: bool
) -> None:
    """A classic NetCDF file cut short is refused by the 'file complete' check, naming the file and
    the first variable whose data are cut (the netCDF library would read the lost bytes as zeros)."""
    data_root = tmp_path / "data"
    data_root.mkdir()
    path = write_classic_netcdf(
        data_root / "synthetic.nc", _field(2.0), engine=engine, unlimited_time=unlimited_time
    )
    write_entry(tmp_path / "catalog")
    catalog = Catalog.load([tmp_path / "catalog"], data_root_dir=data_root)
    np.testing.assert_array_equal(
        _open_and_compute(catalog).precipitation.values, _field(2.0)
    )  # intact: accepted
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputDataError) as caught:
        _open_and_compute(catalog)
    assert caught.value.check == "file complete", str(caught.value)
    assert caught.value.variable == "precipitation"
    assert str(path) in str(caught.value) and f"{path.stat().st_size} bytes" in caught.value.detail


def test_classic_netcdf_with_a_truncated_header_fails_as_incomplete(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    data_root.mkdir()
    path = write_classic_netcdf(data_root / "synthetic.nc", _field())
    write_entry(tmp_path / "catalog")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(InputDataError) as caught:
        _open_and_compute(Catalog.load([tmp_path / "catalog"], data_root_dir=data_root))
    assert caught.value.check == "file complete", str(caught.value)
    assert "header" in caught.value.detail


def test_corrupt_file(synthetic, tmp_path: Path) -> None:
    catalog = synthetic({"values": _field()})
    path = tmp_path / "data" / "synthetic.nc"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 20)
    with pytest.raises(InputDataError) as caught:
        _open_and_compute(catalog)
    assert caught.value.check == "readable file"


def test_truncated_radar_file(data_dir: Path, tmp_path: Path) -> None:
    """A KNMI HDF5 file cut in half fails as unreadable, naming that file."""
    from weatherunc.catalog import Catalog

    folder = tmp_path / "radar" / "knmi" / "2010" / "08"
    folder.mkdir(parents=True)
    sources = sorted((data_dir / "radar" / "knmi" / "2010" / "08").glob("*.h5"))[:3]
    for source in sources:
        shutil.copy(source, folder / source.name)
    broken = folder / sources[1].name
    broken.write_bytes(broken.read_bytes()[:5000])
    dataset = open_dataset("knmi_20100826", catalog=Catalog.load(data_root_dir=tmp_path))
    dataset.precipitation.isel(time=0).compute()
    with pytest.raises(InputDataError) as caught:
        dataset.precipitation.isel(time=1).compute()
    assert caught.value.check == "readable file"
    assert sources[1].name in str(caught.value)


def test_check_times_accepts_increasing() -> None:
    check_times(
        np.array(["2020-01-01T00:00", "2020-01-01T00:05"], dtype="datetime64[ns]"),
        source="s",
        variable="time",
    )


def test_check_frame_names_source_and_time() -> None:
    with pytest.raises(InputDataError, match=r"radar\.h5 \(time 12:00\).*'rate'.*plausible rate"):
        check_frame(np.array([[0.0, 501.0]]), source="radar.h5", variable="rate", time="12:00")


def test_check_dataset_requires_crs_units_and_coordinates() -> None:
    base = xr.Dataset(
        {"precipitation": (("time", "y", "x"), np.zeros((1, 2, 2)), {"units": "mm h-1"}), "crs": ((), 0)},
        coords={"time": [np.datetime64("2020-01-01")], "y": [0.0, 1.0], "x": [0.0, 1.0]},
    )
    check_dataset(base, source="ok")
    with pytest.raises(InputDataError, match="CRS present"):
        check_dataset(base.drop_vars("crs"), source="no-crs")
    with pytest.raises(InputDataError, match="units present"):
        check_dataset(base.assign(precipitation=base.precipitation.assign_attrs(units="")), source="no-units")
    with pytest.raises(InputDataError, match="coordinates present"):
        check_dataset(base.drop_vars("x"), source="no-x")
    with pytest.raises(InputDataError, match="known dimensions"):
        check_dataset(base.rename({"x": "band"}), source="band")
    latitude = base.assign_coords(latitude=(("y", "x"), np.array([[10.0, 20.0], [30.0, 91.0]])))
    with pytest.raises(InputDataError, match="latitude within"):
        check_dataset(latitude, source="lat")


def test_normalise_units() -> None:
    assert normalise_units("mm/h") == normalise_units("mm h-1") == "mm h-1"
    assert normalise_units("kg m-2") == "mm"


def test_negative_tolerance_sets_small_artefacts_to_zero(synthetic) -> None:
    values = _field()
    values[0, 1, 1] = -0.05
    dataset = _open_and_compute(synthetic({"values": values}, negative_tolerance=0.1))
    assert float(dataset.precipitation[0, 1, 1]) == 0.0
    assert "set to 0" in dataset.precipitation.attrs["comment"]
    values[0, 1, 1] = -0.5
    _expect("non-negative rate", synthetic, {"values": values}, negative_tolerance=0.1)
