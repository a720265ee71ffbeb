"""Checkpoints: safetensors + JSON sidecar, checked on load, never unpickled."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from weatherunc.checkpoints import CheckpointError, load_checkpoint, read_sidecar, save_checkpoint
from weatherunc.models.neural_process import interpolator
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import (
    ARCHITECTURE,
    NeuralProcessInterpolator,
    load_neural_process,
)
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.models.registry import get_model

TINY = NeuralProcessConfig(
    hidden=16, latent_dimension=4, heads=2, self_attention_layers=1, value_centre=0.2, value_scale=0.7
)


def _saved(tmp_path: Path, config: NeuralProcessConfig = TINY) -> tuple[Path, NeuralProcess]:
    torch.manual_seed(0)
    model = NeuralProcess(config)
    path = tmp_path / "model.safetensors"
    save_checkpoint(
        path,
        model.state_dict(),
        architecture=ARCHITECTURE,
        config=config.to_dict(),
        metadata_={"note": "test"},
    )
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
    assert (
        isinstance(interpolator, NeuralProcessInterpolator)
        and interpolator.checkpoint_sha256 == sidecar["sha256"]
    )


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
    with pytest.raises(CheckpointError, match="holds a 'weatherunc.NeuralProcess', not a 'other'"):
        load_checkpoint(path, architecture="other")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    sidecar["config"]["hidden"] = 32  # the weights are of a 16-wide model
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match="parameters do not fit this model"):
        load_neural_process(path)


def test_missing_sidecar_and_weights(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    path.with_suffix(".json").rename(tmp_path / "aside.json")
    with pytest.raises(CheckpointError, match="sidecar model.json is missing"):
        read_sidecar(path)
    (tmp_path / "aside.json").rename(path.with_suffix(".json"))
    path.unlink()
    with pytest.raises(CheckpointError, match="weights file is missing"):
        load_neural_process(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors does not exist"):
        read_sidecar(path)


def test_a_checkpoint_of_another_kind_is_named_before_its_config_is_read(tmp_path: Path) -> None:
    """A SWAG file given as a model, or a model as a SWAG file: the error says which kind it holds."""
    from weatherunc.models.swag import SwagCollector, load_swag, save_swag

    path, model = _saved(tmp_path)
    collector = SwagCollector(model, [name for name, _ in model.named_parameters()][:1], 2)
    collector.collect(model)
    collector.collect(model)
    swag = tmp_path / "moments.safetensors"
    save_swag(swag, collector.moments(), {})
    with pytest.raises(CheckpointError, match="holds a 'weatherunc.SWAG', not a 'weatherunc.NeuralProcess'"):
        load_neural_process(swag)
    with pytest.raises(CheckpointError, match="holds a 'weatherunc.NeuralProcess', not a 'weatherunc.SWAG'"):
        load_swag(path)


def test_weights_are_not_pickles(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_length])  # safetensors: 8-byte length + JSON header
    assert (
        "decoder.network.0.weight" in header
        and "deterministic.cross_attention.0.attention.log_inverse_lengthscale" in header
    )
    assert b"\x80\x04" not in path.read_bytes()[:2]  # not a pickle protocol header


def _tamper(path: Path, change: Callable[[dict], object]) -> None:
    """Rewrite the sidecar of ``path`` as ``change(sidecar)``."""
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps(change(json.loads(sidecar.read_text()))))


def _with_config(**changes: object) -> Callable[[dict], dict]:
    return lambda sidecar: {**sidecar, "config": {**sidecar["config"], **changes}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(_with_config(colour="blue"), r"unknown config keys \['colour'\]", id="unknown-key"),
        pytest.param(
            lambda sidecar: {key: value for key, value in sidecar.items() if key != "config"},
            "sidecar has no config mapping",
            id="no-config",
        ),
        pytest.param(
            lambda sidecar: {**sidecar, "config": [16, 4]}, "sidecar has no config mapping", id="config-list"
        ),
        pytest.param(
            _with_config(hidden="wide"),
            "config 'hidden' must be a whole number from 1 to 4096, got 'wide'",
            id="text-size",
        ),
        pytest.param(
            _with_config(self_attention_layers=-1),
            "config 'self_attention_layers' must be a whole number from 0 to 64, got -1",
            id="negative-size",
        ),
        pytest.param(
            _with_config(bin_edges=[0.1 * edge for edge in range(2000)]),
            "'bin_edges' must be a list of at most 1024 edges",
            id="too-many-bins",
        ),
        pytest.param(
            _with_config(heads=3), "invalid config .*divisible by heads=3", id="failed-config-check"
        ),
        pytest.param(_with_config(transform=5), "invalid config", id="transform-not-mapping"),
    ],
)
def test_tampered_sidecar_config_is_refused(
    tmp_path: Path, change: Callable[[dict], object], message: str
) -> None:
    path, _ = _saved(tmp_path)
    _tamper(path, change)
    with pytest.raises(CheckpointError, match=f"^checkpoint {re.escape(str(path))}: .*{message}"):
        load_neural_process(path)


def test_sidecar_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    _tamper(path, lambda sidecar: [sidecar])
    for load in (read_sidecar, load_neural_process):
        with pytest.raises(
            CheckpointError,
            match=f"^checkpoint {re.escape(str(path))}: sidecar model.json is not a JSON mapping",
        ):
            load(path)


def test_oversized_config_is_refused_before_any_weight_is_allocated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hidden: 10**7`` would ask for 400 TB; a config within the bounds that the weights do not
    fit is found on the ``meta`` device, so no real model is built before the weights are checked."""
    path, _ = _saved(tmp_path)
    _tamper(path, _with_config(hidden=10**7, heads=1))
    with pytest.raises(
        CheckpointError,
        match=(
            f"^checkpoint {re.escape(str(path))}: config 'hidden' must be a whole number from 1 to 4096, "
            "got 10000000"
        ),
    ):
        load_neural_process(path)
    built: list[torch.device] = []

    class RecordingNeuralProcess(NeuralProcess):
        def __init__(self, config: NeuralProcessConfig) -> None:
            super().__init__(config)
            built.append(next(self.parameters()).device)

    monkeypatch.setattr(interpolator, "NeuralProcess", RecordingNeuralProcess)
    _tamper(path, _with_config(hidden=1024, heads=2))
    with pytest.raises(CheckpointError, match="parameters do not fit this model"):
        load_neural_process(path)
    assert built == [torch.device("meta")]
    _tamper(path, _with_config(hidden=16))
    load_neural_process(path)
    assert built[1:] == [torch.device("meta"), torch.device("cpu")]


def test_weights_and_sidecar_take_the_file_creation_mask(tmp_path: Path) -> None:
    """safetensors writes its file readable by its owner only; a checkpoint is made as any file."""
    from weatherunc.checkpoints import _umask

    path, _ = _saved(tmp_path)
    expected = 0o666 & ~_umask()
    assert path.stat().st_mode & 0o777 == expected == path.with_suffix(".json").stat().st_mode & 0o777
    assert expected & 0o044  # readable by others under the usual masks (022, 002)
