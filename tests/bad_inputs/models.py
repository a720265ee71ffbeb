"""Catalogue cases for model inputs: tampered checkpoints (and pickles posing as weights),
prediction tasks with impossible values or coordinates, and user fields given to ``fill``."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from tests.bad_inputs.runner import Case, Scenario, named
from weatherunc.checkpoints import CheckpointError, save_checkpoint, sha256_of
from weatherunc.errors import InputDataError
from weatherunc.filling import fill
from weatherunc.models.baselines import InverseDistanceInterpolator, OrdinaryKrigingInterpolator
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import ARCHITECTURE, load_neural_process
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.tasks import Task

TINY = NeuralProcessConfig(
    hidden=16, latent_dimension=4, heads=2, self_attention_layers=1, value_centre=0.2, value_scale=0.7
)


class Touch:
    """Unpickling this object runs ``touch MARKER`` (what a malicious ``.pt`` file does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _sidecar(path: Path) -> dict[str, Any]:
    return json.loads(path.with_suffix(".json").read_text())


def _write_sidecar(path: Path, sidecar: Any) -> None:
    path.with_suffix(".json").write_text(json.dumps(sidecar))


def _rehash(path: Path) -> None:
    """Make the sidecar's sha256 match the (tampered) weights file, as a forger would."""
    _write_sidecar(path, {**_sidecar(path), "sha256": sha256_of(path)})


def checkpoint_case(case_id: str, tamper: Callable[[Path, Path], object] | None, match: str) -> Case:
    """A tiny neural-process checkpoint, changed by ``tamper(path, marker)`` (which may return
    another path to load); loading must raise :class:`CheckpointError` matching ``match``."""

    def build(work: Path, shared: Path | None) -> Scenario:
        torch.manual_seed(0)
        path = work / "model.safetensors"
        save_checkpoint(
            path, NeuralProcess(TINY).state_dict(), architecture=ARCHITECTURE, config=TINY.to_dict()
        )
        marker = work / "executed"
        changed = tamper(path, marker) if tamper else None
        target = changed if isinstance(changed, Path) else path
        return Scenario(action=lambda: load_neural_process(target), marker=marker)

    if tamper is None:
        return Case(case_id, "checkpoint", build, error=None)
    return Case(case_id, "checkpoint", build, CheckpointError, match)


def _flip_byte(path: Path, marker: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def _sidecar_change(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path, Path], None]:
    return lambda path, marker: _write_sidecar(path, change(_sidecar(path)))


def _config(**changes: Any) -> Callable[[Path, Path], None]:
    return _sidecar_change(lambda sidecar: {**sidecar, "config": {**sidecar["config"], **changes}})


def _weights(content: Callable[[Path, Path], bytes]) -> Callable[[Path, Path], None]:
    """Replace the weights by ``content(path, marker)`` and forge the sidecar's hash."""

    def tamper(path: Path, marker: Path) -> None:
        path.write_bytes(content(path, marker))
        _rehash(path)

    return tamper


def _pickle_as_pt(path: Path, marker: Path) -> Path:
    """A torch ``.pt`` pickle that would run a command, beside a sidecar forged to match it."""
    pt = path.with_suffix(".pt")
    torch.save({"decoder.weight": Touch(marker)}, pt)
    _write_sidecar(pt, {**_sidecar(path), "weights_file": pt.name, "sha256": sha256_of(pt)})
    return pt


def _huge_shape_header(path: Path, marker: Path) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**31, 2**31], "data_offsets": [0, 16]}}).encode()
    return len(header).to_bytes(8, "little") + header + bytes(16)


