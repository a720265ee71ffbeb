"""The training loop of the convolutional neural process (config in, checkpoints out).

The same run folder as :mod:`weatherunc.training.loop` (:mod:`weatherunc.training.run_folder`):
``last`` (weights, optimiser, torch random state) every ``checkpoint_every`` steps and ``best`` at
each better validation CRPS, step-stamped, sidecars written last; a killed run resumes from its
newest complete checkpoint and continues as if it had never stopped (each step's batch is drawn
from ``default_rng([seed, step])``).
AdamW, warm-up and cosine decay (:func:`~weatherunc.training.schedule.learning_rate`), gradient
clipping, a progress bar. The loss is the censored Gaussian likelihood plus the bins'
cross-entropy (:func:`~weatherunc.models.convnp.model.censored_loss`), plus ``crps_weight`` times
the CRPS in mm/h (:func:`~weatherunc.models.convnp.model.rate_crps_loss`). Every ``snapshot_every``
steps the weights are also kept as ``snapshot-STEP`` (for learning curves), and ``history.json``
records each validation with the step and the wall time spent training.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from weatherunc.checkpoints import CheckpointError
from weatherunc.devices import choose_device
from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.convnp.interpolator import ARCHITECTURE, ConvNPInterpolator, load_convnp
from weatherunc.models.convnp.model import ConvNP, ConvNPOutput, censored_loss, rate_crps_loss
from weatherunc.training.convnp_config import ConvNPTrainingConfig
from weatherunc.training.divergence import diverged, require_finite_weights
from weatherunc.training.grid_sampling import GridBatch, sample_grid_batch
from weatherunc.training.patches import load_bank, load_frames, save_bank
from weatherunc.training.prior_bank import PriorBank, build_prior_bank
from weatherunc.training.run_folder import RunFolder, TrainingResult, latest_checkpoint
from weatherunc.training.sampling import FrameBank, step_generator
from weatherunc.training.schedule import learning_rate
from weatherunc.training.validation import validation_scores, validation_tasks


def training_frames(
    config: ConvNPTrainingConfig, *, progress: bool = True, open_options: dict | None = None
) -> FrameBank:
    """The training frames, from the run folder's cache when it holds these selections, else read
    from the catalog and cached there."""
    key = config.frames_fingerprint()
    cache = Path(config.output_dir) / "frames.npz"
    bank = load_bank(cache, key)
    if bank is None:
        bank = load_frames(config.train, progress=progress, open_options=open_options)
        save_bank(bank, cache, key)
    return bank


def training_losses(
    output: ConvNPOutput, batch: GridBatch, config: ConvNPTrainingConfig, model_config: ConvNPConfig
) -> dict[str, torch.Tensor]:
    """The training loss of ``config`` on ``batch``: the censored likelihood with the bins' cross
    entropy (:func:`~weatherunc.models.convnp.model.censored_loss`), plus ``crps_weight`` times
    :func:`~weatherunc.models.convnp.model.rate_crps_loss` (then also under ``"crps"``)."""
    losses = censored_loss(
        output,
        batch.target_values,
        batch.target_bins,
        batch.weights,
        dry_bound=model_config.dry_bound,
        bin_weight=config.bin_weight,
    )
    if config.crps_weight:
        losses["crps"] = rate_crps_loss(output, batch.target_values, batch.weights, model_config)
        losses["loss"] = losses["loss"] + config.crps_weight * losses["crps"]
    return losses


def initial_convnp(config: ConvNPTrainingConfig, bank: FrameBank | None) -> ConvNP:
    """The model a fresh run starts from: new weights with the data normalisation of ``bank``, or,
    with ``config.initialise_from``, that checkpoint's weights and normalisation copied into the
    configured architecture where they overlap. What the checkpoint lacks (a prior model's wider
    input layer: its weights for the prior's channels) and a prior model's two correction outputs
    start at zero, so that the model predicts its prior, or with ``config.new_weights == "random"``
    are drawn with ``config.seed`` as a fresh layer's (uniform within ``1 / sqrt(fan_in)``, the
    torch default; Lakshminarayanan et al. 2017: random initialisation is what makes deep-ensemble
    members disagree). Raises :class:`~weatherunc.checkpoints.CheckpointError` naming
    ``initialise_from`` when the file is missing or broken, or when a tensor differs in more than
    its size. ``bank`` (for the normalisation) may be ``None`` with ``initialise_from``."""
    if config.initialise_from is None:
        if bank is None:
            raise ValueError("initial_convnp: a run without initialise_from needs the training frames' bank")
        centre, scale = bank.transformed_statistics(config.model.to_config(0.0, 1.0))
        return ConvNP(config.model.to_config(centre, scale))
    path = Path(config.initialise_from)
    try:
        source, _ = load_convnp(path)
    except (CheckpointError, OSError) as error:
        raise CheckpointError(f"initialise_from: {error}") from error
    model = ConvNP(config.model.to_config(source.config.value_centre, source.config.value_scale))
    generator = torch.Generator().manual_seed(config.seed)
    random = config.new_weights == "random"
    target = model.state_dict()
    for name, tensor in source.state_dict().items():
        if name not in target or target[name].dim() != tensor.dim():
            raise CheckpointError(
                f"initialise_from: {path} has {name} {list(tensor.shape)}, not in this model"
            )
        overlap = tuple(slice(0, min(a, b)) for a, b in zip(target[name].shape, tensor.shape))
        if target[name].shape != tensor.shape:
            if random and target[name].dim() > 1:
                _fresh_uniform(target[name], target[name][0].numel(), generator)
            else:
                target[name].zero_()
        target[name][overlap] = tensor[overlap]
    model.load_state_dict(target)
    if model.config.prior_channels:
        model.start_at_prior()
        if random:
            output = model.decoder[-1]
            with torch.no_grad():
                _fresh_uniform(output.weight[:2], output.in_features, generator)
                _fresh_uniform(output.bias[:2], output.in_features, generator)
    return model


def _fresh_uniform(tensor: torch.Tensor, fan_in: int, generator: torch.Generator) -> None:
    """Fill ``tensor`` in place from U(-1 / sqrt(fan_in), 1 / sqrt(fan_in)) (torch's default for
    the weights and biases of ``Linear`` and ``Conv2d``)."""
    bound = 1.0 / math.sqrt(fan_in)
    tensor.copy_((torch.rand(tensor.shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound)


def train_convnp(
    config: ConvNPTrainingConfig,
    *,
    restart: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    open_options: dict | None = None,
) -> TrainingResult:
    """Train (or resume) the run in ``config.output_dir``; see the module docstring.

    A run resumes from ``last`` when its fingerprint matches the config and refuses a changed
    config unless ``restart``. ``stop_after`` ends this call after that many steps in total.
    """
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    directory = Path(config.output_dir)
    device = choose_device(config.device)
    torch.manual_seed(config.seed)
    folder = RunFolder(directory, ARCHITECTURE, config, config.fingerprint())
    bank = training_frames(config, progress=progress, open_options=open_options)
    tasks = validation_tasks(
        config.validation, config.validation_tasks, seed=config.task_seed + 1, open_options=open_options
    )
    step, history, best, stale, best_scores, trained_seconds = 0, [], math.inf, 0, {}, 0.0
    resumable = latest_checkpoint(directory, "last")
    if resumable is not None and not restart:
        model, sidecar = load_convnp(resumable)
        state = folder.resumed_state(sidecar)
        step, history, best, stale, best_scores, trained_seconds = (
            state[name] for name in ("step", "history", "best", "stale", "best_scores", "trained_seconds")
        )
    else:
        model = initial_convnp(config, bank)
        for stale_file in [*directory.glob("*.safetensors"), *directory.glob("*.json")]:
            stale_file.unlink()
    prior_bank = None
    if model.config.prior_channels:
        bank_folder = build_prior_bank(
            directory / "prior_bank",
            bank,
            config.frames_fingerprint(),
            model.config,
            config.sampling,
            count=config.prior_tasks,
            seed=config.task_seed,
            progress=progress,
        )
        prior_bank = PriorBank.load(bank_folder, model.config)
    model = model.to(device)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    if step:
        folder.restore_optimiser(step, optimiser, model)
    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    bar = tqdm(total=config.steps, initial=step, desc=f"training {config.name}", disable=not progress)
    if step and progress:
        bar.write(f"resuming {directory} from its checkpoint of step {step}")
    stopped_early = False
    segment_start = time.perf_counter()
    while step < end:
        model.train()
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(config, step)
        generator = step_generator(config.seed, step)
        if prior_bank is None:
            batch = sample_grid_batch(bank, model.config, config.sampling, config.batch_size, generator)
        else:
            batch = prior_bank.sample(model.config, config.batch_size, generator)
        batch = batch.to(device)
        output = model(batch.observed, batch.values, batch.positions, batch.prior, batch.target_prior)
        losses = training_losses(output, batch, config, model.config)
        loss_value = losses["loss"].item()
        if not math.isfinite(loss_value):
            raise diverged(config, step + 1, f"the loss is {loss_value}")
        optimiser.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip)
        optimiser.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", nll=f"{losses['nll'].item():.3f}")
        validating = step % config.validate_every == 0 or step == config.steps
        saving = step % config.checkpoint_every == 0 or step == end or validating
        if validating or saving:
            require_finite_weights(model, config, step)
            trained_seconds += time.perf_counter() - segment_start
        if validating:
            model.eval()
            scores = validation_scores(
                ConvNPInterpolator(model=model, name=config.name, device=str(device)), tasks
            )
            history.append(
                {"step": step, "seconds": round(trained_seconds, 3), "train_loss": loss_value, **scores}
            )
            if scores["crps"] < best:
                best, stale, best_scores = scores["crps"], 0, {"step": step, **scores}
                folder.save_best(step, model, best_scores)
            else:
                stale += 1
            bar.write(
                f"step {step} ({trained_seconds:.0f} s): validation crps {scores['crps']:.4f} nlpd "
                f"{scores['nlpd']:.3f} coverage_90 {scores['coverage_90']:.3f}"
                + (" (best)" if stale == 0 else "")
            )
            stopped_early = stale >= config.patience
            (directory / "history.json").write_text(json.dumps(history, indent=2))
        if step % config.snapshot_every == 0:
            folder.save_snapshot(
                "snapshot", step, model, {"step": step, "seconds": round(trained_seconds, 1)}
            )
        if saving or stopped_early:
            state = {
                "step": step,
                "history": history,
                "best": best,
                "stale": stale,
                "best_scores": best_scores,
                "trained_seconds": trained_seconds,
            }
            folder.save_last(step, model, optimiser, state)
        if validating or saving:
            segment_start = time.perf_counter()
        if stopped_early:
            break
    bar.close()
    return TrainingResult(
        folder.export_best(load_convnp),
        step,
        best_scores,
        history,
        time.perf_counter() - started,
        stopped_early,
    )
