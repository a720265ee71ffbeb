"""Checkpoints: safetensors + JSON sidecar, checked on load, never unpickled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from weatherunc.checkpoints import CheckpointError, load_checkpoint, read_sidecar, save_checkpoint
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import ARCHITECTURE, NeuralProcessInterpolator, load_neural_process
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.models.registry import get_model

TINY = NeuralProcessConfig(hidden=16, latent_dimension=4, heads=2, self_attention_layers=1, value_centre=0.2, value_scale=0.7)


def _saved(tmp_path: Path, config: NeuralProcessConfig = TINY) -> tuple[Path, NeuralProcess]:
    torch.manual_seed(0)
    model = NeuralProcess(config)
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model.state_dict(), architecture=ARCHITECTURE, config=config.to_dict(), metadata_={"note": "test"})
    return path, model


def test_round_trip_restores_config_and_weights(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    loaded, sidecar = load_neural_process(path)
    assert loaded.config == TINY
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    assert sidecar["metadata"] == {"note": "test"} and len(sidecar["sha256"]) == 64
    assert {"torch", "python", "numpy"} <= set(sidecar["versions"])
    interpolator = get_model("anp", checkpoint=path)
    assert isinstance(interpolator, NeuralProcessInterpolator) and interpolator.checkpoint_sha256 == sidecar["sha256"]


def test_corrupt_weights_are_refused(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 .* does not match"):
        load_neural_process(path)


def test_truncated_file_with_matching_hash_is_refused(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    sidecar = json.loads(path.with_suffix(".json").read_text())
    from weatherunc.checkpoints import sha256_of

    sidecar["sha256"] = sha256_of(path)
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_neural_process(path)


def test_other_architecture_is_refused(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="architecture 'weatherunc.NeuralProcess', expected 'other'"):
        load_checkpoint(path, architecture="other")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    sidecar["config"]["hidden"] = 32  # the weights are of a 16-wide model
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match="parameters do not fit this model"):
        load_neural_process(path)


def test_missing_sidecar_and_weights(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    path.unlink()
    with pytest.raises(CheckpointError, match="weights file is missing"):
        load_neural_process(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="sidecar model.json is missing"):
        read_sidecar(path)


def test_weights_are_not_pickles(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_length])  # safetensors: 8-byte length + JSON header
    assert "decoder.network.0.weight" in header and "deterministic.cross_attention.0.attention.log_inverse_lengthscale" in header
    assert b"\x80\x04" not in path.read_bytes()[:2]  # not a pickle protocol header