_SHA = "sha256 .* does not match"
_READABLE = "not a readable safetensors file"
CHECKPOINT_CASES: list[Case] = [
    checkpoint_case("checkpoint-valid", None, ""),
    checkpoint_case("checkpoint-weights-byte-changed", _flip_byte, _SHA),
    checkpoint_case(
        "checkpoint-sidecar-wrong-sha", _sidecar_change(lambda s: {**s, "sha256": "0" * 64}), _SHA
    ),
    checkpoint_case(
        "checkpoint-unknown-config-key", _config(colour="blue"), r"unknown config keys \['colour'\]"
    ),
    checkpoint_case(
        "checkpoint-huge-hidden", _config(hidden=10**7, heads=1), "'hidden' must be a whole number"
    ),
    checkpoint_case(
        "checkpoint-negative-layers", _config(self_attention_layers=-1), "'self_attention_layers' must be"
    ),
    checkpoint_case(
        "checkpoint-too-many-bins", _config(bin_edges=[0.1 * n for n in range(2000)]), "'bin_edges'"
    ),
    checkpoint_case(
        "checkpoint-config-list", _sidecar_change(lambda s: {**s, "config": [16]}), "no config mapping"
    ),
    checkpoint_case("checkpoint-sidecar-json-list", _sidecar_change(lambda s: [s]), "not a JSON mapping"),
    checkpoint_case(
        "checkpoint-sidecar-not-json",
        lambda path, marker: path.with_suffix(".json").write_text("{not json"),
        "is not valid JSON",
    ),
    checkpoint_case(
        "checkpoint-sidecar-missing", lambda path, marker: path.with_suffix(".json").unlink(), "is missing"
    ),
    checkpoint_case(
        "checkpoint-weights-missing", lambda path, marker: path.unlink(), "weights file is missing"
    ),
    checkpoint_case(
        "checkpoint-other-architecture",
        _sidecar_change(lambda s: {**s, "architecture": "other"}),
        "holds a 'other', not a 'weatherunc.NeuralProcess'",
    ),
    checkpoint_case(
        "checkpoint-format-version",
        _sidecar_change(lambda s: {**s, "format_version": 99}),
        "format_version 99",
    ),
    checkpoint_case(
        "checkpoint-parameter-list-changed",
        _sidecar_change(lambda s: {**s, "parameters": {**s["parameters"], "extra": [1]}}),
        "tensors differ from the sidecar's parameter list",
    ),
    checkpoint_case("checkpoint-config-wider", _config(hidden=32), "parameters do not fit this model"),
    checkpoint_case("checkpoint-truncated-rehashed", _weights(lambda p, m: p.read_bytes()[:100]), _READABLE),
    checkpoint_case(
        "checkpoint-pickle-as-safetensors",
        _weights(lambda path, marker: pickle.dumps({"decoder.weight": Touch(marker)})),
        _READABLE,
    ),
    checkpoint_case("checkpoint-torch-pickle-pt", _pickle_as_pt, _READABLE),
    checkpoint_case(
        "checkpoint-huge-header-length",
        _weights(lambda p, m: (2**62).to_bytes(8, "little") + b"{}"),
        _READABLE,
    ),
    checkpoint_case("checkpoint-huge-tensor-shape", _weights(_huge_shape_header), _READABLE),
]

_CONTEXT = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
_VALUES = np.array([0.0, 1.0, 2.5, 0.4])
_TARGET = np.array([[0.5, 0.5]])


def task_case(
    case_id: str,
    match: str,
    *,
    context: np.ndarray = _CONTEXT,
    values: np.ndarray = _VALUES,
    target: np.ndarray = _TARGET,
    model: Any = None,
) -> Case:
    """A prediction task (predicted by ``model`` when given); it must raise ``ValueError``
    matching ``match`` (``match=""``: a valid control)."""

    def action() -> object:
        task = Task(context, values, target, np.zeros(len(target)))
        return model.predict(task) if model is not None else task

    def build(work: Path, shared: Path | None) -> Scenario:
        return Scenario(action=action)

    if not match:
        return Case(case_id, "task", build, error=None)
    return Case(case_id, "task", build, ValueError, match)


def _with(array: np.ndarray, index: tuple[int, ...], value: float) -> np.ndarray:
    changed = array.copy()
    changed[index] = value
    return changed


