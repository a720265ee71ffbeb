"""Fitting the rows of the decoder's output layer to decoder features (L-BFGS).

:func:`mixture_nll` and :func:`gaussian_nll` are the likelihoods of what the interpolator
publishes (the mixture of bin softmaxes over latent draws; the Gaussian with the mixture's
moments); :func:`fit_bin_rows` and :func:`fit_gaussian_rows` minimise them; :func:`refit_head`
gathers the features (:func:`~weatherunc.training.head_refit.features.decoder_features`), fits and
returns the refitted model (Liu & Nocedal 1989 for L-BFGS).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict

import torch
from tqdm import tqdm

from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.training.head_refit.features import (
    DEFAULT_OPTIONS,
    GAUSSIAN_ROWS,
    DecoderFeatures,
    HeadRefitOptions,
    decoder_features,
    output_layer,
)
from weatherunc.training.sampling import Batch


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
    options: HeadRefitOptions = DEFAULT_OPTIONS,
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
