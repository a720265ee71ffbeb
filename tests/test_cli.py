"""The command line: catalog list/show, ingest, demo, and clear errors."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from typer.testing import CliRunner

from tests.conftest import write_cf_netcdf, write_entry
from weatherunc.cli import app
from weatherunc.store import open_store
from weatherunc.version import __version__

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"weatherunc {__version__}"
    assert __version__ == importlib.metadata.version("weatherunc")


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
    assert "error: no catalog entry 'nowhere'" in result.output  # without the quotes of str(KeyError)


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
    arguments = [
        "ingest",
        "synthetic",
        "--out",
        str(out),
        "--catalog",
        str(tmp_path / "catalog"),
        "--data-dir",
        str(data),
    ]
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
    result = runner.invoke(
        app,
        [
            "ingest",
            "synthetic",
            "--out",
            str(out),
            "--catalog",
            str(tmp_path / "catalog"),
            "--data-dir",
            str(data),
        ],
    )
    assert result.exit_code == 2
    assert "not all NaN" in result.output
    assert not out.exists()


def test_demo_runs_the_demo_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEATHERUNC_DATA_DIR", raising=False)
    # The threaded scheduler: tiles at once in two threads (each prediction draws from its own generator).
    result = runner.invoke(app, ["demo", "--out-dir", str(tmp_path), "--scheduler", "threads"])
    assert result.exit_code == 0, result.output
    for job in ("demo_mrms_gp", "demo_mrms_anp"):
        metrics = json.loads((tmp_path / job / "metrics.json").read_text())
        assert metrics["n_target"] == 3 * 4 * 32 * 32 and 0 < metrics["scores"]["coverage_90"] <= 1
        assert (tmp_path / job / "prediction.zarr").is_dir() and any(
            (tmp_path / job / "figures").glob("*_panel.png")
        )
        assert f"{job}: crps" in result.output
    anp = xr.open_zarr(tmp_path / "demo_mrms_anp" / "prediction.zarr", consolidated=False)
    assert anp.attrs["calibration_method"] == "temperature" and anp.attrs["calibration_temperature"] > 0
    gp = xr.open_zarr(tmp_path / "demo_mrms_gp" / "prediction.zarr", consolidated=False)
    assert gp.attrs["calibration"].startswith("self") and gp.attrs["calibration_window_frames"] == 3
    # an earlier demo's store of another config or model (an earlier version) is replaced, not refused
    from weatherunc.pipelines.run_job import FINGERPRINT_ATTRIBUTE

    zarr.open_group(tmp_path / "demo_mrms_anp" / "prediction.zarr", mode="r+").attrs[
        FINGERPRINT_ATTRIBUTE
    ] = "old"
    again = runner.invoke(app, ["demo", "--out-dir", str(tmp_path), "--scheduler", "threads"])
    assert again.exit_code == 0, again.output
    replaced = zarr.open_group(tmp_path / "demo_mrms_anp" / "prediction.zarr", mode="r").attrs
    assert replaced[FINGERPRINT_ATTRIBUTE] != "old"


def test_plot_writes_maps_of_a_store_and_refuses_an_unfinished_one(tmp_path: Path) -> None:
    import pyproj

    from weatherunc.gridding import predict_grid_to_zarr
    from weatherunc.models.registry import get_model
    from weatherunc.tiling import GridTiling

    values = np.where(np.arange(30)[:, None] + np.arange(40)[None, :] > 25, 2.0, 0.0)
    values[10:20, 10:20] = np.nan
    frame = xr.DataArray(
        values,
        dims=("y", "x"),
        coords={
            "y": 3.3e6 - 1000.0 * np.arange(30),
            "x": 3.9e6 + 1000.0 * np.arange(40),
            "time": np.datetime64("2020-01-01T10:00"),
        },
    )
    store = predict_grid_to_zarr(
        get_model("idw"),
        frame,
        tmp_path / "p.zarr",
        crs=pyproj.CRS.from_epsg(3035),
        tiling=GridTiling(tile_pixels=16),
        progress=False,
    )
    result = runner.invoke(app, ["plot", str(store), "--out", str(tmp_path / "maps")])
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in (tmp_path / "maps").glob("*.png"))
    assert names == sorted(
        f"20200101T1000_{kind}.png"
        for kind in ("mean", "std", "exceedance_1mmh", "combined", "panel", "observed")
    )
    import zarr

    del zarr.open_group(store, mode="r+").attrs["weatherunc_complete"]
    result = runner.invoke(app, ["plot", str(store), "--out", str(tmp_path / "maps")])
    assert result.exit_code == 2 and "not marked complete" in result.output


def test_train_and_run_name_the_bad_field(tmp_path: Path) -> None:
    (tmp_path / "train.yaml").write_text("train: []\nvalidation: [{dataset: x}]\n")
    result = runner.invoke(app, ["train", str(tmp_path / "train.yaml")])
    assert result.exit_code == 2 and "train: List should have at least 1 item" in result.output
    missing_config = runner.invoke(app, ["train", str(tmp_path / "nope.yaml")])
    assert (
        missing_config.exit_code == 2 and "nope.yaml: no such training config file" in missing_config.output
    )
    (tmp_path / "job.yaml").write_text(
        "name: j\ndataset: mrms_embedded\nmodel: {name: gp}\ntiling: {tile_pixels: 4}\n"
    )
    result = runner.invoke(app, ["run", str(tmp_path / "job.yaml")])
    assert result.exit_code == 2 and "tiling.tile_pixels" in result.output
    missing = runner.invoke(app, ["run", "no_such_job"])
    assert missing.exit_code == 2 and "no_such_job: cannot read the job config" in missing.output


def test_a_shipped_job_is_found_by_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from weatherunc.pipelines import job_path, jobs_folder

    monkeypatch.chdir(tmp_path)  # outside the checkout, as from an installed wheel
    assert job_path("knmi_anp") == job_path("knmi_anp.yaml") == jobs_folder() / "knmi_anp.yaml"
    own = tmp_path / "knmi_anp.yaml"
    own.write_text("name: mine\n")
    assert job_path("knmi_anp.yaml") == Path("knmi_anp.yaml")  # a file of that name comes first
    assert job_path("elsewhere/knmi_anp") == Path("elsewhere/knmi_anp")  # a path is never a name


def _two_radars(tmp_path: Path) -> tuple[Path, Path]:
    """Catalog and data folders with two small synthetic radars of different intensities (4 frames of 64 x
    64 px)."""
    data, catalog = tmp_path / "data", tmp_path / "catalog"
    data.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:64]
    for name, scale in (("east_radar", 0.5), ("west_radar", 4.0)):
        frames = np.stack(
            [
                scale * np.maximum(np.sin(x / 6 + t) * np.cos(y / 9) + 0.3, 0) * rng.gamma(2.0, 1.0, (64, 64))
                for t in range(4)
            ]
        )
        write_cf_netcdf(data / f"{name}.nc", values=frames)
        write_entry(catalog, name=name, files=f"{name}.nc")
    return catalog, data


def test_calibrate_fits_on_held_out_frames_and_refuses_to_overwrite(tmp_path: Path) -> None:
    from weatherunc.catalog import Catalog
    from weatherunc.heads.calibration import VECTOR_PENALTIES, Calibration
    from weatherunc.heads.fitting import fit_calibration
    from weatherunc.models.registry import get_model
    from weatherunc.training.config import FrameSelection
    from weatherunc.training.validation import labelled_validation_tasks

    catalog, data = _two_radars(tmp_path)
    output = tmp_path / "calibration.json"
    command = [
        "calibrate",
        "idw",
        str(output),
        "--frames",
        "east_radar",
        "--frames",
        "west_radar,2020-01-01T00:05",
        "--tasks",
        "4",
        "--catalog",
        str(catalog),
        "--data-dir",
        str(data),
    ]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    calibration = Calibration.load(output)
    assert calibration.model == "idw" and "checkpoint_sha256" not in json.loads(output.read_text())
    assert (
        calibration.fitted_on
        == "4 validation tasks (seed 101) of east_radar ... to ...; west_radar 2020-01-01T00:05 to ..."
    )
    selections = [
        FrameSelection(dataset="east_radar"),
        FrameSelection(dataset="west_radar", start="2020-01-01T00:05"),
    ]
    tasks = [
        task
        for _, task in labelled_validation_tasks(
            selections, 4, seed=101, open_options={"catalog": Catalog.load([catalog], data_root_dir=data)}
        )
    ]
    expected = fit_calibration(get_model("idw"), tasks)
    assert calibration.probability.temperature == pytest.approx(
        expected.probability.temperature
    ) and calibration.std.factor == pytest.approx(expected.std.factor)

    written = output.read_text()
    again = runner.invoke(app, [*command, "--method", "vector"])
    assert again.exit_code == 2 and "pass --overwrite" in again.output and output.read_text() == written
    figure = tmp_path / "reliability.png"
    vector = runner.invoke(app, [*command, "--method", "vector", "--overwrite", "--figure", str(figure)])
    assert vector.exit_code == 0, vector.output
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scaling = Calibration.load(output)
    assert scaling.probability.method == "vector" and scaling.probability.penalty in VECTOR_PENALTIES
    assert set(scaling.scores["held_out_nll_by_penalty"]) == {f"{penalty:g}" for penalty in VECTOR_PENALTIES}
    assert not list(tmp_path.glob(".*.partial"))
    kept = runner.invoke(
        app,
        [
            "calibrate",
            "idw",
            str(tmp_path / "other.json"),
            "--frames",
            "east_radar",
            "--figure",
            str(figure),
            "--catalog",
            str(catalog),
            "--data-dir",
            str(data),
        ],
    )
    assert (
        kept.exit_code == 2 and f"{figure} exists" in kept.output and not (tmp_path / "other.json").exists()
    )


def test_train_reads_the_radars_of_a_catalog_and_data_folder_it_is_given(tmp_path: Path) -> None:
    import yaml

    from tests.test_training import CONFIG

    catalog, data = _two_radars(tmp_path)
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                **CONFIG,
                "train": [{"dataset": "east_radar"}],
                "validation": [{"dataset": "west_radar"}],
                "steps": 2,
                "validate_every": 2,
                "output_dir": str(tmp_path / "run"),
            }
        )
    )
    alone = runner.invoke(app, ["train", str(config), "--device", "cpu"])
    assert alone.exit_code == 2 and "no catalog entry 'east_radar'" in alone.output
    given = ["--catalog", str(catalog), "--data-dir", str(data)]
    result = runner.invoke(app, ["train", str(config), "--device", "cpu", *given])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["steps"] == 2


def test_calibrate_names_the_bad_option(tmp_path: Path) -> None:
    catalog, data = _two_radars(tmp_path)
    base = [
        "calibrate",
        "idw",
        str(tmp_path / "out.json"),
        "--catalog",
        str(catalog),
        "--data-dir",
        str(data),
        "--tasks",
        "2",
    ]
    cases = {
        ("--frames", "east_radar", "--method", "vector"): "give --frames of at least two datasets",
        ("--frames", "east_radar,a,b,c"): "--frames 'east_radar,a,b,c': expected DATASET[,START[,END]]",
        ("--frames", "east_radar", "--method", "platt"): "--method 'platt': expected temperature or vector",
        (
            "--frames",
            "east_radar",
            "--checkpoint",
            str(tmp_path / "model.safetensors"),
        ): "--checkpoint: model 'idw' does not load checkpoints",
        ("--frames", "nowhere"): "no catalog entry 'nowhere'",
        ("--frames", "east_radar,notatime"): "east_radar: start 'notatime' is not an ISO time",
        (
            "--frames",
            "east_radar,2020-01-01T00:10,2020-01-01T00:05",
        ): "east_radar: start 2020-01-01T00:10 is after",
        (
            "--frames",
            "east_radar,2031-01-01",
        ): "east_radar: no frame between 2031-01-01 and ...; it holds 2020",
    }
    for options, message in cases.items():
        result = runner.invoke(app, [*base, *options])
        assert result.exit_code == 2 and message in result.output, (options, result.output)
    assert not (tmp_path / "out.json").exists()
    nowhere = runner.invoke(
        app, [*base[:2], str(tmp_path / "no" / "out.json"), *base[3:], "--frames", "east_radar"]
    )
    assert nowhere.exit_code == 2 and f"its folder {tmp_path / 'no'} does not exist" in nowhere.output
