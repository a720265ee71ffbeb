"""Zarr ingest: equal to the lazy dataset, resumable after a crash or SIGKILL, safe on bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import weatherunc.pipelines.ingest as ingest_module
import weatherunc.store as store_module
from tests.conftest import REPOSITORY, tree_bytes, write_cf_netcdf, write_classic_netcdf, write_entry
from weatherunc.catalog import Catalog
from weatherunc.errors import InputDataError
from weatherunc.loading import open_dataset
from weatherunc.pipelines.ingest import ingest
from weatherunc.store import COMPLETE_ATTRIBUTE, StagedStore, open_store


@pytest.fixture(scope="module")
def embedded_catalog() -> Catalog:
    return Catalog.load()


def test_ingest_equals_lazy_dataset(tmp_path: Path, embedded_catalog: Catalog) -> None:
    out = tmp_path / "mrms.zarr"
    report = ingest("mrms_embedded", out, catalog=embedded_catalog, progress=False)
    assert (report.frames_total, report.frames_written, report.frames_already_done) == (36, 36, 0)
    assert not StagedStore(out).folder.exists()
    stored = open_store(out)
    lazy = open_dataset("mrms_embedded", catalog=embedded_catalog)
    xr.testing.assert_identical(
        stored.precipitation.compute().drop_vars(["latitude", "longitude"]),
        lazy.precipitation.compute().drop_vars(["latitude", "longitude"]),
    )
    np.testing.assert_allclose(stored.latitude.values, lazy.latitude.values)
    assert stored.attrs[COMPLETE_ATTRIBUTE] is True
    assert stored.precipitation.encoding["chunks"] == (1, 256, 256)
    assert stored["crs"].attrs["grid_mapping_name"] == "latitude_longitude"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "metadata not consolidated" warning
        plain = xr.open_zarr(out)
    assert plain.attrs[COMPLETE_ATTRIBUTE] is True and plain.sizes["time"] == 36


def test_second_run_finds_the_store_complete(tmp_path: Path, embedded_catalog: Catalog) -> None:
    out = tmp_path / "mrms.zarr"
    ingest("mrms_embedded", out, catalog=embedded_catalog, progress=False)
    report = ingest("mrms_embedded", out, catalog=embedded_catalog, progress=False)
    assert report.frames_written == 0 and report.frames_already_done == 36


def test_resume_after_crash_writes_only_missing_frames(
    tmp_path: Path, embedded_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "mrms.zarr"
    original = ingest_module._write_one

    calls: list[int] = []

    def crash_at_21st_frame(source, staged, index):
        calls.append(index)
        if len(calls) == 21:
            raise RuntimeError("simulated crash")
        return original(source, staged, index)

    monkeypatch.setattr(ingest_module, "_write_one", crash_at_21st_frame)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ingest("mrms_embedded", out, catalog=embedded_catalog, scheduler="synchronous", progress=False)
    staged = StagedStore(out)
    assert not out.exists(), "an unfinished store is never at the final path"
    finished = staged.finished_frames()
    assert finished == set(calls[:20])
    with pytest.raises(InputDataError, match="store complete"):
        open_store(staged.zarr_path)
    marker_times = {path.name: path.stat().st_mtime_ns for path in staged.markers.iterdir()}

    written: list[int] = []

    def recording(source, staged, index):
        written.append(index)
        return original(source, staged, index)

    monkeypatch.setattr(ingest_module, "_write_one", recording)
    report = ingest("mrms_embedded", out, catalog=embedded_catalog, scheduler="synchronous", progress=False)
    assert sorted(written) == sorted(set(range(36)) - finished)
    assert report.frames_already_done == 20 and report.frames_written == 16
    clean = tmp_path / "clean.zarr"
    monkeypatch.setattr(ingest_module, "_write_one", original)
    ingest("mrms_embedded", clean, catalog=embedded_catalog, progress=False)
    xr.testing.assert_identical(
        open_store(out).precipitation.compute(), open_store(clean).precipitation.compute()
    )
    assert len(marker_times) == 20


@pytest.mark.shared_data
def test_resume_after_sigkill(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "knmi.zarr"
    command = [
        sys.executable,
        "-m",
        "weatherunc.cli",
        "ingest",
        "knmi_sample_20100826",
        "--out",
        str(out),
        "--scheduler",
        "synchronous",
        "--data-dir",
        str(data_dir),
    ]
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY))
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    markers = StagedStore(out).markers
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if markers.is_dir() and len(list(markers.iterdir())) >= 5:
            break
        time.sleep(0.01)
    assert process.poll() is None, (
        f"ingest ended before it could be killed: {process.stderr.read().decode()[-2000:]}"
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = StagedStore(out).finished_frames()
    assert 5 <= len(done_before) < 92 and not out.exists()

    catalog = Catalog.load(data_root_dir=data_dir)
    report = ingest("knmi_sample_20100826", out, catalog=catalog, progress=False)
    assert report.frames_already_done == len(done_before)
    resumed = open_store(out).precipitation
    expected = open_dataset("knmi_sample_20100826", catalog=catalog).precipitation
    np.testing.assert_array_equal(resumed.values, expected.values)


def _synthetic_catalog(tmp_path: Path, values: np.ndarray) -> Catalog:
    data_root = tmp_path / "data"
    data_root.mkdir(exist_ok=True)
    write_cf_netcdf(data_root / "synthetic.nc", values=values)
    write_entry(tmp_path / "catalog")
    return Catalog.load([tmp_path / "catalog"], data_root_dir=data_root)


def test_bad_frame_leaves_no_partial_output_and_keeps_the_old_store(tmp_path: Path) -> None:
    good = np.ones((4, 6, 5))
    out = tmp_path / "synthetic.zarr"
    ingest("synthetic", out, catalog=_synthetic_catalog(tmp_path, good), progress=False)
    before = open_store(out).precipitation.values.copy()

    bad = good.copy()
    bad[2, 1, 1] = -3.0
    with pytest.raises(InputDataError, match="non-negative rate"):
        ingest("synthetic", out, catalog=_synthetic_catalog(tmp_path, bad), overwrite=True, progress=False)
    assert not StagedStore(out).folder.exists()
    np.testing.assert_array_equal(open_store(out).precipitation.values, before)

    fresh = tmp_path / "fresh.zarr"
    with pytest.raises(InputDataError):
        ingest("synthetic", fresh, catalog=_synthetic_catalog(tmp_path, bad), progress=False)
    assert not fresh.exists() and not StagedStore(fresh).folder.exists()


def test_truncated_classic_netcdf_is_refused_and_keeps_the_earlier_store(tmp_path: Path) -> None:
    """A classic NetCDF file cut short (its lost bytes would read as 0 mm/h) is refused as
    incomplete, and an ``overwrite`` ingest of it leaves the earlier store byte for byte."""
    data_root = tmp_path / "data"
    data_root.mkdir()
    path = write_classic_netcdf(
        data_root / "synthetic.nc", np.random.default_rng(2).gamma(0.5, 2.0, size=(3, 8, 10))
    )
    write_entry(tmp_path / "catalog")
    catalog = Catalog.load([tmp_path / "catalog"], data_root_dir=data_root)
    out = tmp_path / "synthetic.zarr"
    ingest("synthetic", out, catalog=catalog, progress=False)
    before = tree_bytes(out)

    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(InputDataError, match="file complete") as caught:
        ingest("synthetic", out, catalog=catalog, overwrite=True, progress=False)
    assert str(path) in str(caught.value)
    assert tree_bytes(out) == before
    assert not StagedStore(out).folder.exists()


def test_existing_store_of_other_content_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "synthetic.zarr"
    ingest("synthetic", out, catalog=_synthetic_catalog(tmp_path, np.ones((2, 3, 3))), progress=False)
    other = _synthetic_catalog(tmp_path, np.full((2, 3, 3), 2.0))
    with pytest.raises(FileExistsError, match=r"overwrite") as caught:
        ingest("synthetic", out, catalog=other, progress=False)
    assert "files[synthetic.nc]" in str(caught.value)  # the refusal names the changed file
    ingest("synthetic", out, catalog=other, overwrite=True, progress=False)
    assert float(open_store(out).precipitation.max()) == 2.0


def test_unfinished_ingest_of_other_input_needs_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "synthetic.zarr"
    catalog = _synthetic_catalog(tmp_path, np.ones((3, 3, 3)))
    monkeypatch.setattr(
        StagedStore, "complete", lambda self, *args, **kwargs: (_ for _ in ()).throw(RuntimeError("stop"))
    )
    with pytest.raises(RuntimeError):
        ingest("synthetic", out, catalog=catalog, progress=False)
    monkeypatch.undo()
    other = _synthetic_catalog(tmp_path, np.full((3, 3, 3), 4.0))
    with pytest.raises(FileExistsError, match="restart") as caught:
        ingest("synthetic", out, catalog=other, progress=False)
    assert "files[synthetic.nc]" in str(caught.value)
    ingest("synthetic", out, catalog=other, restart=True, progress=False)
    assert float(open_store(out).precipitation.min()) == 4.0


def test_kill_while_the_staging_folder_is_created_does_not_block_the_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ingest that dies after creating its staging folder but before writing the
    fingerprint leaves nothing that a re-run (without restart) refuses; the result equals a clean ingest."""
    values = np.random.default_rng(3).gamma(0.5, 2.0, size=(3, 4, 5))
    catalog = _synthetic_catalog(tmp_path, values)
    out = tmp_path / "synthetic.zarr"

    def killed(path: Path, text: str) -> None:
        raise RuntimeError("killed before the fingerprint was written")

    monkeypatch.setattr(store_module, "_write_atomically", killed)
    with pytest.raises(RuntimeError, match="killed"):
        ingest("synthetic", out, catalog=catalog, progress=False)
    monkeypatch.undo()
    report = ingest("synthetic", out, catalog=catalog, progress=False)
    assert report.frames_written == 3
    np.testing.assert_array_equal(open_store(out).precipitation.values, values.astype(np.float32))


