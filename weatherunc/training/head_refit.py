"""Refit a trained neural process's bin head under the conditions it predicts in.

Training scores the categorical head with latents drawn from the posterior ``q(z | C, T)``,
which has seen the targets, and with dropout on; prediction draws latents from the prior
``q(z | C)``, switches dropout off and averages the softmax over the draws
(:class:`~weatherunc.models.neural_process.interpolator.NeuralProcessInterpolator`). The head is
fitted in the first setting and used in the second: the train/test mismatch of the neural
process ELBO (Le et al. 2018, "Empirical evaluation of neural process objectives"; Foong et al.
2020 train on the predictive likelihood instead). On the shipped ANP it made the head
underconfident on the validation events: the temperature fitted there was 0.73 before this
refit and 1.07 after it (benchmarks/results/calibration.json).

This module refits only the last linear map from the decoder's features to the bin logits
(last-layer retraining, Kirichenko et al. 2023, "Last layer re-training is sufficient for
robustness to spurious correlations"): the features of training tasks are computed once, in
prediction mode with ``latent_samples`` prior draws, and the bin rows of the decoder's output
layer are fitted by L-BFGS to the likelihood of the mixture the interpolator publishes,
``p(bin) = mean_s softmax(W h_s + b)``. The Gaussian rows (mean and std) and every other weight
stay as they are, so the model's Gaussian predictions do not change.

With ``gaussian=True`` the two Gaussian rows are refitted too, to the likelihood of the Gaussian
the interpolator publishes: the moments of the mixture over latent draws (mean of the means;
variance of the means plus mean of the variances), after the task normalisation is undone. This
changes the Gaussian predictions, so it is an option, not the default: on the shipped ANP it
cured the overconfidence in all-dry tiles (MRMS gauge NLPD 25.1 -> 1.8) but left the validation
CRPS where it was (0.2724) and raised the validation NLPD (0.312 -> 0.344; benchmarks/HISTORY.md,
"Gaussian-row refit").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from weatherunc import conventions
from weatherunc.checkpoints import CheckpointError, save_checkpoint
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.fitting import pool_predictions, probabilities_and_observed_bins
from weatherunc.metrics import categorical_nll, top_label_ece
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.interpolator import (
    ARCHITECTURE,
    NeuralProcessInterpolator,
    load_neural_process,
)
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.tasks import Task
from weatherunc.training.config import TrainingConfig
from weatherunc.training.loop import architecture_config
from weatherunc.training.packing import catalog_training_data, load_training_data
from weatherunc.training.sampling import Batch, StepBatches
from weatherunc.training.validation import mean_scores

#: Rows of the decoder's output layer before the bin logits: the Gaussian mean and std.
GAUSSIAN_ROWS = 2


@dataclass(frozen=True)
class HeadRefitOptions:
    """How the head is refitted: training batches drawn (their stream's ``seed``), targets kept
    per task, prior latent draws per task (the fitted mixture has this many components; the
    interpolator averages 16), L-BFGS iterations, and whether the Gaussian rows are refitted too."""

    batches: int = 300
    targets_per_task: int = 64
    latent_samples: int = 4
    seed: int = 1
    max_iterations: int = 200
    gaussian: bool = False

    def __post_init__(self) -> None:
        for name in ("batches", "targets_per_task", "latent_samples", "max_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"head refit option {name} must be >= 1, got {getattr(self, name)}")


def output_layer(model: NeuralProcess) -> torch.nn.Linear:
    """The decoder's last linear layer: rows ``[mean, std, bin logits...]``."""
    return model.decoder.network[-1]


@dataclass(frozen=True)
class DecoderFeatures:
    """What the refit is fitted to, per kept target (``n`` of them).

    features ``[latent_samples, n, hidden]`` (float16, to bound memory), bins ``[n]`` (long,
    observed bin), values ``[n]`` (observed standardised transformed rate), centre and scale
    ``[n]`` (the task's normalisation, 0 and 1 without ``task_normalisation``).
    """

    features: torch.Tensor
    bins: torch.Tensor
    values: torch.Tensor
    centre: torch.Tensor
    scale: torch.Tensor


def decoder_features(
    model: NeuralProcess, batches: Iterable[Batch], options: HeadRefitOptions, *, progress: bool = False
) -> DecoderFeatures:
    """Decoder features in prediction mode (prior latents, dropout off) and what was observed.

    ``n = batches x batch x targets_per_task``: the targets kept per task are drawn with
    ``default_rng([seed, batch number])``.
    """
    if not model.config.bins and not options.gaussian:
        raise ValueError(
            "the model has no categorical head (config.bins == 0) and gaussian=False: nothing to refit"
        )
    captured: list[torch.Tensor] = []
    hook = output_layer(model).register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0].detach())
    )
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in DecoderFeatures.__dataclass_fields__}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
            for number, batch in enumerate(
                tqdm(
                    batches, total=options.batches, desc="decoder features", disable=not progress, leave=False
                )
            ):
                torch.manual_seed(options.seed * 1_000_003 + number)
                captured.clear()
                batch = batch.to(device)
                model(
                    batch.context_inputs,
                    batch.context_values,
                    batch.target_inputs,
                    samples=options.latent_samples,
                )
                stacked = torch.stack(captured).float().cpu()  # [samples, batch, n_target, hidden]
                keep = min(options.targets_per_task, stacked.shape[2])
                chosen = torch.as_tensor(
                    np.sort(
                        np.random.default_rng([options.seed, number]).choice(
                            stacked.shape[2], keep, replace=False
                        )
                    )
                )
                parts["features"].append(
                    stacked[:, :, chosen].reshape(stacked.shape[0], -1, stacked.shape[-1]).half()
                )
                parts["bins"].append(batch.target_bins.cpu()[:, chosen].reshape(-1))
                parts["values"].append(batch.target_values.float().cpu()[:, chosen, 0].reshape(-1))
                if model.config.task_normalisation:
                    centre, scale = (
                        statistic.cpu()[:, 0, 0] for statistic in model.task_statistics(batch.context_values)
                    )  # [batch] each
                else:
                    centre, scale = torch.zeros(stacked.shape[1]), torch.ones(stacked.shape[1])
                parts["centre"].append(centre.repeat_interleave(keep))
                parts["scale"].append(scale.repeat_interleave(keep))
    finally:
        hook.remove()
        model.train(was_training)
    return DecoderFeatures(
        **{name: torch.cat(values, dim=1 if name == "features" else 0) for name, values in parts.items()}
    )


