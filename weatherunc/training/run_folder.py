"""The run folder of a training loop: step-stamped checkpoints, resuming, and the exported best.

A run folder holds ``last-STEP`` (the model and the loop's state), ``optimiser-STEP`` (the
optimiser's state and the torch random state), ``best-STEP`` (the weights of the best validation
so far) and, at the end, ``best.safetensors``. Every file is a checkpoint of
:mod:`weatherunc.checkpoints` whose sidecar is written last; older files of a kind are removed
only after the newer one is complete, so a run killed at any moment resumes from its newest
complete ``last`` with the optimiser state of the same step. Used by
:func:`~weatherunc.training.loop.train` and
:func:`~weatherunc.training.convnp_loop.train_convnp`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from weatherunc.checkpoints import CheckpointError, load_checkpoint, read_sidecar, save_checkpoint, sha256_of

#: Architecture name of the optimiser-state checkpoints.
TRAINING_STATE = "weatherunc.TrainingState"


@dataclass
class TrainingResult:
    """Where the run ended: best checkpoint, steps done, best validation scores, history, seconds."""

    best_checkpoint: Path
    steps: int
    best_scores: dict[str, float]
    history: list[dict[str, float]]
    seconds: float
    stopped_early: bool


def stamped_path(directory: Path, kind: str, step: int) -> Path:
    """``directory/KIND-STEP.safetensors``, the step written with eight digits."""
    return directory / f"{kind}-{step:08d}.safetensors"


def remove_older(directory: Path, kind: str, step: int) -> None:
    """Delete checkpoints of ``kind`` older than ``step`` (after the new one is complete)."""
    for path in directory.glob(f"{kind}-*.safetensors"):
        if int(path.stem.split("-")[1]) < step:
            path.with_suffix(".json").unlink(missing_ok=True)
            path.unlink(missing_ok=True)


def latest_checkpoint(directory: Path, kind: str) -> Path | None:
    """The newest complete checkpoint ``KIND-STEP.safetensors`` in ``directory`` (its sidecar,
    written last, exists and the weights match its sha256), or None. A run killed while saving
    leaves at worst an incomplete newest file, which is skipped."""
    for path in sorted(Path(directory).glob(f"{kind}-*.safetensors"), reverse=True):
        try:
            sidecar = read_sidecar(path)
        except CheckpointError:
            continue
        if path.exists() and sha256_of(path) == sidecar["sha256"]:
            if (
                kind != "last"
                or stamped_path(directory, "optimiser", int(path.stem.split("-")[1]))
                .with_suffix(".json")
                .exists()
            ):
                return path
    return None


def optimiser_tensors(optimiser: torch.optim.Optimizer, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The optimiser's state as named tensors (``PARAMETER::KEY``) and the torch random state
    (``torch_rng_state``)."""
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    tensors: dict[str, torch.Tensor] = {}
    for group in optimiser.param_groups:
        for parameter in group["params"]:
            for key, value in optimiser.state.get(parameter, {}).items():
                tensors[f"{names[id(parameter)]}::{key}"] = (
                    value if torch.is_tensor(value) else torch.tensor(value)
                )
    tensors["torch_rng_state"] = torch.get_rng_state()
    return tensors


def restore_optimiser(
    directory: Path, step: int, optimiser: torch.optim.Optimizer, model: torch.nn.Module
) -> None:
    """Load the optimiser state and torch random state saved at ``step`` (:func:`optimiser_tensors`)
    into ``optimiser`` and torch."""
    tensors, _ = load_checkpoint(stamped_path(directory, "optimiser", step), architecture=TRAINING_STATE)
    parameters = dict(model.named_parameters())
    for key, value in tensors.items():
        if key == "torch_rng_state":
            torch.set_rng_state(value)
            continue
        name, state_key = key.split("::")
        optimiser.state[parameters[name]][state_key] = value.to(parameters[name].device)


@dataclass(frozen=True)
class RunFolder:
    """The folder of one training run: where its checkpoints go, the architecture name and training
    config written with each model, and the config's fingerprint that a resumed run must match."""

    directory: Path
    architecture: str
    training_config: BaseModel
    fingerprint: str

    def save_model(self, path: Path, model: torch.nn.Module, extra: dict[str, Any]) -> Path:
        """Write ``model`` (with a ``config`` that has ``to_dict``) to ``path``, its sidecar's metadata
        holding the training config, the fingerprint and ``extra``; returns the sidecar path."""
        metadata = {
            "training_config": self.training_config.model_dump(mode="json"),
            "fingerprint": self.fingerprint,
            **extra,
        }
        return save_checkpoint(
            path,
            model.state_dict(),
            architecture=self.architecture,
            config=model.config.to_dict(),
            metadata_=metadata,
        )

    def save_snapshot(self, kind: str, step: int, model: torch.nn.Module, extra: dict[str, Any]) -> Path:
        """Write ``KIND-STEP`` (:meth:`save_model`), keeping the older ones; returns the sidecar path."""
        return self.save_model(stamped_path(self.directory, kind, step), model, extra)

    def save_best(self, step: int, model: torch.nn.Module, scores: dict[str, float]) -> None:
        """Write ``best-STEP`` (the model with its validation ``scores``), then remove the older ones."""
        self.save_snapshot("best", step, model, {"validation": scores})
        remove_older(self.directory, "best", step)

    def save_last(
        self, step: int, model: torch.nn.Module, optimiser: torch.optim.Optimizer, state: dict[str, Any]
    ) -> None:
        """Write ``optimiser-STEP`` then ``last-STEP`` (the model with the loop's ``state``), then
        remove the older ones of both kinds."""
        save_checkpoint(
            stamped_path(self.directory, "optimiser", step),
            optimiser_tensors(optimiser, model),
            architecture=TRAINING_STATE,
            config={},
            metadata_={"step": step},
        )
        self.save_snapshot("last", step, model, {"state": state})
        remove_older(self.directory, "last", step)
        remove_older(self.directory, "optimiser", step)

    def resumed_state(self, sidecar: dict[str, Any]) -> dict[str, Any]:
        """The loop's state saved in the sidecar of a ``last`` checkpoint; raises
        :class:`~weatherunc.checkpoints.CheckpointError` when the run was of another training config."""
        if sidecar["metadata"].get("fingerprint") != self.fingerprint:
            raise CheckpointError(
                f"{self.directory} holds a run of another training config; pass restart=True (--restart) "
                "to start over"
            )
        return sidecar["metadata"]["state"]

    def restore_optimiser(self, step: int, optimiser: torch.optim.Optimizer, model: torch.nn.Module) -> None:
        """Load the optimiser state and torch random state saved at ``step`` into ``optimiser`` and
        torch (:func:`restore_optimiser`)."""
        restore_optimiser(self.directory, step, optimiser, model)

    def export_best(self, load: Callable[[Path], tuple[torch.nn.Module, dict]]) -> Path:
        """Copy the newest complete ``best-STEP`` to ``best.safetensors`` through the model's checked
        loader ``load`` (nothing when there is none); returns that path."""
        exported_path = self.directory / "best.safetensors"
        best_checkpoint = latest_checkpoint(self.directory, "best")
        if best_checkpoint is not None:
            exported, sidecar = load(best_checkpoint)
            save_checkpoint(
                exported_path,
                exported.state_dict(),
                architecture=self.architecture,
                config=exported.config.to_dict(),
                metadata_=sidecar["metadata"],
            )
        return exported_path