TASK_CASES: list[Case] = [
    task_case("task-valid-idw", "", model=InverseDistanceInterpolator()),
    task_case(
        "task-valid-kriging-3-contexts",
        "",
        context=_CONTEXT[:3],
        values=_VALUES[:3],
        model=OrdinaryKrigingInterpolator(),
    ),
    task_case("task-negative-rate", r"context_values .* >= 0", values=_with(_VALUES, (1,), -0.5)),
    task_case("task-rate-above-500", r"context_values .* 500 mm/h", values=_with(_VALUES, (1,), 600.0)),
    task_case("task-rate-times-1e6", r"context_values .* 500 mm/h", values=_VALUES * 1e6),
    task_case("task-infinite-rate", r"context_values .* finite", values=_with(_VALUES, (2,), np.inf)),
    task_case("task-nan-rate", r"context_values .* finite", values=_with(_VALUES, (0,), np.nan)),
    task_case(
        "task-nan-context-coordinate",
        r"context_coordinates .* finite",
        context=_with(_CONTEXT, (1, 0), np.nan),
    ),
    task_case(
        "task-infinite-target-coordinate", r"target_coordinates .* finite", target=np.array([[np.inf, 0.5]])
    ),
    task_case(
        "task-duplicated-context-points",
        r"context_coordinates .* duplicated",
        context=np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
    ),
    task_case("task-no-context", "at least one context", context=np.zeros((0, 2)), values=np.zeros(0)),
    task_case(
        "kriging-two-contexts",
        "kriging needs at least 3 contexts",
        context=_CONTEXT[:2],
        values=_VALUES[:2],
        model=OrdinaryKrigingInterpolator(),
    ),
]


def _field(**changes: Any) -> xr.DataArray:
    """A 6x7 user field ``rain`` [mm h-1] on a projected grid, two pixels unobserved."""
    values = np.random.default_rng(3).gamma(0.6, 2.0, size=(6, 7))
    values[2, 3] = values[4, 1] = np.nan
    x, y = 1000.0 * np.arange(7), 1000.0 * np.arange(6)
    for name, value in changes.pop("cells", {}).items():
        values[name] = value
    data = xr.DataArray(
        values, dims=("y", "x"), coords={"y": changes.pop("y", y), "x": changes.pop("x", x)}, name="rain"
    )
    data.attrs["units"] = "mm h-1"
    data.attrs.update(changes)
    return data


def fill_case(case_id: str, variable: str, check: str, data: Callable[[], xr.DataArray]) -> Case:
    """``weatherunc.fill`` of a user field; it must fail with ``check`` on ``variable``."""

    def build(work: Path, shared: Path | None) -> Scenario:
        return Scenario(action=lambda: fill(data(), model="idw", crs="EPSG:3035", progress=False))

    if not check:
        return Case(case_id, "fill", build, error=None)
    return Case(case_id, "fill", build, InputDataError, named(variable, check))


FILL_CASES: list[Case] = [
    fill_case("fill-valid", "", "", _field),
    fill_case("fill-units-reflectivity", "rain", "units convertible to mm/h", lambda: _field(units="dBZ")),
    fill_case("fill-units-missing", "rain", "units present", lambda: _field().drop_attrs()),
    fill_case("fill-metres-per-second-mislabelled", "rain", "plausible rate", lambda: _field(units="m s-1")),
    fill_case(
        "fill-undeclared-fill", "rain", "no undeclared fill values", lambda: _field(cells={(0, 0): -9999.0})
    ),
    fill_case("fill-negative-rate", "rain", "non-negative rate", lambda: _field(cells={(1, 1): -2.0})),
    fill_case(
        "fill-nan-coordinate",
        "x",
        "finite coordinates",
        lambda: _field(x=np.r_[np.nan, 1000.0 * np.arange(1, 7)]),
    ),
    fill_case(
        "fill-duplicated-coordinate",
        "y",
        "monotonic coordinates",
        lambda: _field(y=1000.0 * np.array([0, 1, 1, 2, 3, 4])),
    ),
    fill_case("fill-nothing-to-fill", "rain", "unobserved pixels present", lambda: _field().fillna(0.0)),
    fill_case("fill-wrong-dimensions", "rain", "dimensions", lambda: _field().rename({"y": "row"})),
]
