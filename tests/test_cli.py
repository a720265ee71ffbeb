"""The command line: catalog list/show, ingest, demo, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from tests.conftest import write_cf_netcdf, write_entry
from weatherunc.cli import app
from weatherunc.store import open_store

runner = CliRunner()


def test_catalog_list() -> None:
    result = runner.invoke(app, ["catalog", "list"])
    assert result.exit_code == 0, result.output
    assert "knmi_20100826" in result.output and "sic97" in result.output and "mrms_embedded" in result.output


def test_catalog_list_with_user_folder(tmp_path: Path) -> None:
    write_entry(tmp_path, name="my_gauges")
    result = runner.invoke(app, ["catalog", "list", "--catalog", str(tmp_path)])
    assert result.exit_code == 0 and "my_gauges" in result.output


def test_catalog_show() -> None:
    result = runner.invoke(app, ["catalog", "show", "fmi_20160928"])
    assert result.exit_code == 0, result.output
    assert "units: dBZ" in result.output and "a: 223.0" in result.output


def test_catalog_show_unknown_name() -> None:
    result = runner.invoke(app, ["catalog", "show", "nowhere"])
    assert result.exit_code == 2
    assert "available" in result.output


def test_broken_user_entry_is_reported(tmp_path: Path) -> None:
    write_entry(tmp_path, units="inches")
    result = runner.invoke(app, ["catalog", "list", "--catalog", str(tmp_path)])
    assert result.exit_code == 2
    assert "schema" in result.output and "units" in result.output


def test_ingest_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_cf_netcdf(data / "synthetic.nc")
    write_entry(tmp_path / "catalog")
    out = tmp_path / "synthetic.zarr"
    arguments = ["ingest", "synthetic", "--out", str(out), "--catalog", str(tmp_path / "catalog"), "--data-dir", str(data)]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "3 frames complete" in result.output
    assert open_store(out).sizes["time"] == 3
    again = runner.invoke(app, arguments)
    assert "0 written now, 3 already done" in again.output


def test_ingest_bad_input_exits_with_message(tmp_path: Path) -> None:
    import numpy as np

    data = tmp_path / "data"
    data.mkdir()
    values = np.ones((2, 3, 3))
    values[1] = np.nan
    write_cf_netcdf(data / "synthetic.nc", values=values)
    write_entry(tmp_path / "catalog")
    out = tmp_path / "synthetic.zarr"
    result = runner.invoke(app, ["ingest", "synthetic", "--out", str(out), "--catalog", str(tmp_path / "catalog"), "--data-dir", str(data)])
    assert result.exit_code == 2
    assert "not all NaN" in result.output
    assert not out.exists()


def test_demo_runs_the_demo_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEATHERUNC_DATA_DIR", raising=False)
    result = runner.invoke(app, ["demo", "--out-dir", str(tmp_path), "--scheduler", "synchronous"])
    assert result.exit_code == 0, result.output
    for job in ("demo_mrms_gp", "demo_mrms_anp"):
        metrics = json.loads((tmp_path / job / "metrics.json").read_text())
        assert metrics["n_target"] == 3 * 4 * 32 * 32 and 0 < metrics["scores"]["coverage_90"] <= 1
        assert (tmp_path / job / "prediction.zarr").is_dir() and any((tmp_path / job / "figures").glob("*_panel.png"))
        assert f"{job}: crps" in result.output
    anp = xr.open_zarr(tmp_path / "demo_mrms_anp" / "prediction.zarr", consolidated=False)
    assert anp.attrs["calibration_method"] == "temperature" and anp.attrs["calibration_temperature"] > 0


def test_plot_writes_maps_of_a_store_and_refuses_an_unfinished_one(tmp_path: Path) -> None:
    import pyproj

    from weatherunc.gridding import GridTiling, predict_grid_to_zarr
    from weatherunc.models.registry import get_model

    values = np.where(np.arange(30)[:, None] + np.arange(40)[None, :] > 25, 2.0, 0.0)
    values[10:20, 10:20] = np.nan
    frame = xr.DataArray(values, dims=("y", "x"), coords={"y": 3.3e6 - 1000.0 * np.arange(30), "x": 3.9e6 + 1000.0 * np.arange(40), "time": np.datetime64("2020-01-01T10:00")})
    store = predict_grid_to_zarr(get_model("idw"), frame, tmp_path / "p.zarr", crs=pyproj.CRS.from_epsg(3035), tiling=GridTiling(tile_pixels=16), progress=False)
    result = runner.invoke(app, ["plot", str(store), "--out", str(tmp_path / "maps")])
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in (tmp_path / "maps").glob("*.png"))
    assert names == sorted(f"20200101T1000_{kind}.png" for kind in ("mean", "std", "exceedance_1mmh", "combined", "panel", "observed"))
    import zarr

    del zarr.open_group(store, mode="r+").attrs["weatherunc_complete"]
    result = runner.invoke(app, ["plot", str(store), "--out", str(tmp_path / "maps")])
    assert result.exit_code == 2 and "not marked complete" in result.output


def test_train_and_run_name_the_bad_field(tmp_path: Path) -> None:
    (tmp_path / "train.yaml").write_text("train: []\nvalidation: [{dataset: x}]\n")
    result = runner.invoke(app, ["train", str(tmp_path / "train.yaml")])
    assert result.exit_code == 2 and "train: List should have at least 1 item" in result.output
    (tmp_path / "job.yaml").write_text("name: j\ndataset: mrms_embedded\nmodel: {name: gp}\ntiling: {tile_pixels: 4}\n")
    result = runner.invoke(app, ["run", str(tmp_path / "job.yaml")])
    assert result.exit_code == 2 and "tiling.tile_pixels" in result.output
