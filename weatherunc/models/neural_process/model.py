"""The neural process: encoders and decoder composed (Kim et al. 2019, "Attentive Neural Processes").

All tensors are normalised: inputs ``[batch, n, 2 + covariates]`` are centred coordinates
divided by ``coordinate_scale_km`` (then covariates), values ``[batch, n, 1]`` are the
standardised transformed rate. :mod:`weatherunc.models.neural_process.normalisation`
turns a :class:`~weatherunc.tasks.Task` into these tensors.

With ``task_normalisation`` the model further standardises each task by its own contexts
(centre ``m`` = context mean, scale ``s = sqrt(context variance + floor**2)``), so that a
convective field with rates far above the training fields' looks like one the model has seen;
the decoder's Gaussian is mapped back (``mean * s + m``, ``std * s``) and the decoder is given
``(m, log s)`` so that the bin head still sees the absolute level. The floor keeps a dry or
uniform task from being blown up. ``benchmarks/interpolation.py`` compares it with the global
standardisation on the test events.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.decoder import Decoder, DecoderOutput
from weatherunc.models.neural_process.encoders import DeterministicEncoder, LatentEncoder
from weatherunc.models.neural_process.randomness import standard_normal_like


@dataclass
class NeuralProcessOutput:
    """Decoder output per latent sample, ``[samples, batch, n_target]`` (logits ``[..., bins]``),
    the latent prior ``q(z | C)`` / posterior ``q(z | C, T)`` (None without latent path), and with
    stochastic attention (while gradients are recorded) the KL of each target's attention weights to
    their prior ``[batch, n_target]`` (None otherwise)."""

    mean: torch.Tensor
    std: torch.Tensor
    logits: torch.Tensor | None
    prior: torch.distributions.Normal | None
    posterior: torch.distributions.Normal | None
    attention_divergence: torch.Tensor | None = None


class NeuralProcess(nn.Module):
    """Deterministic path + optional latent path + decoder; see the module docstring."""

    def __init__(self, config: NeuralProcessConfig) -> None:
        super().__init__()
        self.config = config
        inputs = 2 + config.covariates
        self.deterministic = DeterministicEncoder(config, inputs)
        self.latent = LatentEncoder(config, inputs) if config.latent else None
        self.decoder = Decoder(config, inputs)

    def forward(
        self,
        context_inputs: torch.Tensor,
        context_values: torch.Tensor,
        target_inputs: torch.Tensor,
        target_values: torch.Tensor | None = None,
        *,
        samples: int = 1,
        target_batch: int | None = None,
    ) -> NeuralProcessOutput:
        """Predict every target.

        With ``target_values`` (training), latents are drawn from the posterior ``q(z | C, T)``;
        without, from the prior ``q(z | C)``. ``samples`` latent draws share one encoding of the
        contexts. ``target_batch`` bounds memory of the cross-attention at prediction time. With
        ``stochastic_attention`` each target's attention weights are drawn once per call, shared by
        the latent samples (several attention draws: several calls with other seeds).
        """
        statistics = None
        if self.config.task_normalisation:
            centre, scale = self.task_statistics(context_values)  # [batch, 1, 1] each
            context_values = (context_values - centre) / scale
            target_values = None if target_values is None else (target_values - centre) / scale
            statistics = torch.cat([centre[:, 0], torch.log(scale[:, 0])], dim=-1)  # [batch, 2]
        representation = self.deterministic.encode_context(
            context_inputs, context_values
        )  # [batch, n_context, hidden]
        prior = posterior = None
        latents: list[torch.Tensor | None] = [None] * samples
        if self.latent is not None:
            prior = self.latent(context_inputs, context_values)
            if target_values is not None:
                posterior = self.latent(
                    torch.cat([context_inputs, target_inputs], 1),
                    torch.cat([context_values, target_values], 1),
                )
            source = posterior if posterior is not None else prior
            # Normal.rsample, with the noise from the prediction's own generator (randomness.drawing)
            latents = [source.loc + standard_normal_like(source.loc) * source.scale for _ in range(samples)]
        batch = target_inputs.shape[1] if target_batch is None else target_batch
        pieces: list[list[DecoderOutput]] = [[] for _ in range(samples)]
        divergences: list[torch.Tensor | None] = []
        for start in range(0, target_inputs.shape[1], batch):
            targets = target_inputs[:, start : start + batch]
            attended, nearest = self.deterministic.attend(
                context_inputs, representation, targets
            )  # [batch, b, hidden], [batch, b, 1]
            divergences.append(self.deterministic.attention_divergence())  # [batch, b] or None
            for sample, latent in enumerate(latents):
                pieces[sample].append(self.decoder(targets, attended, latent, nearest, statistics))

        def stack(field: str) -> torch.Tensor:
            return torch.stack(
                [torch.cat([getattr(piece, field) for piece in sample], 1) for sample in pieces]
            )

        logits = stack("logits") if self.config.bins else None
        mean, std = stack("mean"), stack("std")  # [samples, batch, n_target]
        if statistics is not None:
            mean, std = mean * scale[:, 0] + centre[:, 0], std * scale[:, 0]
        divergence = (
            None if any(part is None for part in divergences) else torch.cat(divergences, 1)
        )  # [batch, n_target]
        return NeuralProcessOutput(
            mean=mean,
            std=std,
            logits=logits,
            prior=prior,
            posterior=posterior,
            attention_divergence=divergence,
        )

    def task_statistics(self, context_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre and scale of each task's contexts, ``[batch, 1, 1]`` each, in float32:
        the mean, and ``sqrt(variance + task_scale_floor**2)`` (never below the floor, so a dry
        task is not blown up)."""
        values = context_values.float()
        centre = values.mean(dim=1, keepdim=True)
        variance = values.var(dim=1, keepdim=True, unbiased=False)
        return centre, torch.sqrt(variance + self.config.task_scale_floor**2)