def mixture_nll(
    weight: torch.Tensor,
    bias: torch.Tensor,
    features: torch.Tensor,
    bins: torch.Tensor,
    *,
    chunk: int = 65536,
) -> torch.Tensor:
    """Mean of ``-log mean_s softmax(weight h_s + bias)[bin]`` over targets.

    weight ``[bins, hidden]``, bias ``[bins]``, features ``[samples, n, hidden]``, bins ``[n]``.
    """
    total = torch.zeros((), dtype=weight.dtype)
    samples = features.shape[0]
    for start in range(0, features.shape[1], chunk):
        block = features[:, start : start + chunk].to(weight.dtype)
        log_probabilities = torch.log_softmax(block @ weight.T + bias, dim=-1)  # [samples, n, bins]
        observed = bins[start : start + chunk]
        picked = log_probabilities.gather(-1, observed[None, :, None].expand(samples, -1, 1))[
            ..., 0
        ]  # [samples, n]
        total = total + (torch.logsumexp(picked, dim=0) - math.log(samples)).sum()
    return -total / features.shape[1]


def gaussian_nll(
    weight: torch.Tensor, bias: torch.Tensor, data: DecoderFeatures, minimum_std: float, *, chunk: int = 65536
) -> torch.Tensor:
    """Mean negative log density of the observed values under the published Gaussian.

    weight ``[2, hidden]``, bias ``[2]`` (the mean and std rows). Per latent draw ``s`` the decoder
    gives ``mean_s = o_0 * scale + centre`` and ``std_s = (m + (1 - m) softplus(o_1)) * scale``
    (``m`` = ``minimum_std``); the Gaussian published has the mixture's moments,
    ``mean_s`` averaged and ``var_s(mean_s) + mean_s(std_s^2)``.
    """
    total = torch.zeros((), dtype=weight.dtype)
    for start in range(0, data.features.shape[1], chunk):
        part = slice(start, start + chunk)
        outputs = data.features[:, part].to(weight.dtype) @ weight.T + bias  # [samples, n, 2]
        centre, scale = data.centre[part].to(weight.dtype), data.scale[part].to(weight.dtype)
        means = outputs[..., 0] * scale + centre
        stds = (minimum_std + (1.0 - minimum_std) * torch.nn.functional.softplus(outputs[..., 1])) * scale
        mean, variance = means.mean(0), means.var(0, unbiased=False) + stds.pow(2).mean(0)
        total = (
            total
            + 0.5
            * (
                torch.log(2 * math.pi * variance)
                + (data.values[part].to(weight.dtype) - mean).pow(2) / variance
            ).sum()
        )
    return total / data.features.shape[1]


