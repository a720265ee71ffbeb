"""Model checkpoints: safetensors weights plus a JSON sidecar; never unpickled.

``NAME.safetensors`` holds the tensors; ``NAME.json`` holds the architecture name, the
config, the parameter names and shapes, the software versions, free-form metadata (transform,
data normalisation, training state) and the sha256 of the weights file. Loading recomputes
the hash and compares the parameter layout, and refuses anything that does not match with a
:class:`CheckpointError` that says what differs. The sidecar is written last, so a crash
while saving leaves the previous checkpoint (or none), never a half one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 1
#: A model class loaded by :func:`load_model`.
ModelT = TypeVar("ModelT", bound=torch.nn.Module)


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or of another architecture."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def software_versions() -> dict[str, str]:
    """Versions of python, torch, numpy and weatherunc."""
    versions = {"python": platform.python_version()}
    for package in ("torch", "numpy", "weatherunc", "safetensors"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def sidecar_path(path: Path) -> Path:
    """``X.safetensors`` -> ``X.json``."""
    return Path(path).with_suffix(".json")


def _umask() -> int:
    """The process's file-creation mask, read without changing it (Linux ``/proc``; else 0o022)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _replace_atomically(write, destination: Path) -> None:
    temporary = destination.with_name(destination.name + ".tmp")
    write(temporary)
    os.chmod(temporary, 0o666 & ~_umask())  # safetensors writes its files readable by their owner only
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, destination)


def save_checkpoint(
    path: Path,
    tensors: dict[str, torch.Tensor],
    *,
    architecture: str,
    config: dict[str, Any],
    metadata_: dict[str, Any] | None = None,
) -> Path:
    """Write ``path`` (safetensors) then its sidecar; returns the sidecar path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
    _replace_atomically(lambda target: save_file(tensors, str(target)), path)
    sidecar = {
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "config": config,
        "parameters": {name: list(tensor.shape) for name, tensor in tensors.items()},
        "versions": software_versions(),
        "metadata": metadata_ or {},
        "weights_file": path.name,
        "sha256": sha256_of(path),
    }
    _replace_atomically(
        lambda target: target.write_text(json.dumps(sidecar, indent=2, sort_keys=True)), sidecar_path(path)
    )
    return sidecar_path(path)


def read_sidecar(path: Path, architecture: str | None = None) -> dict[str, Any]:
    """The sidecar of ``path``, checked for format and, where given, for its ``architecture`` (before
    its config is read); ``CheckpointError`` if missing, unreadable, not a mapping or of another
    architecture."""
    sidecar = sidecar_path(Path(path))
    if not Path(path).exists() and not sidecar.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        values = json.loads(sidecar.read_text())
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint {path}: sidecar {sidecar.name} is missing") from error
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"checkpoint {path}: sidecar {sidecar.name} is not valid JSON ({error})"
        ) from error
    if not isinstance(values, dict):
        raise CheckpointError(
            f"checkpoint {path}: sidecar {sidecar.name} is not a JSON mapping (it holds a "
            f"{type(values).__name__})"
        )
    if values.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: format_version {values.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    if architecture is not None and values.get("architecture") != architecture:
        raise CheckpointError(
            f"checkpoint {path} holds a {values.get('architecture')!r}, not a {architecture!r}"
        )
    return values


def load_checkpoint(
    path: Path, *, architecture: str, expected_parameters: dict[str, list[int]] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and sidecar of a checkpoint after every check.

    Checks: sidecar present and readable, ``architecture`` matches, sha256 of the weights
    matches, the file parses as safetensors, the tensors' names and shapes match the sidecar
    and (if given) ``expected_parameters``.
    """
    path = Path(path)
    sidecar = read_sidecar(path, architecture)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: weights file is missing")
    digest = sha256_of(path)
    if digest != sidecar["sha256"]:
        raise CheckpointError(
            f"checkpoint {path}: sha256 {digest[:12]}… does not match the sidecar's "
            f"{sidecar['sha256'][:12]}… (corrupt or replaced file)"
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"checkpoint {path}: not a readable safetensors file ({error})") from error
    layout = {name: list(tensor.shape) for name, tensor in tensors.items()}
    if layout != sidecar["parameters"]:
        raise CheckpointError(f"checkpoint {path}: tensors differ from the sidecar's parameter list")
    if expected_parameters is not None and layout != expected_parameters:
        missing = sorted(set(expected_parameters) - set(layout))
        unexpected = sorted(set(layout) - set(expected_parameters))
        reshaped = sorted(
            name
            for name in set(layout) & set(expected_parameters)
            if layout[name] != expected_parameters[name]
        )
        raise CheckpointError(
            f"checkpoint {path}: parameters do not fit this model (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, other shape {reshaped[:3]})"
        )
    return tensors, sidecar


def sidecar_config_values(path: Path, sidecar: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` mapping of a checkpoint's sidecar; :class:`CheckpointError` naming ``path``
    when there is none."""
    values = sidecar.get("config")
    if not isinstance(values, dict):
        raise CheckpointError(f"checkpoint {path}: sidecar has no config mapping")
    return values


def parameter_layout(model: torch.nn.Module) -> dict[str, list[int]]:
    """Names and shapes of a model's state."""
    return {name: list(tensor.shape) for name, tensor in model.state_dict().items()}


def load_model(
    path: Path, config: Any, build: Callable[[Any], ModelT], *, architecture: str
) -> tuple[ModelT, dict[str, Any]]:
    """The model ``build(config)`` with the weights of checkpoint ``path``, every check done before
    any weight is allocated: the model is laid out on the ``meta`` device, the file is checked
    against that layout (:func:`load_checkpoint`), then the weights are loaded strictly. Returns the
    model (eval mode) and the sidecar. ``config`` comes from the sidecar, checked by the caller."""
    with torch.device("meta"):
        layout = parameter_layout(build(config))
    tensors, sidecar = load_checkpoint(path, architecture=architecture, expected_parameters=layout)
    model = build(config)
    model.load_state_dict(tensors, strict=True)
    return model.eval(), sidecar