def test_staging_folder_without_fingerprint_is_started_afresh(tmp_path: Path) -> None:
    """A staging folder that has no fingerprint (left by a kill during its creation) holds
    nothing usable: the next ingest starts it afresh instead of asking for restart."""
    values = np.random.default_rng(4).gamma(0.5, 2.0, size=(3, 4, 5))
    catalog = _synthetic_catalog(tmp_path, values)
    out = tmp_path / "synthetic.zarr"
    clean = tmp_path / "clean.zarr"
    ingest("synthetic", clean, catalog=catalog, progress=False)
    staged = StagedStore(out)
    (staged.zarr_path / "precipitation").mkdir(parents=True)
    staged.markers.mkdir()
    (staged.markers / "000001").touch()  # a marker without a fingerprint proves nothing
    report = ingest("synthetic", out, catalog=catalog, progress=False)
    assert report.frames_written == 3 and report.frames_already_done == 0
    xr.testing.assert_identical(
        open_store(out).precipitation.compute(), open_store(clean).precipitation.compute()
    )


def test_refusal_names_the_changed_catalog_field(tmp_path: Path) -> None:
    out = tmp_path / "synthetic.zarr"
    ingest("synthetic", out, catalog=_synthetic_catalog(tmp_path, np.ones((2, 3, 3))), progress=False)
    write_entry(tmp_path / "catalog", time_step_minutes=10)
    changed = Catalog.load([tmp_path / "catalog"], data_root_dir=tmp_path / "data")
    with pytest.raises(FileExistsError, match="overwrite") as caught:
        ingest("synthetic", out, catalog=changed, progress=False)
    assert "entry.time_step_minutes: 5.0 -> 10.0" in str(caught.value)
    assert "files[" not in str(caught.value)  # the file did not change


