"""One explicit training loop for neural processes (nanoGPT-style: config in, checkpoints out).

Device chosen automatically (CUDA when present, else CPU) unless the config names one;
bfloat16 autocast on CUDA; batches drawn ahead by ``sampling_workers`` processes (each step's
batch has its own random stream, so the result does not depend on how many); AdamW with cosine
decay; gradient clipping; seeded; a progress bar; validation with the verification scores
every ``validate_every`` steps; early stopping after ``patience`` validations without a better
CRPS. ``last`` (weights, optimiser, torch random state) is saved every ``checkpoint_every``
steps and ``best`` at each improvement, as step-stamped files whose sidecars are written last;
a killed run resumes from its newest complete checkpoint and continues exactly as if it had
never stopped. ``initialise_from`` fine-tunes: a fresh run starts from a trained checkpoint's
weights (:func:`initial_model`) and keeps them as ``best`` until a step beats their validation
CRPS (Howard & Ruder 2018 for fine-tuning a pretrained model on new data). A non-finite loss,
output or weight stops the run with :class:`TrainingDivergedError` before anything is saved from it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from weatherunc.checkpoints import CheckpointError, load_checkpoint, read_sidecar, save_checkpoint, sha256_of
from weatherunc.devices import autocast, choose_device, needs_gradient_scaler
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import (
    ARCHITECTURE,
    NeuralProcessInterpolator,
    load_neural_process,
)
from weatherunc.models.neural_process.losses import neural_process_loss
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.tasks import Task
from weatherunc.training.config import TrainingConfig
from weatherunc.training.packing import catalog_training_data, load_training_data
from weatherunc.training.sampling import FrameBank, StepBatches, batch_stream
from weatherunc.training.validation import validation_scores

TRAINING_STATE = "weatherunc.TrainingState"


class TrainingDivergedError(ValueError):
    """Training produced a non-finite loss or non-finite weights; the run folder keeps the
    checkpoints written before (none is written from the diverged weights)."""


def _diverged(config: TrainingConfig, step: int, what: str) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"training diverged at step {step}: {what}; lower learning_rate ({config.learning_rate}) or "
        "gradient_clip "
        f"({config.gradient_clip}); {config.output_dir} keeps the checkpoints written before"
    )


def _require_finite_weights(model: NeuralProcess, config: TrainingConfig, step: int) -> None:
    """Raise :class:`TrainingDivergedError` if any weight of ``model`` is NaN or infinite (one
    device synchronisation when all are finite)."""
    if bool(torch.stack([torch.isfinite(parameter).all() for parameter in model.parameters()]).all()):
        return
    bad = [name for name, parameter in model.named_parameters() if not bool(torch.isfinite(parameter).all())]
    raise _diverged(
        config, step, f"non-finite weights in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}"
    )


@dataclass
class TrainingResult:
    """Where the run ended: best checkpoint, steps done, best validation scores, history, seconds."""

    best_checkpoint: Path
    steps: int
    best_scores: dict[str, float]
    history: list[dict[str, float]]
    seconds: float
    stopped_early: bool


def learning_rate(config: TrainingConfig, step: int) -> float:
    """Linear warm-up over 5 % of the steps, then cosine decay to a tenth."""
    warmup = max(1, config.steps // 20)
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, config.steps - warmup))
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _optimiser_tensors(optimiser: torch.optim.Optimizer, model: torch.nn.Module) -> dict[str, torch.Tensor]:
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


def _restore_optimiser(
    optimiser: torch.optim.Optimizer, model: torch.nn.Module, tensors: dict[str, torch.Tensor]
) -> None:
    parameters = dict(model.named_parameters())
    for key, value in tensors.items():
        if key == "torch_rng_state":
            torch.set_rng_state(value)
            continue
        name, state_key = key.split("::")
        optimiser.state[parameters[name]][state_key] = value.to(parameters[name].device)


def _stamped(directory: Path, kind: str, step: int) -> Path:
    return directory / f"{kind}-{step:08d}.safetensors"


def _remove_older(directory: Path, kind: str, step: int) -> None:
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
                or _stamped(directory, "optimiser", int(path.stem.split("-")[1]))
                .with_suffix(".json")
                .exists()
            ):
                return path
    return None


def _save(path: Path, model: NeuralProcess, config: TrainingConfig, fingerprint: str, extra: dict) -> Path:
    metadata = {"training_config": config.model_dump(mode="json"), "fingerprint": fingerprint, **extra}
    return save_checkpoint(
        path, model.state_dict(), architecture=ARCHITECTURE, config=model.config.to_dict(), metadata_=metadata
    )


def architecture_config(config: TrainingConfig, bank: FrameBank) -> NeuralProcessConfig:
    """The model's architecture config, its value normalisation set to the mean and standard
    deviation of the transformed observed rates of the training frames in ``bank``."""
    provisional = config.model.to_config(0.0, 1.0)
    centre, scale = bank.transformed_statistics(provisional)
    return config.model.to_config(centre, scale)


def _validate(
    model: NeuralProcess, config: TrainingConfig, device: torch.device, tasks: Sequence[Task]
) -> dict[str, float]:
    """Mean verification scores of ``model`` on the validation tasks
    (:func:`~weatherunc.training.validation.validation_scores`)."""
    return validation_scores(
        NeuralProcessInterpolator(
            model=model, name=config.name, samples=8, seed=config.seed, device=str(device)
        ),
        tasks,
    )


def architecture_differences(config: TrainingConfig, checkpoint: NeuralProcessConfig) -> list[str]:
    """The fields in which a checkpoint's architecture differs from ``config.model``, the data
    normalisation (``value_centre``, ``value_scale``) aside, each as ``name (checkpoint X, config Y)``."""
    expected = config.model.to_config(checkpoint.value_centre, checkpoint.value_scale)
    return [
        f"{name} (checkpoint {getattr(checkpoint, name)!r}, config {getattr(expected, name)!r})"
        for name in NeuralProcessConfig.__dataclass_fields__
        if getattr(checkpoint, name) != getattr(expected, name)
    ]


def _initialise_from(config: TrainingConfig) -> Path | None:
    """``config.initialise_from`` as a path, or None; raises :class:`CheckpointError` naming it when it is
    not a file."""
    if config.initialise_from is None:
        return None
    path = Path(config.initialise_from)
    if not path.is_file():
        raise CheckpointError(f"initialise_from: {path} is not a file")
    return path


def initial_model(config: TrainingConfig, bank: FrameBank) -> NeuralProcess:
    """The model a fresh run starts from: new weights with the data normalisation of ``bank``'s
    training frames (:func:`architecture_config`), or, with ``config.initialise_from``, that
    checkpoint's weights and its own data normalisation (the weights were learnt on values
    standardised by it), for fine-tuning on other frames or continuing a run with a new schedule.
    Raises :class:`~weatherunc.checkpoints.CheckpointError` naming ``initialise_from`` when the
    file is missing or broken, or when its architecture differs from ``config.model``.
    """
    path = _initialise_from(config)
    if path is None:
        return NeuralProcess(architecture_config(config, bank))
    try:
        model, _ = load_neural_process(path)
    except CheckpointError as error:
        raise CheckpointError(f"initialise_from: {error}") from error
    differing = architecture_differences(config, model.config)
    if differing:
        raise CheckpointError(
            f"initialise_from: {path} has another architecture than the config's model options: "
            + "; ".join(differing)
        )
    return model


def train(
    config: TrainingConfig,
    *,
    restart: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    open_options: dict | None = None,
    packed: Path | None = None,
) -> TrainingResult:
    """Train (or resume) the run in ``config.output_dir``.

    A run resumes from ``last`` when its fingerprint matches the config, and refuses a
    changed config unless ``restart`` (which starts over). ``stop_after`` ends this call
    after that many steps in total (used to test resuming). ``packed`` is a file written by
    :func:`~weatherunc.training.packing.pack_training_data` for this config: the frames and
    validation tasks are read from it instead of the catalog. A fresh run starts from
    :func:`initial_model` (new weights, or those of ``config.initialise_from``); a fine-tuning
    run first scores its starting weights on the validation tasks (step 0 of the history), so
    that it ends with ``best.safetensors`` no worse there than where it started.
    """
    started = time.perf_counter()
    directory = Path(config.output_dir)
    device = choose_device(config.device)
    torch.manual_seed(config.seed)
    _initialise_from(config)  # before the fingerprint reads it
    fingerprint = config.fingerprint()
    bank, tasks = (
        load_training_data(packed, config)
        if packed is not None
        else catalog_training_data(config, progress=progress, open_options=open_options)
    )
    step, history, best, stale = 0, [], math.inf, 0
    best_scores: dict[str, float] = {}
    resumable = latest_checkpoint(directory, "last")
    if resumable is not None and not restart:
        model, sidecar = load_neural_process(resumable)
        if sidecar["metadata"].get("fingerprint") != fingerprint:
            raise CheckpointError(
                f"{directory} holds a run of another training config; pass restart=True (--restart) to "
                "start over"
            )
        state = sidecar["metadata"]["state"]
        step, history, best, stale, best_scores = (
            state["step"],
            state["history"],
            state["best"],
            state["stale"],
            state["best_scores"],
        )
    else:
        model = initial_model(config, bank)
        for stale_file in directory.glob("*.safetensors"):
            stale_file.unlink()
    model = model.to(device)
    if step == 0 and config.initialise_from is not None:
        # the starting weights are the score to beat: best.safetensors is never worse on validation
        # than the checkpoint fine-tuned
        best_scores = {"step": 0, **_validate(model, config, device, tasks)}
        best = best_scores["crps"]
        history.append(dict(best_scores))
        _save(_stamped(directory, "best", 0), model, config, fingerprint, {"validation": best_scores})
        tqdm.write(
            f"step 0 (initialise_from {config.initialise_from}): validation crps {best:.4f} nlpd "
            f"{best_scores['nlpd']:.3f} coverage_90 {best_scores['coverage_90']:.3f}"
        )
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    if step:
        tensors, _ = load_checkpoint(_stamped(directory, "optimiser", step), architecture=TRAINING_STATE)
        _restore_optimiser(optimiser, model, tensors)
    scaler = torch.amp.GradScaler("cuda") if needs_gradient_scaler(device, config.precision) else None
    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    bar = tqdm(total=config.steps, initial=step, desc=f"training {config.name}", disable=not progress)
    stopped_early = False
    pinned = device.type == "cuda" and config.sampling_workers > 0
    batches = batch_stream(
        StepBatches(bank, model.config, config.sampling, config.batch_size, config.seed),
        range(step, end),
        workers=config.sampling_workers,
        pin_memory=pinned,
    )
    while step < end:
        model.train()
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(config, step)
        batch = next(batches).to(device, non_blocking=pinned)
        try:
            with autocast(device, config.precision):
                output = model(
                    batch.context_inputs, batch.context_values, batch.target_inputs, batch.target_values
                )
            losses = neural_process_loss(
                output, batch.target_values[..., 0].float(), batch.target_bins, bin_weight=config.bin_weight
            )
        # torch.distributions refuses non-finite parameters (weights grown so large that outputs
        # overflow)
        except ValueError as error:
            if "invalid values" not in str(error):
                raise
            raise _diverged(config, step + 1, "the model's outputs are not finite") from error
        loss_value = losses["loss"].item()
        if scaler is None and not math.isfinite(
            loss_value
        ):  # float16's gradient scaler skips such a step instead
            raise _diverged(config, step + 1, f"the loss is {loss_value}")
        optimiser.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(losses["loss"]).backward()
            scaler.unscale_(optimiser)
        else:
            losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip)
        if scaler is not None:
            scaler.step(optimiser)
            scaler.update()
        else:
            optimiser.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", nll=f"{losses['nll'].item():.3f}")
        validating = step % config.validate_every == 0 or step == config.steps
        if validating or step % config.checkpoint_every == 0 or step == end:
            _require_finite_weights(
                model, config, step
            )  # other steps: the next step's loss or outputs show it
        if validating:
            scores = _validate(model, config, device, tasks)
            history.append({"step": step, "train_loss": loss_value, **scores})
            if scores["crps"] < best:
                best, stale, best_scores = scores["crps"], 0, {"step": step, **scores}
                _save(
                    _stamped(directory, "best", step), model, config, fingerprint, {"validation": best_scores}
                )
                _remove_older(directory, "best", step)
            else:
                stale += 1
            bar.write(
                f"step {step}: validation crps {scores['crps']:.4f} nlpd {scores['nlpd']:.3f} coverage_90 "
                f"{scores['coverage_90']:.3f}" + (" (best)" if stale == 0 else "")
            )
            if stale >= config.patience:
                stopped_early = True
        if step % config.checkpoint_every == 0 or step == end or stopped_early:
            state = {
                "step": step,
                "history": history,
                "best": best,
                "stale": stale,
                "best_scores": best_scores,
            }
            save_checkpoint(
                _stamped(directory, "optimiser", step),
                _optimiser_tensors(optimiser, model),
                architecture=TRAINING_STATE,
                config={},
                metadata_={"step": step},
            )
            _save(_stamped(directory, "last", step), model, config, fingerprint, {"state": state})
            _remove_older(directory, "last", step)
            _remove_older(directory, "optimiser", step)
        if stopped_early:
            break
    bar.close()
    (directory / "history.json").write_text(json.dumps(history, indent=2))
    best_checkpoint = latest_checkpoint(directory, "best")
    if best_checkpoint is not None:
        exported, sidecar = load_neural_process(best_checkpoint)
        save_checkpoint(
            directory / "best.safetensors",
            exported.state_dict(),
            architecture=ARCHITECTURE,
            config=exported.config.to_dict(),
            metadata_=sidecar["metadata"],
        )
    return TrainingResult(
        directory / "best.safetensors",
        step,
        best_scores,
        history,
        time.perf_counter() - started,
        stopped_early,
    )
