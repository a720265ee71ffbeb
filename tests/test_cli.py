"""The command line: catalog list/show, ingest, demo, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


def test_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEATHERUNC_DATA_DIR", raising=False)
    result = runner.invoke(app, ["demo", "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") : result.output.rindex("}") + 1])
    assert summary["dims"] == {"time": 36, "y": 256, "x": 256}
    assert summary["wet_fraction"] == pytest.approx(0.18, abs=0.01)
    assert summary["units"] == "mm h-1"
    assert (tmp_path / "mrms_embedded.zarr").is_dir()
