"""Batch jobs on the embedded MRMS sample: outputs, SIGKILL at many points, a killed Dask worker, refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from tests.conftest import tree_bytes, write_entry
from weatherunc import conventions
from weatherunc.catalog import Catalog
from weatherunc.fill_outputs import OBSERVATION_ATTRS
from weatherunc.pipelines.job_config import JobConfig, load_job_config
from weatherunc.pipelines.job_store import JobStore
from weatherunc.pipelines.run_job import JobStateError, run_job

JOB = {
    "name": "mrms_idw",
    "dataset": "mrms_embedded",
    "frames": {"start": "2019-06-10T00:30", "stride": 10, "limit": 2},
    "targets": {"mode": "withheld", "blocks": 3, "block_pixels": 24, "min_wet_fraction": 0.2},
    "model": {"name": "idw"},
    "tiling": {"tile_pixels": 64, "halo_pixels": 16, "max_context": 1000},
    "plots": {"enabled": False},
}


def _job(tmp_path: Path, **overrides) -> JobConfig:
    return JobConfig(**{**JOB, "output_dir": str(tmp_path), **overrides})


def _load(store: Path) -> xr.Dataset:
    return xr.open_zarr(store, consolidated=False).load()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    root = tmp_path_factory.mktemp("clean")
    report = run_job(
        _job(root, plots={"enabled": True, "frames": [0]}), scheduler="synchronous", progress=False
    )
    assert report.tiles_total == report.tiles_written == 2 * 16
    metrics = json.loads(report.metrics.read_text())
    assert (
        metrics["n_target"] > 0
        and 0 < metrics["scores"]["coverage_90"] <= 1
        and "ece_top_label" in metrics["probability"]
    )
    assert metrics["tiles_computed"] == metrics["tiles_total"] == 2 * 16
    assert {path.name for path in report.figures} >= {"20190610T0030_panel.png", "reliability_1mmh.png"}
    return _load(report.store)


def test_store_contents_and_provenance(clean: xr.Dataset) -> None:
    assert (
        clean.attrs["weatherunc_complete"] == 1
        and json.loads(clean.attrs["job_config"])["model"]["name"] == "idw"
    )
    assert json.loads(clean.attrs["provenance"])["observations"]
    assert "torch" in json.loads(clean.attrs["software_versions"])
    for name in (
        "precipitation_mean",
        "precipitation_std",
        "precipitation_quantile",
        "exceedance_probability",
        "bin_probability",
        "rain_probability",
        "observation",
        "withheld_precipitation",
    ):
        assert name in clean, name
    assert clean.precipitation_mean.dims[:3] == ("time", "y", "x") and clean.crs.attrs["crs_wkt"]
    withheld = clean.observation.values == conventions.WITHHELD
    assert withheld.any()
    np.testing.assert_array_equal(
        np.isfinite(clean.precipitation_mean.values), withheld
    )  # predicted exactly where withheld
    assert np.all(np.isnan(clean.precipitation.values[withheld])) and np.all(
        np.isfinite(clean.withheld_precipitation.values[withheld])
    )
    np.testing.assert_allclose(clean.bin_probability.sum("bin").values[withheld], 1.0, rtol=1e-5)


def _write_config(tmp_path: Path, **overrides) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({**JOB, "output_dir": str(tmp_path / "out"), **overrides}))
    return path


def _run_cli(config: Path, crash_at: str | None = None, kill_after: float | None = None) -> int:
    """Run the job in a process of its own; ``crash_at`` (``POINT:N``): SIGKILL there
    (:mod:`tests.crash_injection`)."""
    runner = ["tests.crash_injection", crash_at] if crash_at else ["weatherunc.cli", "run"]
    command = [sys.executable, "-m", *runner, str(config), "--scheduler", "synchronous"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    process.wait()
    return process.returncode


def test_sigkill_at_many_points_then_resume_equals_clean_run(clean: xr.Dataset, tmp_path: Path) -> None:
    config = _write_config(tmp_path)
    store = tmp_path / "out" / "mrms_idw" / "prediction.zarr"
    # Every kind of point, most more than once, each run resuming the one killed before it.
    points = [
        "tile-half:2",
        "marker-temporary:3",
        "tile-done:2",
        "tile-half:4",
        "marker-temporary:2",
        "before-complete:1",
    ]
    for point in points:
        assert _run_cli(config, crash_at=point) == -signal.SIGKILL, point
        assert not store.exists(), f"a store was published before completion ({point})"
    killed_by_time = 0
    for delay in (4.0, 5.5):  # random moments: whatever the process is doing then
        if _run_cli(config, kill_after=delay) == -signal.SIGKILL:
            killed_by_time += 1
            assert not store.exists() or _load(store).attrs.get("weatherunc_complete") == 1
    if not store.exists():
        assert _run_cli(config) == 0
        metrics = json.loads((store.parent / "metrics.json").read_text())
        assert metrics["tiles_computed"] < metrics["tiles_total"]  # the resumed run's share
    resumed = _load(store)
    xr.testing.assert_identical(resumed.drop_attrs(), clean.drop_attrs())
    assert resumed.attrs["weatherunc_job_fingerprint"] == clean.attrs["weatherunc_job_fingerprint"]


def test_changed_config_refuses_to_resume(tmp_path: Path) -> None:
    config = _write_config(tmp_path)
    assert _run_cli(config, crash_at="tile-done:3") == -signal.SIGKILL
    changed = load_job_config(config, targets={**JOB["targets"], "blocks": 2})
    with pytest.raises(JobStateError, match="unfinished run of another job config") as caught:
        run_job(changed, scheduler="synchronous", progress=False)
    assert "job.targets.blocks: 3 -> 2" in str(caught.value)  # the refusal says what changed, and only that
    assert "observations" not in str(caught.value) and "model_checkpoint_sha256" not in str(caught.value)
    finished = run_job(load_job_config(config), scheduler="synchronous", progress=False)
    with pytest.raises(JobStateError, match="holds the output of another job config") as caught:
        run_job(changed, scheduler="synchronous", progress=False)
    assert "job.targets.blocks: 3 -> 2" in str(caught.value)
    assert (
        run_job(changed, scheduler="synchronous", restart=True, progress=False).tiles_written
        == finished.tiles_total
    )


def test_kill_while_the_staging_folder_is_created_does_not_block_the_rerun(
    clean: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that dies after creating ``prediction.zarr.partial`` but before writing its
    fingerprint is resumed by a plain re-run, which equals a clean run."""
    job = _job(tmp_path)
    original = xr.Dataset.to_zarr

    def killed_for_the_prediction(self: xr.Dataset, store, *args, **kwargs):
        if "prediction.zarr" in str(store):
            raise RuntimeError("killed while the staging folder was created")
        return original(self, store, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_zarr", killed_for_the_prediction)
    with pytest.raises(RuntimeError, match="killed"):
        run_job(job, scheduler="synchronous", progress=False)
    monkeypatch.undo()
    report = run_job(job, scheduler="synchronous", progress=False)
    xr.testing.assert_identical(_load(report.store).drop_attrs(), clean.drop_attrs())


def test_staging_folder_without_fingerprint_is_started_afresh(clean: xr.Dataset, tmp_path: Path) -> None:
    job = _job(tmp_path)
    manifest = job.run_dir / "prediction.zarr.partial" / "tiles"
    manifest.mkdir(parents=True)
    (manifest / "00000_00000").touch()  # an entry without a fingerprint proves nothing
    report = run_job(job, scheduler="synchronous", progress=False)
    assert report.tiles_written == report.tiles_total
    xr.testing.assert_identical(_load(report.store).drop_attrs(), clean.drop_attrs())


def _copied_input(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A catalog folder with entry ``mrms_copy`` reading a copy of the embedded MRMS file;
    returns (catalog folder, data root, the copied file)."""
    embedded = Catalog.load()
    source = embedded.resolve_files(embedded.get("mrms_embedded"))[0]
    data_root = tmp_path / "data"
    data_root.mkdir()
    copy = data_root / "mrms_copy.nc"
    shutil.copy(source, copy)
    entry = embedded.get("mrms_embedded")
    write_entry(
        tmp_path / "catalog",
        name="mrms_copy",
        files=copy.name,
        variable=entry.variable,
        units=entry.units,
        time_step_minutes=entry.time_step_minutes,
        crs=entry.crs,
    )
    return tmp_path / "catalog", data_root, copy


def _halve_first_frame(path: Path) -> None:
    dataset = xr.load_dataset(path)
    dataset["precipitation_rate"].values[0] *= 0.5
    dataset.to_netcdf(path)


def test_an_unknown_dataset_is_refused_before_the_run_folder_is_made(tmp_path: Path) -> None:
    job = _job(tmp_path, dataset="no_such_dataset")
    with pytest.raises(KeyError, match="no_such_dataset"):
        run_job(job, scheduler="synchronous", progress=False)
    assert not job.run_dir.exists()


def test_observation_flags_of_targets_observed_and_not() -> None:
    from weatherunc.pipelines.stages import observation_flags

    values = np.array([[1.0, np.nan], [0.0, np.nan]])
    targets = np.array([[True, True], [False, False]])
    flags = observation_flags(values, targets)
    assert flags.dtype == np.int8
    np.testing.assert_array_equal(
        flags, [[conventions.WITHHELD, conventions.FILLED], [conventions.OBSERVED, conventions.UNFILLED]]
    )


def test_an_operational_job_flags_its_predicted_gap_pixels_filled(tmp_path: Path) -> None:
    """``targets: {mode: unobserved}``: the gap's pixels within reach are predicted and flagged
    filled, those beyond it unfilled (NaN), and so are targets whose tile holds no observation;
    the observed ones observed; none is withheld, and the flags mean what
    :func:`weatherunc.fill`'s do."""
    catalog_folder, data_root, copy = _copied_input(tmp_path)
    dataset = xr.load_dataset(copy)
    dataset["precipitation_rate"].values[:, 100:130, 60:90] = np.nan  # a gap
    dataset["precipitation_rate"].values[:, :, 128:] = np.nan  # beyond the radar's range
    dataset.to_netcdf(copy)
    job = _job(
        tmp_path / "out",
        dataset="mrms_copy",
        frames={"start": "2019-06-10T00:30", "limit": 1},
        targets={"mode": "unobserved", "max_distance_pixels": 8},
        model={"name": "idw"},
        tiling={**JOB["tiling"], "halo_pixels": 0},  # the tiles from column 128 see no observation
    )
    catalog = Catalog.load([catalog_folder], data_root_dir=data_root)
    store = _load(run_job(job, scheduler="synchronous", progress=False, catalog=catalog).store)
    flags, mean = store.observation.values[0], store.precipitation_mean.values[0]
    observed = np.isfinite(store.precipitation.values[0])
    assert store.observation.attrs["flag_meanings"] == OBSERVATION_ATTRS["flag_meanings"]
    np.testing.assert_array_equal(flags == conventions.OBSERVED, observed)
    np.testing.assert_array_equal(flags == conventions.FILLED, np.isfinite(mean))
    assert not (flags == conventions.WITHHELD).any()
    assert (flags[115, 65:85] == conventions.FILLED).any() and flags[115, 75] == conventions.UNFILLED
    assert (flags[:, 128:] == conventions.UNFILLED).all()  # targets up to column 135, none predicted


def test_changed_input_is_refused_before_the_observations_are_touched(tmp_path: Path) -> None:
    """A re-run after the input file changed is refused, and the run folder keeps the
    observations (and prediction) of the first run byte for byte."""
    catalog_folder, data_root, copy = _copied_input(tmp_path)
    job = _job(tmp_path / "out", dataset="mrms_copy", frames={"start": "2019-06-10T00:30", "limit": 1})
    run_job(
        job,
        scheduler="synchronous",
        progress=False,
        catalog=Catalog.load([catalog_folder], data_root_dir=data_root),
    )
    observations_before = tree_bytes(job.run_dir / "observations.zarr")
    prediction_before = tree_bytes(job.run_dir / "prediction.zarr")

    _halve_first_frame(copy)
    with pytest.raises(
        JobStateError, match="holds the output of another job config, input or model"
    ) as caught:
        run_job(
            job,
            scheduler="synchronous",
            progress=False,
            catalog=Catalog.load([catalog_folder], data_root_dir=data_root),
        )
    assert "observations.files[mrms_copy.nc]" in str(caught.value)  # names the changed input file
    assert tree_bytes(job.run_dir / "observations.zarr") == observations_before
    assert tree_bytes(job.run_dir / "prediction.zarr") == prediction_before


def write_tile_stopping_after(count: int, counted: Callable[[dict], bool] = lambda kwargs: True) -> Callable:
    """A ``JobStore.write_tile`` that raises ``RuntimeError("stopped")`` once ``count`` tiles for which
    ``counted(keyword arguments)`` holds have been written: a job killed there."""
    original, written = JobStore.write_tile, []

    def write_tile(self: JobStore, *args, **kwargs) -> None:
        if len(written) == count:
            raise RuntimeError("stopped")
        if counted(kwargs):
            written.append(1)
        original(self, *args, **kwargs)

    return write_tile


def test_unfinished_job_store_is_not_openable_as_zarr(
    clean: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No zarr reader opens the staged store of an unfinished job (unwritten tiles would read
    as NaN); the resumed job's store opens and equals a clean run."""
    job = _job(tmp_path)
    monkeypatch.setattr(JobStore, "write_tile", write_tile_stopping_after(3))
    with pytest.raises(RuntimeError, match="stopped"):
        run_job(job, scheduler="synchronous", progress=False)
    monkeypatch.undo()
    store = JobStore(job.run_dir / "prediction.zarr")
    assert len(store.finished()) == 3
    for path in (store.folder, store.zarr_path):
        with pytest.raises(FileNotFoundError):
            xr.open_zarr(path, consolidated=False)
    report = run_job(job, scheduler="synchronous", progress=False)
    assert report.tiles_written == report.tiles_total - 3
    xr.testing.assert_identical(_load(report.store).drop_attrs(), clean.drop_attrs())


def test_bad_job_config_names_the_field(tmp_path: Path) -> None:
    path = _write_config(tmp_path, tiling={"tile_pixels": 2}, name="bad name")
    with pytest.raises(
        ValueError,
        match=(
            r"name: String should match pattern.*tiling.tile_pixels: Input should be greater than or "
            r"equal to 8"
        ),
    ):
        load_job_config(path)
    for escaping in ("..", ".", ".hidden"):  # a name is a folder of output_dir, never its parent
        with pytest.raises(ValueError, match="name: String should match pattern"):
            load_job_config(_write_config(tmp_path, name=escaping))


def test_a_job_refuses_a_calibration_fitted_for_other_weights(tmp_path: Path) -> None:
    from weatherunc.heads.calibration import Calibration, StdScaling
    from weatherunc.models.registry import get_model

    other = tmp_path / "other.json"
    Calibration(std=StdScaling(1.2), model="anp", checkpoint_sha256="0" * 64).save(other)
    job = _job(tmp_path, model={"name": "anp"}, calibration=str(other))
    with pytest.raises(
        ValueError, match=r"other\.json was fitted for anp with checkpoint sha256 000000000000"
    ):
        run_job(job, scheduler="synchronous", progress=False)
    assert not job.run_dir.exists()  # refused before the run folder is made
    own = tmp_path / "own.json"
    Calibration(std=StdScaling(1.2), model="anp", checkpoint_sha256=get_model("anp").checkpoint_sha256).save(
        own
    )
    from weatherunc.pipelines.stages import checked_calibration

    assert checked_calibration(_job(tmp_path, model={"name": "anp"}, calibration=str(own))).std.factor == 1.2
    unrecorded = tmp_path / "unrecorded.json"  # a file written before calibrations recorded their weights
    unrecorded.write_text(json.dumps({"probability": None, "std": {"factor": 1.1}, "fitted_on": "x"}))
    assert checked_calibration(_job(tmp_path, model={"name": "anp"}, calibration=str(unrecorded))).model == ""


def test_self_calibration_options_of_a_job_are_read_and_checked(tmp_path: Path) -> None:
    window = {"self": {"window_frames": 2, "options": {"evidence_draws": 2, "distance_edges_km": [0, 3, 9]}}}
    job = load_job_config(_write_config(tmp_path, calibration=window))
    assert job.self_calibration_window == 2
    assert job.self_calibration_options == {"evidence_draws": 2, "distance_edges_km": [0, 3, 9]}
    from weatherunc.pipelines.stages import load_model

    model = load_model(job)
    assert model.options.evidence_draws == 2 and model.options.distance_edges_km == (0, 3, 9)
    # without options the dump (and so the fingerprint of an older job) is as before
    assert _job(tmp_path, calibration={"self": {"window_frames": 2}}).model_dump()["calibration"] == {
        "self": {"window_frames": 2}
    }
    for options, message in (
        ({"evidence_draws": 0}, "evidence_draws must be in"),
        ({"nope": 1}, "SelfCalibrationOptions has no field 'nope'"),
    ):
        with pytest.raises(ValueError, match=rf"calibration\.self: Value error, {message}") as raised:
            load_job_config(_write_config(tmp_path, calibration={"self": {"options": options}}))
        assert "not a valid path" not in str(raised.value)  # the union's other branch is not reported


def test_a_job_with_an_unknown_model_or_option_fails_before_writing(tmp_path: Path) -> None:
    for model, message in (
        ({"name": "gpp"}, "unknown model 'gpp'"),
        ({"name": "idw", "options": {"neighbors": 3}}, "neighbors"),
        ({"name": "gp", "options": {"config": {"small_network_variance_rule": "median"}}}, "variance_rule"),
    ):
        job = _job(tmp_path / model["name"], model=model)
        with pytest.raises(
            ValueError, match=rf"model '{model['name']}' with options .*{message}.*model\.name"
        ):
            run_job(job, scheduler="synchronous", progress=False)
        assert not job.run_dir.exists()
    from weatherunc.models.registry import get_model

    gp = get_model("gp", config={"small_network_variance_rule": "coverage", "offset_candidates": [1.0]})
    assert gp.config.small_network_variance_rule == "coverage" and gp.config.offset_candidates == (1.0,)


def test_killed_dask_worker_does_not_fail_the_job(clean: xr.Dataset, tmp_path: Path) -> None:
    from distributed import LocalCluster

    from weatherunc.pipelines.execution import restored_environment

    job = _job(tmp_path)
    manifest = tmp_path / "mrms_idw" / "prediction.zarr.partial" / "tiles"
    # The environment restored: the nannies set OMP_NUM_THREADS=1 in it, for every later test's processes.
    with (
        restored_environment(),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
    ):
        pids = [nanny.process.pid for nanny in cluster.workers.values()]
        killed: list[int] = []

        def kill_one_worker() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if manifest.is_dir() and len(list(manifest.iterdir())) >= 4:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_one_worker)
        killer.start()
        report = run_job(job, scheduler=cluster.scheduler_address, progress=False)
        killer.join()
    assert killed, "no worker was killed"
    xr.testing.assert_identical(_load(report.store).drop_attrs(), clean.drop_attrs())


def test_gp_job_records_each_tiles_transform_offset(tmp_path: Path) -> None:
    """The GP chooses its transform offset per tile; the store keeps it per pixel, so the stored
    transformed moments give back the stored median, and verification scores each tile with it."""
    job = _job(
        tmp_path, name="mrms_gp", model={"name": "gp"}, frames={"start": "2019-06-10T00:30", "limit": 1}
    )
    report = run_job(job, scheduler="synchronous", progress=False)
    store = _load(report.store)
    withheld = store.observation.values == conventions.WITHHELD
    offsets = store.transform_offset.values[withheld]
    assert np.all(np.min(np.abs(offsets[:, None] - np.array([0.3, 1.0, 3.0])), axis=1) < 1e-6)
    assert len(np.unique(offsets)) > 1  # tiles of this frame chose different offsets
    median = store.precipitation_quantile.sel(quantile=0.5).values[withheld]
    np.testing.assert_allclose(
        median,
        np.maximum(np.exp(store.transformed_mean.values[withheld]) - offsets, 0.0),
        rtol=1e-4,
        atol=1e-4,
    )
    assert json.loads(report.metrics.read_text())["scores"]["crps"] > 0


def test_gp_job_sharing_one_fit_per_frame_fits_once_per_frame(tmp_path: Path, monkeypatch) -> None:
    """With ``tiling.share_fit`` the GP is fitted once for the frame, not per tile (the job of
    :func:`test_gp_job_records_each_tiles_transform_offset`, whose tiles chose different offsets):
    every withheld pixel has the frame's one offset, and the threaded scheduler writes the same."""
    from weatherunc.models.gp import interpolator

    fits = []
    original = interpolator.fit_task
    monkeypatch.setattr(
        interpolator, "fit_task", lambda task, config: fits.append(task.description) or original(task, config)
    )
    options = {
        "name": "mrms_gp_shared",
        "model": {"name": "gp"},
        "frames": {"start": "2019-06-10T00:30", "limit": 1},
        "tiling": {**JOB["tiling"], "share_fit": True},
    }
    report = run_job(_job(tmp_path / "synchronous", **options), scheduler="synchronous", progress=False)
    frame_fits = [description for description in fits if description.startswith("the frame's")]
    assert len(frame_fits) == 1 and len(fits) == 2  # and one on the tiny task that probes the outputs
    store = _load(report.store)
    withheld = store.observation.values == conventions.WITHHELD
    tiles = {(row // 64, column // 64) for row, column in zip(*np.nonzero(withheld[0]))}
    assert len(tiles) > 1 and len(np.unique(store.transform_offset.values[withheld])) == 1
    threaded = run_job(_job(tmp_path / "threads", **options), scheduler="threads", workers=2, progress=False)
    xr.testing.assert_identical(_load(threaded.store).drop_attrs(), store.drop_attrs())
    assert "share_fit" not in _job(tmp_path).description()["tiling"]  # fingerprints of older jobs kept
