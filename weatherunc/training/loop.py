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
weights (:func:`initial_model`; a deterministic-attention checkpoint may start a run with
``model.stochastic_attention``) and keeps them as ``best`` until a step beats their validation
CRPS (Howard & Ruder 2018 for fine-tuning a pretrained model on new data). A non-finite loss,
output or weight stops the run with :class:`~weatherunc.training.divergence.TrainingDivergedError`
before anything is saved from it. The run folder's files: :mod:`weatherunc.training.run_folder`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from weatherunc.checkpoints import CheckpointError
from weatherunc.devices import autocast, choose_device, needs_gradient_scaler
from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import (
    ARCHITECTURE,
    NeuralProcessInterpolator,
    load_neural_process,
)
from weatherunc.models.neural_process.losses import neural_process_loss
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.tasks import Task
from weatherunc.training.config import STOCHASTIC_ATTENTION_OPTIONS, TrainingConfig
from weatherunc.training.convnp_config import ConvNPTrainingConfig
from weatherunc.training.divergence import diverged, require_finite_weights
from weatherunc.training.packing import catalog_training_data, load_training_data
from weatherunc.training.run_folder import RunFolder, TrainingResult, latest_checkpoint
from weatherunc.training.sampling import FrameBank, StepBatches, batch_stream
from weatherunc.training.schedule import learning_rate
from weatherunc.training.validation import validation_scores


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


def architecture_differences(
    config: TrainingConfig | ConvNPTrainingConfig, checkpoint: NeuralProcessConfig | ConvNPConfig
) -> list[str]:
    """The fields in which a checkpoint's architecture (an ANP's/CNP's or a ConvNP's) differs from
    ``config.model``, the data normalisation (``value_centre``, ``value_scale``) aside, each as
    ``name (checkpoint X, config Y)``; one entry ``architecture (...)`` when they are models of
    different kinds. A checkpoint without stochastic attention fits a config with it (its weights
    are all there; the attention prior's are new): the stochastic-attention options are then not
    compared."""
    expected = config.model.to_config(checkpoint.value_centre, checkpoint.value_scale)
    if type(expected) is not type(checkpoint):
        return [f"architecture (checkpoint {type(checkpoint).__name__}, config {type(expected).__name__})"]
    ignored: set[str] = set()
    if isinstance(checkpoint, NeuralProcessConfig) and not checkpoint.stochastic_attention:
        ignored = set(STOCHASTIC_ATTENTION_OPTIONS)
    names = [field.name for field in dataclasses.fields(checkpoint) if field.name not in ignored]
    return [
        f"{name} (checkpoint {getattr(checkpoint, name)!r}, config {getattr(expected, name)!r})"
        for name in names
        if getattr(checkpoint, name) != getattr(expected, name)
    ]


def with_stochastic_attention(model: NeuralProcess, config: NeuralProcessConfig) -> NeuralProcess:
    """A model of ``config`` (``model``'s with stochastic attention) holding ``model``'s weights; the
    attention prior's key networks keep their initialisation (last layer zero: the prior is the
    distance bias alone), so that the attention weights' mean is the deterministic attention."""
    stochastic = NeuralProcess(config)
    missing, unexpected = stochastic.load_state_dict(model.state_dict(), strict=False)
    new = [name for name in missing if ".attention.prior." not in name]
    if new or unexpected:
        raise CheckpointError(f"initialise_from: weights missing {new}, unexpected {unexpected}")
    return stochastic


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
    if config.model.stochastic_attention and not model.config.stochastic_attention:
        model = with_stochastic_attention(
            model, config.model.to_config(model.config.value_centre, model.config.value_scale)
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
    folder = RunFolder(directory, ARCHITECTURE, config, config.fingerprint())
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
        state = folder.resumed_state(sidecar)
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
        folder.save_snapshot("best", 0, model, {"validation": best_scores})
        tqdm.write(
            f"step 0 (initialise_from {config.initialise_from}): validation crps {best:.4f} nlpd "
            f"{best_scores['nlpd']:.3f} coverage_90 {best_scores['coverage_90']:.3f}"
        )
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    if step:
        folder.restore_optimiser(step, optimiser, model)
    scaler = torch.amp.GradScaler("cuda") if needs_gradient_scaler(device, config.precision) else None
    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    bar = tqdm(total=config.steps, initial=step, desc=f"training {config.name}", disable=not progress)
    if step and progress:
        bar.write(f"resuming {directory} from its checkpoint of step {step}")
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
                output,
                batch.target_values[..., 0].float(),
                batch.target_bins,
                bin_weight=config.bin_weight,
                attention_kl_weight=config.attention_kl_weight,
            )
        # torch.distributions refuses non-finite parameters (weights grown so large that outputs
        # overflow)
        except ValueError as error:
            if "invalid values" not in str(error):
                raise
            raise diverged(config, step + 1, "the model's outputs are not finite") from error
        loss_value = losses["loss"].item()
        if scaler is None and not math.isfinite(
            loss_value
        ):  # float16's gradient scaler skips such a step instead
            raise diverged(config, step + 1, f"the loss is {loss_value}")
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
            require_finite_weights(
                model, config, step
            )  # other steps: the next step's loss or outputs show it
        if validating:
            scores = _validate(model, config, device, tasks)
            history.append({"step": step, "train_loss": loss_value, **scores})
            if scores["crps"] < best:
                best, stale, best_scores = scores["crps"], 0, {"step": step, **scores}
                folder.save_best(step, model, best_scores)
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
            folder.save_last(step, model, optimiser, state)
        if stopped_early:
            break
    bar.close()
    (directory / "history.json").write_text(json.dumps(history, indent=2))
    return TrainingResult(
        folder.export_best(load_neural_process),
        step,
        best_scores,
        history,
        time.perf_counter() - started,
        stopped_early,
    )
