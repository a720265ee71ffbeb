"""The training data of a config in one file, so that a run on another machine (a GPU node)
needs neither the raw radar files nor the catalog's readers.

``catalog_training_data`` loads the frame bank and the validation tasks of a config from the
catalog (what :func:`~weatherunc.training.loop.train` uses without a pack);
``pack_training_data`` writes them to one compressed ``.npz``
(no pickled objects) with a JSON header naming the selections, the validation seed and count.
``load_training_data`` reads it back and refuses a file packed for other selections.
The file is written to a temporary name and renamed when complete, so a crash never leaves a
half-written pack under the final name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from weatherunc.tasks import Task
from weatherunc.training.config import TrainingConfig
from weatherunc.training.sampling import BankedFrame, FrameBank
from weatherunc.training.validation import validation_tasks

FORMAT = "weatherunc.TrainingPack/1"


def _header(config: TrainingConfig) -> dict:
    """What the pack must match: the frame selections and the validation draw."""
    return {
        "format": FORMAT,
        "train": [selection.model_dump(mode="json") for selection in config.train],
        "validation": [selection.model_dump(mode="json") for selection in config.validation],
        "validation_tasks": config.validation_tasks,
        "validation_seed": config.seed + 1,
    }


def catalog_training_data(
    config: TrainingConfig, *, progress: bool = True, open_options: dict | None = None
) -> tuple[FrameBank, list[Task]]:
    """The training frames and the validation tasks (seed ``config.seed + 1``) read from the catalog."""
    bank = FrameBank.load(config.train, progress=progress, open_options=open_options)
    tasks = validation_tasks(
        config.validation, config.validation_tasks, seed=config.seed + 1, open_options=open_options
    )
    return bank, tasks


def pack_training_data(
    config: TrainingConfig, path: Path, *, progress: bool = True, open_options: dict | None = None
) -> Path:
    """Write the frames and validation tasks of ``config`` to ``path`` (``.npz``); returns the path."""
    bank, tasks = catalog_training_data(config, progress=progress, open_options=open_options)
    header = _header(config)
    header["frames"] = [frame.label for frame in bank.frames]
    header["tasks"] = [
        {
            "target_dim": task.target_dim,
            "description": task.description,
            "target_coords": sorted(task.target_coords),
            "covariates": task.context_covariates is not None,
        }
        for task in tasks
    ]
    arrays: dict[str, np.ndarray] = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for number, frame in enumerate(bank.frames):
        arrays[f"frame{number}_values"], arrays[f"frame{number}_x_km"], arrays[f"frame{number}_y_km"] = (
            frame.values,
            frame.x_km,
            frame.y_km,
        )
    for number, task in enumerate(tasks):
        for name in ("context_coordinates", "context_values", "target_coordinates", "target_values"):
            arrays[f"task{number}_{name}"] = getattr(task, name)
        if task.context_covariates is not None:
            arrays[f"task{number}_context_covariates"], arrays[f"task{number}_target_covariates"] = (
                task.context_covariates,
                task.target_covariates,
            )
        for name, values in task.target_coords.items():
            arrays[f"task{number}_coord_{name}"] = np.asarray(values)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    try:
        np.savez_compressed(partial, **arrays)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # only left if writing failed
    return path


def load_training_data(path: Path, config: TrainingConfig) -> tuple[FrameBank, list[Task]]:
    """The frame bank and validation tasks packed in ``path``; ``ValueError`` if the file is not a
    pack or was packed for other selections, validation seed or count than ``config``'s."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(archive["header"].tobytes())
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not a training pack ({error})") from error
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}")
    expected = _header(config)
    for key in ("train", "validation", "validation_tasks", "validation_seed"):
        if header.get(key) != expected[key]:
            raise ValueError(
                f"{path}: packed {key}={header.get(key)} but the config has {expected[key]}; pack again for "
                "this config"
            )
    with np.load(path, allow_pickle=False) as archive:
        frames = tuple(
            BankedFrame(
                archive[f"frame{n}_values"], archive[f"frame{n}_x_km"], archive[f"frame{n}_y_km"], label
            )
            for n, label in enumerate(header["frames"])
        )
        tasks = []
        for n, meta in enumerate(header["tasks"]):
            covariates = (
                (archive[f"task{n}_context_covariates"], archive[f"task{n}_target_covariates"])
                if meta["covariates"]
                else (None, None)
            )
            tasks.append(
                Task(
                    archive[f"task{n}_context_coordinates"],
                    archive[f"task{n}_context_values"],
                    archive[f"task{n}_target_coordinates"],
                    archive[f"task{n}_target_values"],
                    context_covariates=covariates[0],
                    target_covariates=covariates[1],
                    target_dim=meta["target_dim"],
                    target_coords={name: archive[f"task{n}_coord_{name}"] for name in meta["target_coords"]},
                    description=meta["description"],
                )
            )
    return FrameBank(frames), tasks
