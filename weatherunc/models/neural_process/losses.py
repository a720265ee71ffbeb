"""Training objective of a neural process, kept beside the model.

ELBO (Kim et al. 2019, eq. 3; Garnelo et al. 2018): ``E_q(z|C,T)[log p(y_T | x_T, r_C, z)]
- KL(q(z|C,T) || q(z|C))``, per target point; plus, with a categorical head, the
cross-entropy of the rate's bin (Sønderby et al. 2020, MetNet) weighted by ``bin_weight``.
With stochastic attention (Kim et al. 2022), ``attention_kl_weight`` times the KL of the
attention weights to their prior, per attention weight (averaged over heads and contexts, summed
over cross-attention layers) and averaged over targets: the ELBO's KL of one target's weights
divided by the number of heads times contexts, so that the weight does not depend on how many
contexts a task has.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from weatherunc.models.neural_process.model import NeuralProcessOutput


def neural_process_loss(
    output: NeuralProcessOutput,
    target_values: torch.Tensor,
    target_bins: torch.Tensor | None = None,
    *,
    bin_weight: float = 1.0,
    attention_kl_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Loss terms, each a scalar.

    target_values ``[batch, n_target]`` (standardised transformed rate), target_bins
    ``[batch, n_target]`` (long, bin index). Returns ``loss`` (to minimise), ``nll`` (Gaussian
    negative log-likelihood per target), ``kl`` (per target), ``cross_entropy`` and
    ``attention_kl`` (per target; zero without stochastic attention).
    """
    likelihood = torch.distributions.Normal(output.mean, output.std).log_prob(
        target_values[None]
    )  # [samples, batch, n_target]
    nll = -likelihood.mean()
    kl = torch.zeros((), device=target_values.device)
    if output.prior is not None and output.posterior is not None:
        kl = (
            torch.distributions.kl_divergence(output.posterior, output.prior).sum(-1).mean()
            / target_values.shape[1]
        )
    cross_entropy = torch.zeros((), device=target_values.device)
    if output.logits is not None and target_bins is not None:
        logits = output.logits.reshape(-1, output.logits.shape[-1])
        cross_entropy = functional.cross_entropy(
            logits.float(), target_bins.expand(output.logits.shape[0], -1, -1).reshape(-1)
        )
    loss = nll + kl + bin_weight * cross_entropy
    attention_kl = torch.zeros((), device=target_values.device)
    if output.attention_divergence is not None:
        attention_kl = output.attention_divergence.float().mean()
        loss = loss + attention_kl_weight * attention_kl
    return {
        "loss": loss,
        "nll": nll,
        "kl": kl,
        "cross_entropy": cross_entropy,
        "attention_kl": attention_kl,
    }