def test_unfinished_store_is_not_openable_as_zarr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No zarr reader opens the staged store of an unfinished ingest (it would show the
    unwritten frames as NaN); open_store names it incomplete; the finished store opens."""
    values = np.random.default_rng(5).gamma(0.5, 2.0, size=(4, 5, 6))
    catalog = _synthetic_catalog(tmp_path, values)
    out = tmp_path / "synthetic.zarr"
    original = ingest_module._write_one
    calls: list[int] = []

    def crash_at_third_frame(source, staged, index):
        calls.append(index)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return original(source, staged, index)

    monkeypatch.setattr(ingest_module, "_write_one", crash_at_third_frame)
    with pytest.raises(RuntimeError, match="killed"):
        ingest("synthetic", out, catalog=catalog, scheduler="synchronous", progress=False)
    monkeypatch.undo()
    staged = StagedStore(out)
    assert staged.finished_frames() == set(calls[:2])
    for path in (staged.folder, staged.zarr_path):
        with pytest.raises(FileNotFoundError):
            xr.open_zarr(path, consolidated=False)
        with pytest.raises(FileNotFoundError):
            xr.open_zarr(path)
    with pytest.raises(InputDataError, match="store complete"):
        open_store(staged.zarr_path)

    ingest("synthetic", out, catalog=catalog, progress=False)
    np.testing.assert_array_equal(
        xr.open_zarr(out, consolidated=False).precipitation.values, values.astype(np.float32)
    )


def test_process_scheduler(tmp_path: Path) -> None:
    out = tmp_path / "synthetic.zarr"
    values = np.random.default_rng(1).gamma(0.4, 3.0, size=(6, 10, 12))
    ingest(
        "synthetic",
        out,
        catalog=_synthetic_catalog(tmp_path, values),
        scheduler="processes",
        workers=2,
        progress=False,
    )
    np.testing.assert_allclose(open_store(out).precipitation.values, values.astype(np.float32))


def test_station_set_ingest(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "sic97.zarr"
    catalog = Catalog.load(data_root_dir=data_dir)
    report = ingest("sic97", out, catalog=catalog, progress=False)
    assert report.frames_total == 1
    stored = open_store(out)
    assert stored.sizes["station"] == 100
    np.testing.assert_array_equal(
        stored.precipitation.values, open_dataset("sic97", catalog=catalog).precipitation.values
    )
    assert "altitude_m" in stored.coords


def test_open_store_refuses_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_store(tmp_path / "absent.zarr")
