"""The training loop on the embedded MRMS sample (no shared data needed): resume, refusals, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from weatherunc.models.neural_process.interpolator import load_neural_process
from weatherunc.training.config import TrainingConfig, load_training_config
from weatherunc.training.loop import train
from weatherunc.training.run_folder import latest_checkpoint

CONFIG = {
    "name": "tiny",
    "model": {"hidden": 16, "latent_dimension": 4, "heads": 2, "self_attention_layers": 1, "dropout": 0.1},
    "sampling": {"context_points": [8, 32], "target_points": 32, "patch_km": [20, 40], "block_km": [4, 10]},
    "train": [{"dataset": "mrms_embedded", "end": "2019-06-10T00:40", "stride": 4}],
    "validation": [{"dataset": "mrms_embedded", "start": "2019-06-10T00:50", "stride": 4}],
    "steps": 8,
    "batch_size": 2,
    "validate_every": 4,
    "validation_tasks": 2,
    "checkpoint_every": 2,
}


def _config(tmp_path: Path, name: str, **overrides) -> TrainingConfig:
    return TrainingConfig(**{**CONFIG, "output_dir": tmp_path / name, **overrides})


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _assert_same(first: Path, second: Path) -> None:
    a, b = _weights(first), _weights(second)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("training")
    result = train(_config(root, "clean"), progress=False)
    assert result.steps == 8 and (root / "clean" / "best.safetensors").exists()
    assert [entry["step"] for entry in result.history] == [4, 8]
    assert {"crps", "nlpd", "coverage_90"} <= set(result.history[0])
    return root / "clean"


def test_resumed_run_equals_uninterrupted_run(clean_run: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, "resumed")
    first = train(
        config, stop_after=5, progress=False
    )  # stops after step 5; last checkpoint is step 4... and 5
    assert first.steps == 5
    second = train(config, progress=False)
    assert second.steps == 8
    _assert_same(clean_run / "last-00000008.safetensors", tmp_path / "resumed" / "last-00000008.safetensors")
    _assert_same(clean_run / "best.safetensors", tmp_path / "resumed" / "best.safetensors")


def test_changed_config_refuses_to_resume(clean_run: Path, tmp_path: Path) -> None:
    from weatherunc.checkpoints import CheckpointError

    config = _config(tmp_path, "changed", steps=4)
    train(config, progress=False)
    changed = _config(tmp_path, "changed", steps=4, learning_rate=1e-3)
    with pytest.raises(CheckpointError, match="another training config"):
        train(changed, progress=False)
    assert train(changed, restart=True, progress=False).steps == 4


def test_incomplete_newest_checkpoint_is_skipped(clean_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(clean_run, copy)
    (copy / "last-00000008.safetensors").write_bytes(b"half written")
    assert (
        latest_checkpoint(copy, "last") is None
        or latest_checkpoint(copy, "last").name != "last-00000008.safetensors"
    )


def test_bfloat16_precision_trains_on_cpu(tmp_path: Path) -> None:
    result = train(_config(tmp_path, "bf16", steps=2, precision="bfloat16", validate_every=2), progress=False)
    model, _ = load_neural_process(result.best_checkpoint)
    assert all(torch.isfinite(tensor).all() for tensor in model.state_dict().values())


def test_bad_config_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "batch_size": 0, "sampling": {"patch_km": [50, 10]}}))
    with pytest.raises(
        ValueError, match=r"batch_size: Input should be greater than or equal to 1.*|sampling: .*patch_km"
    ):
        load_training_config(path)


def test_selected_frames_name_a_bad_selection() -> None:
    import numpy as np
    import xarray as xr

    from weatherunc.training.config import FrameSelection, selected_frames

    times = np.array(["2020-01-01T00:00", "2020-01-01T00:05", "2020-01-01T00:10"], dtype="datetime64[ns]")
    grid = xr.Dataset({"precipitation": (("time", "y", "x"), np.zeros((3, 2, 2)))}, coords={"time": times})
    kept = selected_frames(grid, FrameSelection(dataset="radar", start="2020-01-01T00:05"))
    assert kept.sizes["time"] == 2
    assert selected_frames(grid, FrameSelection(dataset="radar", stride=2)).sizes["time"] == 2
    zoned = FrameSelection(dataset="radar", start="2020-01-01T01:05+01:00", end="2020-01-01T00:05")
    assert selected_frames(grid, zoned).sizes["time"] == 1  # a zoned time is read as UTC
    assert selected_frames(grid, FrameSelection(dataset="radar", end="2020-01-01")).sizes["time"] == 3
    rest_of_day = FrameSelection(dataset="radar", start="2020-01-01T00:05", end="2020-01-01")  # the whole day
    assert selected_frames(grid, rest_of_day).sizes["time"] == 2
    cases = {
        FrameSelection(dataset="radar", end="soon"): "radar: end 'soon' is not an ISO time",
        FrameSelection(dataset="radar", start="2020-01-01T00:10", end="2020-01-01T00:05"): "is after end",
        FrameSelection(dataset="radar", start="2021-01-01"): "no frame between 2021-01-01 and ...; it holds",
    }
    for selection, message in cases.items():
        with pytest.raises(ValueError, match=message):
            selected_frames(grid, selection)
    stations = xr.Dataset({"precipitation": (("station",), np.zeros(4))})
    with pytest.raises(
        ValueError, match=r"gauges: holds no gridded frames over time \(dimensions \('station',\)\)"
    ):
        selected_frames(stations, FrameSelection(dataset="gauges"))


def test_cli_training_killed_with_sigkill_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """A CLI run killed with SIGKILL and started again ends with the weights of an uninterrupted CLI run.

    Both runs are separate processes with the same environment, so they are compared bit for bit.
    """

    def command_for(name: str) -> list[str]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**CONFIG, "steps": 8, "output_dir": str(tmp_path / name)}))
        return [sys.executable, "-m", "weatherunc.cli", "train", str(path)]

    uninterrupted = subprocess.run(command_for("uninterrupted"), capture_output=True, text=True)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    command = command_for("killed")
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "killed").glob("last-*.json")):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (tmp_path / "killed" / "last-00000008.json").exists(), "the run finished before it was killed"
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "resuming" in finished.stdout and "from its checkpoint of step" in finished.stdout
    _assert_same(
        tmp_path / "uninterrupted" / "last-00000008.safetensors",
        tmp_path / "killed" / "last-00000008.safetensors",
    )


def test_sampled_batches_are_normalised_reproducible_and_sized() -> None:
    import numpy as np

    from weatherunc.models.neural_process.config import NeuralProcessConfig
    from weatherunc.training.config import FrameSelection, SamplingOptions
    from weatherunc.training.sampling import FrameBank, sample_batch

    bank = FrameBank.load(
        [FrameSelection(dataset="mrms_embedded", end="2019-06-10T00:20", stride=5)], progress=False
    )
    assert [frame.label[-5:] for frame in bank.frames] == [
        "00:00",
        "00:10",
        "00:20",
    ]  # 2-min frames, every 5th
    assert 0.8 < bank.frames[0].pixel_km < 1.2
    config = NeuralProcessConfig(hidden=16, heads=2, value_centre=0.5, value_scale=1.0)
    options = SamplingOptions(context_points=(10, 40), target_points=30, patch_km=(20, 40))
    first = sample_batch(bank, config, options, 3, np.random.default_rng(4))
    again = sample_batch(bank, config, options, 3, np.random.default_rng(4))
    assert first.context_inputs.shape[0] == 3 and 10 <= first.context_inputs.shape[1] <= 40
    assert first.target_inputs.shape == (3, 30, 2) and first.target_bins.shape == (3, 30)
    assert torch.equal(first.context_inputs, again.context_inputs) and torch.equal(
        first.target_values, again.target_values
    )
    assert first.context_inputs.abs().max() <= 40 / 32  # centred on the patch, in units of 32 km
    assert 0 <= int(first.target_bins.min()) and int(first.target_bins.max()) < config.bins


def test_intensity_scale_multiplies_each_task_rates() -> None:
    import numpy as np

    from weatherunc.models.neural_process.config import NeuralProcessConfig
    from weatherunc.training.config import FrameSelection, SamplingOptions
    from weatherunc.training.sampling import FrameBank, sample_batch

    bank = FrameBank.load([FrameSelection(dataset="mrms_embedded", end="2019-06-10T00:04")], progress=False)
    config = NeuralProcessConfig(hidden=16, heads=2, value_centre=0.5, value_scale=1.5)
    plain, doubled = (
        sample_batch(
            bank,
            config,
            SamplingOptions(
                context_points=(10, 40),
                target_points=30,
                patch_km=(20, 40),
                min_wet_fraction=0.2,
                dry_patch_fraction=0.0,
                intensity_scale=scale,
            ),
            1,
            np.random.default_rng(7),
        )
        for scale in ((1.0, 1.0), (2.0, 2.0))
    )

    def rates(values: torch.Tensor) -> np.ndarray:
        return config.transform.inverse(values.double().numpy() * config.value_scale + config.value_centre)

    assert torch.equal(plain.target_inputs, doubled.target_inputs)  # the same task, drawn before the factor
    assert rates(plain.target_values).max() > 0.5
    np.testing.assert_allclose(
        rates(doubled.target_values), 2.0 * rates(plain.target_values), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        rates(doubled.context_values), 2.0 * rates(plain.context_values), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="intensity_scale"):
        SamplingOptions(intensity_scale=(2.0, 1.0))


def _assert_same_batches(first, second) -> None:
    for name in ("context_inputs", "context_values", "target_inputs", "target_values", "target_bins"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name


def test_batch_stream_draws_the_same_batches_with_and_without_workers() -> None:
    import numpy as np

    from weatherunc.models.neural_process.config import NeuralProcessConfig
    from weatherunc.training.config import FrameSelection, SamplingOptions
    from weatherunc.training.sampling import FrameBank, StepBatches, batch_stream, step_generator

    bank = FrameBank.load(
        [FrameSelection(dataset="mrms_embedded", end="2019-06-10T00:20", stride=5)], progress=False
    )
    batches = StepBatches(
        bank,
        NeuralProcessConfig(hidden=16, heads=2, value_centre=0.5, value_scale=1.0),
        SamplingOptions(context_points=(10, 40), target_points=30, patch_km=(20, 40)),
        3,
        seed=11,
    )
    inline = list(batch_stream(batches, range(3, 8)))
    ahead = list(batch_stream(batches, range(3, 8), workers=2))
    assert len(inline) == len(ahead) == 5
    for first, second in zip(inline, ahead):
        _assert_same_batches(first, second)
    _assert_same_batches(inline[2], batches[5])  # the stream is in step order
    assert not torch.equal(inline[0].target_inputs, inline[1].target_inputs)  # each step has its own draw
    assert step_generator(11, 5).integers(2**62) == np.random.default_rng([11, 5]).integers(2**62)
    with pytest.raises(ValueError, match="workers must be >= 0"):
        batch_stream(batches, range(2), workers=-1)
    with pytest.raises(ValueError, match="step must be >= 0"):
        step_generator(0, -1)


def test_training_with_sampling_workers_equals_training_without(clean_run: Path, tmp_path: Path) -> None:
    """Batches drawn ahead by two processes give the same weights; the worker count is not in the fingerprint,
    so a run started with workers resumes without them (and the other way round)."""
    with_workers = _config(tmp_path, "workers", sampling_workers=2)
    assert with_workers.fingerprint() == _config(tmp_path, "workers").fingerprint()
    assert train(with_workers, stop_after=5, progress=False).steps == 5
    assert train(_config(tmp_path, "workers"), progress=False).steps == 8
    _assert_same(clean_run / "last-00000008.safetensors", tmp_path / "workers" / "last-00000008.safetensors")
    _assert_same(clean_run / "best.safetensors", tmp_path / "workers" / "best.safetensors")


def test_packed_training_data_round_trips_and_trains_the_same(tmp_path: Path) -> None:
    import numpy as np

    from weatherunc.training.packing import load_training_data, pack_training_data
    from weatherunc.training.sampling import FrameBank
    from weatherunc.training.validation import validation_tasks

    config = _config(tmp_path, "from_catalog", steps=4, validate_every=2)
    path = pack_training_data(config, tmp_path / "pack.npz", progress=False)
    assert not list(tmp_path.glob("*.partial*"))  # written under a temporary name, then renamed
    bank, tasks = load_training_data(path, config)
    expected_bank = FrameBank.load(config.train, progress=False)
    expected_tasks = validation_tasks(config.validation, config.validation_tasks, seed=config.seed + 1)
    assert [frame.label for frame in bank.frames] == [frame.label for frame in expected_bank.frames]
    for frame, expected in zip(bank.frames, expected_bank.frames):
        np.testing.assert_array_equal(frame.values, expected.values)
        np.testing.assert_array_equal(frame.x_km, expected.x_km)
    assert len(tasks) == len(expected_tasks) == 2
    for task, expected in zip(tasks, expected_tasks):
        np.testing.assert_array_equal(task.context_values, expected.context_values)
        np.testing.assert_array_equal(task.target_coordinates, expected.target_coordinates)
        assert (
            task.target_coords.keys() == expected.target_coords.keys()
            and task.description == expected.description
        )
    from_catalog = train(config, progress=False)
    from_pack = train(_config(tmp_path, "from_pack", steps=4, validate_every=2), progress=False, packed=path)
    assert from_pack.history == from_catalog.history
    _assert_same(from_catalog.best_checkpoint, from_pack.best_checkpoint)


def test_pack_of_another_config_or_a_broken_file_is_refused(tmp_path: Path) -> None:
    from weatherunc.training.packing import load_training_data, pack_training_data

    path = pack_training_data(_config(tmp_path, "packed"), tmp_path / "pack.npz", progress=False)
    with pytest.raises(ValueError, match="packed validation_seed"):
        load_training_data(path, _config(tmp_path, "other", seed=5))
    with pytest.raises(ValueError, match="packed train"):
        load_training_data(
            path, _config(tmp_path, "other", train=[{"dataset": "mrms_embedded", "end": "2019-06-10T00:20"}])
        )
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a pack")
    with pytest.raises(ValueError, match="not a training pack"):
        load_training_data(broken, _config(tmp_path, "other"))


def test_failed_pack_write_keeps_the_earlier_pack_and_leaves_no_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from weatherunc.training import packing

    config = _config(tmp_path, "packed")
    path = packing.pack_training_data(config, tmp_path / "pack.npz", progress=False)
    before = path.read_bytes()

    def failing_write(file, **arrays):
        Path(file).write_bytes(b"half a pack")
        raise OSError("disk full")

    monkeypatch.setattr(packing.np, "savez_compressed", failing_write)
    with pytest.raises(OSError, match="disk full"):
        packing.pack_training_data(config, path, progress=False)
    assert path.read_bytes() == before
    assert sorted(item.name for item in tmp_path.iterdir() if item.is_file()) == ["pack.npz"]
    assert np.load(path)["header"].size > 0


def test_cli_pack_then_train_from_the_pack(tmp_path: Path) -> None:
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(
        yaml.safe_dump({**CONFIG, "steps": 2, "validate_every": 2, "output_dir": str(tmp_path / "run")})
    )
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    packed = subprocess.run(
        [sys.executable, "-m", "weatherunc.cli", "pack", str(config_path), str(tmp_path / "pack.npz")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert packed.returncode == 0, packed.stderr[-2000:]
    assert (tmp_path / "pack.npz").stat().st_size > 0
    trained = subprocess.run(
        [
            sys.executable,
            "-m",
            "weatherunc.cli",
            "train",
            str(config_path),
            "--packed",
            str(tmp_path / "pack.npz"),
            "--sampling-workers",
            "2",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (tmp_path / "run" / "best.safetensors").exists() and '"steps": 2' in trained.stdout
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "weatherunc.cli",
            "train",
            str(config_path),
            "--packed",
            str(tmp_path / "pack.npz"),
            "--seed",
            "3",
            "--restart",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert refused.returncode != 0 and "pack again for this config" in refused.stderr


def test_cli_refuses_a_negative_number_of_sampling_workers(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from weatherunc.cli import app

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(tmp_path / "run")}))
    result = CliRunner().invoke(app, ["train", str(path), "--sampling-workers", "-1"])
    assert (
        result.exit_code == 2
        and "sampling_workers: Input should be greater than or equal to 0" in result.output
    )
    assert not (tmp_path / "run").exists()


def test_architecture_config_normalises_by_the_training_frames(tmp_path: Path) -> None:
    import numpy as np

    from weatherunc.training.loop import architecture_config
    from weatherunc.training.sampling import FrameBank

    config = _config(tmp_path, "architecture")
    bank = FrameBank.load(list(config.train), progress=False)
    architecture = architecture_config(config, bank)
    rates = np.concatenate(
        [frame.values[np.isfinite(frame.values)].astype(np.float64) for frame in bank.frames]
    )
    transformed = architecture.transform.forward(rates)
    assert architecture.value_centre == pytest.approx(transformed.mean(), rel=1e-9)
    assert architecture.value_scale == pytest.approx(transformed.std(), rel=1e-6)
    assert architecture.hidden == 16 and architecture.dropout == 0.1


def test_fine_tuning_starts_from_the_checkpoint_and_keeps_its_normalisation(
    clean_run: Path, tmp_path: Path
) -> None:
    from weatherunc.training.loop import architecture_config, initial_model
    from weatherunc.training.sampling import FrameBank

    source = clean_run / "best.safetensors"
    later_frames = [
        {"dataset": "mrms_embedded", "start": "2019-06-10T00:20", "end": "2019-06-10T00:40", "stride": 2}
    ]
    config = _config(tmp_path, "fine", initialise_from=source, train=later_frames, steps=2, validate_every=2)
    bank = FrameBank.load(list(config.train), progress=False)
    checkpoint, _ = load_neural_process(source)
    start = initial_model(config, bank)
    assert start.state_dict().keys() == checkpoint.state_dict().keys()
    assert all(
        torch.equal(start.state_dict()[name], tensor) for name, tensor in checkpoint.state_dict().items()
    )
    # the weights were learnt on values standardised by the checkpoint's statistics: kept, although
    # these frames give others
    assert start.config == checkpoint.config
    assert architecture_config(config, bank).value_centre != pytest.approx(
        checkpoint.config.value_centre, rel=1e-3
    )
    result = train(config, progress=False)
    tuned, sidecar = load_neural_process(tmp_path / "fine" / "last-00000002.safetensors")
    assert tuned.config == checkpoint.config and result.steps == 2
    assert any(
        not torch.equal(tuned.state_dict()[name], tensor) for name, tensor in checkpoint.state_dict().items()
    )
    assert sidecar["metadata"]["training_config"]["initialise_from"] == str(source)


def test_fine_tuning_scores_its_start_and_keeps_it_when_training_makes_it_worse(
    clean_run: Path, tmp_path: Path
) -> None:
    from weatherunc.models.neural_process.interpolator import NeuralProcessInterpolator
    from weatherunc.training.packing import catalog_training_data
    from weatherunc.training.validation import validation_scores

    source = clean_run / "best.safetensors"
    config = _config(tmp_path, "worse", initialise_from=source, steps=2, validate_every=2, learning_rate=0.2)
    result = train(config, progress=False)
    start, _ = load_neural_process(source)
    _, tasks = catalog_training_data(config, progress=False)
    expected = validation_scores(
        NeuralProcessInterpolator(model=start, name=config.name, samples=8, seed=config.seed, device="cpu"),
        tasks,
    )
    assert [entry["step"] for entry in result.history] == [0, 2]
    assert result.history[0]["crps"] == pytest.approx(expected["crps"], rel=1e-6)
    assert result.history[1]["crps"] > result.history[0]["crps"], (
        "precondition: a learning rate of 0.2 makes this tiny model worse"
    )
    assert result.best_scores["step"] == 0
    _assert_same(source, result.best_checkpoint)


def test_fine_tuning_refuses_another_architecture_and_a_missing_or_broken_file(
    clean_run: Path, tmp_path: Path
) -> None:
    from weatherunc.checkpoints import CheckpointError

    wider = _config(
        tmp_path,
        "wider",
        initialise_from=clean_run / "best.safetensors",
        model={**CONFIG["model"], "hidden": 32},
    )
    with pytest.raises(
        CheckpointError,
        match=(
            r"initialise_from: .*best.safetensors has another architecture.*hidden \(checkpoint 16, "
            r"config 32\)"
        ),
    ):
        train(wider, progress=False)
    missing = _config(tmp_path, "missing", initialise_from=tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match=r"initialise_from: .*absent.safetensors is not a file"):
        train(missing, progress=False)
    broken_file = tmp_path / "broken.safetensors"
    broken_file.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"initialise_from: "):
        train(_config(tmp_path, "broken", initialise_from=broken_file), progress=False)
    assert not any(tmp_path.glob("*/*.safetensors")), "a refused run wrote checkpoints"


def test_a_run_is_not_resumed_from_other_starting_weights(clean_run: Path, tmp_path: Path) -> None:
    import shutil

    from weatherunc.checkpoints import CheckpointError, save_checkpoint
    from weatherunc.models.neural_process.interpolator import ARCHITECTURE

    start = tmp_path / "start.safetensors"
    shutil.copy(clean_run / "best.safetensors", start)
    shutil.copy((clean_run / "best.safetensors").with_suffix(".json"), start.with_suffix(".json"))
    config = _config(tmp_path, "tuned", initialise_from=start, steps=4, validate_every=2)
    assert (
        config.fingerprint()
        == _config(
            tmp_path, "tuned", initialise_from=clean_run / "best.safetensors", steps=4, validate_every=2
        ).fingerprint()
    )  # the content counts, not the path
    assert config.fingerprint() != _config(tmp_path, "tuned", steps=4, validate_every=2).fingerprint()
    assert train(config, stop_after=2, progress=False).steps == 2
    model, sidecar = load_neural_process(start)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    save_checkpoint(
        start,
        model.state_dict(),
        architecture=ARCHITECTURE,
        config=model.config.to_dict(),
        metadata_=sidecar["metadata"],
    )  # other weights under the same name
    with pytest.raises(CheckpointError, match="another training config"):
        train(config, progress=False)


def test_cli_train_initialise_from(clean_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from weatherunc.cli import app

    path = tmp_path / "tiny.yaml"
    path.write_text(
        yaml.safe_dump({**CONFIG, "steps": 2, "validate_every": 2, "output_dir": str(tmp_path / "run")})
    )
    result = CliRunner().invoke(
        app, ["train", str(path), "--initialise-from", str(clean_run / "best.safetensors")]
    )
    assert result.exit_code == 0, result.output
    _, sidecar = load_neural_process(tmp_path / "run" / "best.safetensors")
    assert sidecar["metadata"]["training_config"]["initialise_from"] == str(clean_run / "best.safetensors")
    refused = CliRunner().invoke(
        app,
        [
            "train",
            str(path),
            "--output-dir",
            str(tmp_path / "other"),
            "--initialise-from",
            str(tmp_path / "absent.safetensors"),
        ],
    )
    assert (
        refused.exit_code == 2 and "initialise_from:" in refused.output and "is not a file" in refused.output
    )


@pytest.mark.parametrize(
    ("rate", "step", "symptom"), [(1e3, 2, "the loss is nan"), (1e6, 2, "the model's outputs are not finite")]
)
def test_diverging_training_names_the_learning_rate_and_keeps_earlier_checkpoints(
    tmp_path: Path, rate: float, step: int, symptom: str
) -> None:
    from weatherunc.training.divergence import TrainingDivergedError

    config = _config(tmp_path, "diverging", learning_rate=rate, checkpoint_every=1)
    with pytest.raises(
        TrainingDivergedError,
        match=rf"training diverged at step {step}: {symptom}.*lower learning_rate \({rate}\)",
    ):
        train(config, progress=False)
    last = latest_checkpoint(tmp_path / "diverging", "last")
    assert last.name == "last-00000001.safetensors"  # complete, and nothing later
    model, _ = load_neural_process(last)
    assert all(torch.isfinite(tensor).all() for tensor in model.state_dict().values())


def test_non_finite_weights_are_named(clean_run: Path, tmp_path: Path) -> None:
    from weatherunc.training.divergence import TrainingDivergedError, require_finite_weights

    model, _ = load_neural_process(clean_run / "best.safetensors")
    config = _config(tmp_path, "weights")
    require_finite_weights(model, config, 3)  # finite: passes
    name, parameter = list(model.named_parameters())[5]
    with torch.no_grad():
        parameter.view(-1)[0] = float("inf")
    with pytest.raises(
        TrainingDivergedError,
        match=rf"training diverged at step 3: non-finite weights in {name}; lower learning_rate",
    ):
        require_finite_weights(model, config, 3)


def test_shipped_training_configs_load_and_match_the_checkpoints_they_name() -> None:
    from weatherunc.checkpoints import read_sidecar
    from weatherunc.models.neural_process.config import NeuralProcessConfig
    from weatherunc.training.loop import architecture_differences

    root = Path(__file__).resolve().parents[1]
    from weatherunc.training.convnp_config import is_convnp_config

    configs = {
        path.name: load_training_config(path)
        for path in sorted((root / "pipelines" / "training").glob("*.yaml"))
        if not is_convnp_config(path)
    }
    assert {"anp.yaml", "cnp.yaml", "anp_continue.yaml"} <= set(configs)
    trained_with = {
        "anp.yaml": "weatherunc/data/models/anp.safetensors",
        "cnp.yaml": "weatherunc/data/models/cnp.safetensors",
    }
    for name, config in configs.items():
        checkpoint = config.initialise_from or trained_with.get(name)
        if checkpoint is not None:
            architecture = NeuralProcessConfig.from_dict(read_sidecar(root / checkpoint)["config"])
            assert architecture_differences(config, architecture) == [], name
    assert architecture_differences(
        configs["cnp.yaml"],
        NeuralProcessConfig.from_dict(read_sidecar(root / trained_with["anp.yaml"])["config"]),
    )  # the check can fail
    from weatherunc.models.convnp.config import ConvNPConfig
    from weatherunc.training.convnp_config import load_convnp_training_config

    convnp = ConvNPConfig.from_dict(
        read_sidecar(root / "weatherunc/data/models/convnp.safetensors")["config"]
    )
    assert (
        architecture_differences(load_convnp_training_config(root / "pipelines/training/convnp.yaml"), convnp)
        == []
    )
    assert architecture_differences(configs["anp.yaml"], convnp) == [
        "architecture (checkpoint ConvNPConfig, config NeuralProcessConfig)"
    ]


def test_mean_scores_average_each_tasks_scores_and_need_one_prediction_per_task(clean_run: Path) -> None:
    import numpy as np

    from weatherunc.evaluation import score_prediction
    from weatherunc.models.neural_process.interpolator import NeuralProcessInterpolator
    from weatherunc.training.validation import mean_scores, validation_scores, validation_tasks

    model, _ = load_neural_process(clean_run / "best.safetensors")
    interpolator = NeuralProcessInterpolator(model=model)
    tasks = validation_tasks(list(TrainingConfig(**CONFIG).validation), 2, seed=1)
    predictions = [interpolator.predict(task) for task in tasks]
    scores = mean_scores(predictions, tasks)
    assert set(scores) == {"crps", "nlpd", "rmse", "coverage_90"}
    assert scores["crps"] == pytest.approx(
        np.mean([score_prediction(prediction, task)["crps"] for prediction, task in zip(predictions, tasks)])
    )
    assert validation_scores(interpolator, tasks) == scores  # latent draws are seeded per tile
    with pytest.raises(ValueError):
        mean_scores(predictions[:1], tasks)


def test_labelled_validation_tasks_are_the_validation_tasks_with_their_dataset(data_dir: Path) -> None:
    import numpy as np

    from weatherunc.training.config import FrameSelection
    from weatherunc.training.validation import labelled_validation_tasks, validation_tasks

    selections = [
        FrameSelection(dataset="mrms_embedded", end="2019-06-10T00:40", stride=4),
        FrameSelection(dataset="knmi_sample_20100826", start="2010-08-26T04:40", end="2010-08-26T05:10"),
    ]
    options = {"data_dir": data_dir}
    labelled, plain = (
        labelled_validation_tasks(selections, 5, seed=3, open_options=options),
        validation_tasks(selections, 5, seed=3, open_options=options),
    )
    assert [dataset for dataset, _ in labelled] == ["mrms_embedded"] * 3 + ["knmi_sample_20100826"] * 2
    for (_, task), expected in zip(labelled, plain, strict=True):
        np.testing.assert_array_equal(task.context_values, expected.context_values)
        np.testing.assert_array_equal(task.target_coordinates, expected.target_coordinates)