def _minimise(
    loss,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    max_iterations: int,
    progress: bool,
    description: str,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` minimising ``loss(weight, bias)`` by L-BFGS from the given start."""
    bar = tqdm(
        total=max_iterations * 5 // 4,
        desc=f"{description} (L-BFGS evaluations)",
        disable=not progress,
        leave=False,
    )
    with torch.enable_grad(), bar:
        fitted_weight = weight.detach().to(dtype).clone().requires_grad_(True)
        fitted_bias = bias.detach().to(dtype).clone().requires_grad_(True)
        optimiser = torch.optim.LBFGS(
            [fitted_weight, fitted_bias],
            lr=1.0,
            max_iter=max_iterations,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-7,
        )

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            value = loss(fitted_weight, fitted_bias)
            value.backward()
            bar.update()
            return value

        optimiser.step(closure)
    return fitted_weight.detach(), fitted_bias.detach()


def fit_bin_rows(
    features: torch.Tensor,
    bins: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    max_iterations: int = 200,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight ``[bins, hidden]`` and bias ``[bins]`` minimising :func:`mixture_nll`, from the given start
    (float32, L-BFGS)."""
    if features.shape[1] != bins.shape[0] or features.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"features {tuple(features.shape)} do not fit bins {tuple(bins.shape)} and weight "
            f"{tuple(weight.shape)}"
        )
    if int(bins.min()) < 0 or int(bins.max()) >= weight.shape[0]:
        raise ValueError(
            f"observed bins must lie in 0..{weight.shape[0] - 1}, got {int(bins.min())}..{int(bins.max())}"
        )
    return _minimise(
        lambda w, b: mixture_nll(w, b, features, bins),
        weight,
        bias,
        max_iterations=max_iterations,
        progress=progress,
        description="fitting the bin head",
    )


def fit_gaussian_rows(
    data: DecoderFeatures,
    weight: torch.Tensor,
    bias: torch.Tensor,
    minimum_std: float,
    *,
    max_iterations: int = 200,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std rows (weight ``[2, hidden]``, bias ``[2]``) minimising :func:`gaussian_nll`, from the
    given start (float64, L-BFGS)."""
    return _minimise(
        lambda w, b: gaussian_nll(w, b, data, minimum_std),
        weight,
        bias,
        max_iterations=max_iterations,
        progress=progress,
        description="fitting the Gaussian rows",
        dtype=torch.float64,
    )


def refit_head(
    model: NeuralProcess,
    batches: Iterable[Batch],
    options: HeadRefitOptions = HeadRefitOptions(),
    *,
    progress: bool = False,
) -> tuple[NeuralProcess, dict]:
    """The model with its bin rows (and with ``options.gaussian`` its Gaussian rows) refitted, as
    a new module (``model`` is left as it is), and a report: the options, targets used, and the
    training-target NLLs before and after."""
    data = decoder_features(model, batches, options, progress=progress)
    layer = output_layer(model)
    weight, bias = layer.weight.detach().clone(), layer.bias.detach().clone()
    report: dict = {"options": asdict(options), "targets": int(data.bins.numel())}
    if model.config.bins:
        rows = slice(GAUSSIAN_ROWS, None)
        report["training_mixture_nll_before"] = float(
            mixture_nll(weight[rows].float(), bias[rows].float(), data.features, data.bins)
        )
        fitted_weight, fitted_bias = fit_bin_rows(
            data.features,
            data.bins,
            weight[rows],
            bias[rows],
            max_iterations=options.max_iterations,
            progress=progress,
        )
        report["training_mixture_nll_after"] = float(
            mixture_nll(fitted_weight, fitted_bias, data.features, data.bins)
        )
        weight[rows], bias[rows] = fitted_weight.to(weight.dtype), fitted_bias.to(bias.dtype)
    if options.gaussian:
        rows, minimum = slice(0, GAUSSIAN_ROWS), model.config.minimum_std
        report["training_gaussian_nll_before"] = float(
            gaussian_nll(weight[rows].double(), bias[rows].double(), data, minimum)
        )
        fitted_weight, fitted_bias = fit_gaussian_rows(
            data, weight[rows], bias[rows], minimum, max_iterations=options.max_iterations, progress=progress
        )
        report["training_gaussian_nll_after"] = float(gaussian_nll(fitted_weight, fitted_bias, data, minimum))
        weight[rows], bias[rows] = fitted_weight.to(weight.dtype), fitted_bias.to(bias.dtype)
    refitted = NeuralProcess(model.config)
    refitted.load_state_dict(model.state_dict())
    with torch.no_grad():
        output_layer(refitted).weight.copy_(weight)
        output_layer(refitted).bias.copy_(bias)
    return refitted.eval(), report


def check_architecture(found: NeuralProcessConfig, expected: NeuralProcessConfig, checkpoint: Path) -> None:
    """``CheckpointError`` naming the fields where a checkpoint's config differs from the training
    config's (the value normalisation compared to a relative 1e-6)."""
    found_fields, expected_fields = found.to_dict(), expected.to_dict()
    differing = []
    for name in sorted(set(found_fields) | set(expected_fields)):
        a, b = found_fields.get(name), expected_fields.get(name)
        if name in ("value_centre", "value_scale") and a is not None and b is not None:
            if not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12):
                differing.append(f"{name} {a!r} vs {b!r}")
        elif a != b:
            differing.append(f"{name} {a!r} vs {b!r}")
    if differing:
        raise CheckpointError(
            f"checkpoint {checkpoint} was not trained with this training config: "
            + "; ".join(differing[:4])
            + " (checkpoint vs config)"
        )


def validation_report(model: NeuralProcess, tasks: Sequence[Task]) -> dict[str, float]:
    """The model's scores on ``tasks``: mean crps, nlpd, rmse and coverage_90 over tasks
    (:func:`~weatherunc.training.validation.mean_scores`), and (with a bin head) the multiclass
    ``nll`` and top-label ``ece`` (15 bins) of the bin probabilities pooled over every target."""
    interpolator = NeuralProcessInterpolator(model=model)
    predictions = [interpolator.predict(task) for task in tasks]
    report = mean_scores(predictions, tasks)
    if model.config.bins:
        pooled, truth = pool_predictions(
            [with_bin_probabilities(prediction) for prediction in predictions],
            [task.target_values for task in tasks],
        )
        probabilities, observed = probabilities_and_observed_bins(pooled, truth)  # targets with a known truth
        forecast = xr.DataArray(probabilities, dims=("target", conventions.BIN))
        observed_bin = xr.DataArray(observed.astype(np.float64), dims="target")
        report.update(
            targets=int(observed.size),
            nll=float(categorical_nll(forecast, observed_bin)),
            ece=float(top_label_ece(forecast, observed_bin)),
        )
    return report


def refit_checkpoint(
    config: TrainingConfig,
    checkpoint: Path,
    output: Path,
    options: HeadRefitOptions = HeadRefitOptions(),
    *,
    packed: Path | None = None,
    progress: bool = True,
    open_options: dict | None = None,
) -> dict:
    """Refit the head of ``checkpoint`` (:func:`refit_head`) on tasks from ``config``'s training frames and
    write it to ``output``.

    The checkpoint must have been trained with ``config`` (architecture and value normalisation
    are checked). Tasks are drawn as in training (``config.sampling``, ``config.batch_size``) from
    the stream ``options.seed``. The report (also stored in the new sidecar's metadata under
    ``head_refit``, with the sha256 of the checkpoint it started from) holds the training-task
    NLLs and the validation tasks' scores (:func:`validation_report`) before and after. ``output`` is written
    weights first, sidecar last; it may not be ``checkpoint``.
    """
    checkpoint, output = Path(checkpoint), Path(output)
    if output.resolve() == checkpoint.resolve():
        raise ValueError(
            f"output {output} is the checkpoint itself: the refit never overwrites the weights it starts from"
        )
    model, sidecar = load_neural_process(checkpoint)
    bank, validation = (
        load_training_data(packed, config)
        if packed is not None
        else catalog_training_data(config, progress=progress, open_options=open_options)
    )
    check_architecture(model.config, architecture_config(config, bank), checkpoint)
    batches = StepBatches(bank, model.config, config.sampling, config.batch_size, options.seed)
    refitted, report = refit_head(
        model, (batches[step] for step in range(options.batches)), options, progress=progress
    )
    report["validation_before"], report["validation_after"] = (
        validation_report(model, validation),
        validation_report(refitted, validation),
    )
    report["from_sha256"] = sidecar["sha256"]
    metadata = {**sidecar.get("metadata", {}), "head_refit": report}
    save_checkpoint(
        output,
        refitted.state_dict(),
        architecture=ARCHITECTURE,
        config=refitted.config.to_dict(),
        metadata_=metadata,
    )
    return report
