"""The neural process: encoders and decoder composed (Kim et al. 2019, "Attentive Neural Processes").

All tensors are normalised: inputs ``[batch, n, 2 + covariates]`` are centred coordinates
divided by ``coordinate_scale_km`` (then covariates), values ``[batch, n, 1]`` are the
standardised transformed rate. :mod:`weatherunc.models.neural_process.normalisation`
turns a :class:`~weatherunc.tasks.Task` into these tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.decoder import Decoder, DecoderOutput
from weatherunc.models.neural_process.encoders import DeterministicEncoder, LatentEncoder


@dataclass
class NeuralProcessOutput:
    """Decoder output per latent sample, ``[samples, batch, n_target]`` (logits ``[..., bins]``),
    and the latent prior ``q(z | C)`` / posterior ``q(z | C, T)`` (None without latent path)."""

    mean: torch.Tensor
    std: torch.Tensor
    logits: torch.Tensor | None
    prior: torch.distributions.Normal | None
    posterior: torch.distributions.Normal | None


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
        contexts. ``target_batch`` bounds memory of the cross-attention at prediction time.
        """
        representation = self.deterministic.encode_context(context_inputs, context_values)  # [batch, n_context, hidden]
        prior = posterior = None
        latents: list[torch.Tensor | None] = [None] * samples
        if self.latent is not None:
            prior = self.latent(context_inputs, context_values)
            if target_values is not None:
                posterior = self.latent(torch.cat([context_inputs, target_inputs], 1), torch.cat([context_values, target_values], 1))
            source = posterior if posterior is not None else prior
            latents = [source.rsample() for _ in range(samples)]  # each [batch, latent]
        batch = target_inputs.shape[1] if target_batch is None else target_batch
        pieces: list[list[DecoderOutput]] = [[] for _ in range(samples)]
        for start in range(0, target_inputs.shape[1], batch):
            targets = target_inputs[:, start : start + batch]
            attended, nearest = self.deterministic.attend(context_inputs, representation, targets)  # [batch, b, hidden], [batch, b, 1]
            for sample, latent in enumerate(latents):
                pieces[sample].append(self.decoder(targets, attended, latent, nearest))

        def stack(field: str) -> torch.Tensor:
            return torch.stack([torch.cat([getattr(piece, field) for piece in sample], 1) for sample in pieces])

        logits = stack("logits") if self.config.bins else None
        return NeuralProcessOutput(mean=stack("mean"), std=stack("std"), logits=logits, prior=prior, posterior=posterior)
