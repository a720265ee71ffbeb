"""Training the convolutional neural process on the embedded MRMS sample (no shared data needed):
grid tasks, the frame cache, resuming, refusals, the CLI dispatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from weatherunc.checkpoints import CheckpointError
from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.convnp.interpolator import ConvNPInterpolator
from weatherunc.training.convnp_config import (
    ConvNPTrainingConfig,
    GridSamplingOptions,
    PatchSelection,
    is_convnp_config,
    load_convnp_training_config,
)
from weatherunc.training.convnp_loop import train_convnp
from weatherunc.training.grid_sampling import MASK_KINDS, draw_task, sample_grid_batch
from weatherunc.training.patches import load_bank, load_frames, load_patches, overlaps, save_bank
from weatherunc.training.sampling import BankedFrame, FrameBank, step_generator

REPOSITORY = Path(__file__).resolve().parents[1]
CONFIG = {
    "architecture": "convnp",
    "name": "tiny-convnp",
    "model": {"channels": [8, 8, 8], "decoder_hidden": 8, "set_conv_lengthscales_km": [1.0, 2.0]},
    "sampling": {"patch_cells": 32, "target_points": 64, "block_pixels": [4, 12], "halo_pixels": [4, 8]},
    "train": [{"dataset": "mrms_embedded", "end": "2019-06-10T00:40", "stride": 6}],
    "validation": [{"dataset": "mrms_embedded", "start": "2019-06-10T00:50", "stride": 4}],
    "steps": 6,
    "batch_size": 2,
    "validate_every": 3,
    "validation_tasks": 2,
    "checkpoint_every": 2,
    "snapshot_every": 3,
}


def _config(root: Path, name: str, **overrides) -> ConvNPTrainingConfig:
    return ConvNPTrainingConfig(**{**CONFIG, "output_dir": root / name, **overrides})


def _synthetic_bank(pixel_km: float = 1.0) -> FrameBank:
    rng = np.random.default_rng(0)
    frames = []
    for number in range(3):
        values = rng.gamma(0.6, 2.0, size=(80, 90)).astype(np.float32)
        values[values < 0.5] = 0.0
        values[:10, :] = np.nan  # no coverage
        frames.append(
            BankedFrame(values, np.arange(90) * pixel_km, np.arange(80) * pixel_km, f"synthetic {number}")
        )
    return FrameBank(tuple(frames))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("convnp")
    result = train_convnp(_config(root, "clean"), progress=False)
    assert result.steps == 6 and (root / "clean" / "best.safetensors").exists()
    assert [entry["step"] for entry in result.history] == [3, 6]
    seconds = [entry["seconds"] for entry in result.history]
    assert seconds[0] >= 0 and seconds[1] >= seconds[0]  # wall time spent training, growing
    return root / "clean"


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_each_mask_kind_hides_its_targets_from_the_contexts(kind: str) -> None:
    bank = _synthetic_bank()
    config = ConvNPConfig()
    weights = tuple(1.0 if name == kind else 0.0 for name in MASK_KINDS)
    options = GridSamplingOptions(
        patch_cells=48, target_points=200, mask_weights=weights, context_keep=(1.0, 1.0), ring_fraction=0.0
    )
    for seed in range(5):
        observed, values, positions, rates = draw_task(bank, config, options, np.random.default_rng(seed))
        assert (
            observed.shape == values.shape == (48, 48)
            and positions.shape == (200, 2)
            and rates.shape == (200,)
        )
        assert np.all(np.isfinite(rates)) and np.all(rates >= 0)
        assert np.all((positions >= 0) & (positions <= 47))
        assert np.all(values[observed == 0] == 0)
        cells = np.rint(positions).astype(int)
        # on a 1 km frame every pixel is one cell: hidden targets are never in an observed cell
        assert observed[cells[:, 0], cells[:, 1]].mean() < 0.5, kind


def test_grid_batches_are_reproducible_and_rescaled_pixels_land_on_the_grid() -> None:
    config = ConvNPConfig()
    options = GridSamplingOptions(patch_cells=32, target_points=50)
    first = sample_grid_batch(_synthetic_bank(), config, options, 3, step_generator(0, 7))
    second = sample_grid_batch(_synthetic_bank(), config, options, 3, step_generator(0, 7))
    assert first.prior is None and first.target_prior is None  # no prior without a prior model
    for name in first.__dataclass_fields__.keys() - {"prior", "target_prior"}:
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert first.observed.shape == (3, 1, 32, 32) and first.target_bins.dtype == torch.int64
    # 0.5 km pixels: a 32-cell patch is cut from 64 pixels, about four per cell
    fine = sample_grid_batch(
        _synthetic_bank(pixel_km=0.5),
        config,
        GridSamplingOptions(patch_cells=32, target_points=50, mask_weights=(0, 0, 0, 1), context_keep=(1, 1)),
        2,
        step_generator(0, 1),
    )
    assert fine.observed.mean() > 0.3


def test_patches_avoid_the_excluded_box_and_have_local_axes() -> None:
    selection = PatchSelection(
        dataset="mrms_embedded",
        stride=12,
        patch_pixels=64,
        patches_per_frame=4,
        exclude_box=(-99.0, 30.0, -98.0, 31.0),
        min_wet_fraction=0.0,
    )
    frames = load_patches(selection, progress=False)
    assert len(frames) == 3 * 4
    for frame in frames:
        assert frame.values.shape == (64, 64)
        assert abs(frame.x_km.mean()) < 1.0 and abs(frame.y_km.mean()) < 1.0
        assert 0.8 < frame.pixel_km < 1.2
    assert overlaps((0, 0, 2, 2), (1, 1, 3, 3)) and not overlaps((0, 0, 1, 1), (2, 2, 3, 3))
    with pytest.raises(ValueError, match="patch_pixels"):
        load_patches(PatchSelection(dataset="mrms_embedded", patch_pixels=1000), progress=False)


def test_frame_cache_round_trips_and_refuses_other_selections(tmp_path: Path) -> None:
    bank = load_frames(
        [
            PatchSelection(
                dataset="mrms_embedded", stride=18, patch_pixels=32, patches_per_frame=2, min_wet_fraction=0.0
            )
        ],
        progress=False,
    )
    path = save_bank(bank, tmp_path / "frames.npz", "key-a")
    loaded = load_bank(path, "key-a")
    assert [frame.label for frame in loaded.frames] == [frame.label for frame in bank.frames]
    np.testing.assert_array_equal(loaded.frames[1].values, bank.frames[1].values)
    assert load_bank(path, "key-b") is None and load_bank(tmp_path / "absent.npz", "key-a") is None
    assert not list(tmp_path.glob("*.partial*"))


def test_resumed_run_equals_uninterrupted_run(clean_run: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, "resumed")
    train_convnp(config, stop_after=4, progress=False)
    result = train_convnp(config, progress=False)
    assert result.steps == 6
    first, second = (
        load_file(str(clean_run / "best.safetensors")),
        load_file(str(tmp_path / "resumed" / "best.safetensors")),
    )
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert sorted(path.name for path in (tmp_path / "resumed").glob("snapshot-*.safetensors")) == [
        "snapshot-00000003.safetensors",
        "snapshot-00000006.safetensors",
    ]


def test_changed_config_refuses_to_resume_and_the_model_predicts(clean_run: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, "changed")
    train_convnp(config, stop_after=2, progress=False)
    with pytest.raises(CheckpointError, match="another training config"):
        train_convnp(_config(tmp_path, "changed", learning_rate=0.01), progress=False)
    model = ConvNPInterpolator.from_checkpoint(clean_run / "best.safetensors")
    assert model.config.value_scale > 0 and model.config.channels == (8, 8, 8)


def test_config_dispatch_and_named_errors(tmp_path: Path) -> None:
    path = tmp_path / "convnp.yaml"
    path.write_text(json.dumps({**CONFIG, "sampling": {"block_pixels": [10, 2]}}))
    assert is_convnp_config(path) and not is_convnp_config(REPOSITORY / "pipelines" / "training" / "anp.yaml")
    with pytest.raises(ValueError, match="block_pixels"):
        load_convnp_training_config(path)
    shipped = [
        load_convnp_training_config(path)
        for path in sorted((REPOSITORY / "pipelines" / "training").glob("*.yaml"))
        if is_convnp_config(path)
    ]
    assert "convnp" in {config.name for config in shipped}
    for config in shipped:
        mrms = [selection for selection in config.train if isinstance(selection, PatchSelection)]
        # the MRMS test sample (lon -99.92..-97.36, lat 29.40..31.96) lies in the excluded box, with a margin
        assert mrms and all(
            overlaps(selection.exclude_box, (-99.92, 29.40, -97.36, 31.96)) for selection in mrms
        ), config.name
        assert all(
            selection.exclude_box[0] <= -99.92 - 2 and selection.exclude_box[3] >= 31.96 + 2
            for selection in mrms
        ), config.name
