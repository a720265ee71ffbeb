"""The on-the-grid convolutional conditional neural process (Gordon et al. 2020, "Convolutional
Conditional Neural Processes", ICLR; the on-the-grid form of its section 4, with a U-Net as in
Bruinsma et al. 2023, "Autoregressive Conditional Neural Processes", and the neuralprocesses library).

The context set enters as two grids on the internal grid of ``config.grid_km``: ``observed``
(1 where a cell holds at least one context, else 0) and ``values`` (the mean standardised
transformed rate of the contexts in the cell, 0 elsewhere). A set convolution with Gaussian
kernels of several widths turns them into density channels ``K * observed`` and normalised signal
channels ``K * (observed * values) / K * observed`` (a normalised convolution; Knutsson & Westin
1993); a U-Net maps these to features; targets read the features by bilinear interpolation at
their (fractional) grid positions, and a pointwise MLP gives the mean and standard deviation of a
Gaussian on the standardised transformed rate and the logits of the rain-rate bins.
Everything is translation-equivariant, and the network is fully convolutional: any grid size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.convnp.prior import prior_moments


@dataclass
class ConvNPOutput:
    """Per target ``[batch, n_target]``: Gaussian ``mean`` and ``std`` of the standardised
    transformed rate; ``logits`` ``[batch, n_target, bins]`` of the rain-rate bins."""

    mean: torch.Tensor
    std: torch.Tensor
    logits: torch.Tensor


def gaussian_kernels(lengthscales_cells: list[float]) -> torch.Tensor:
    """1-D Gaussian kernels ``[n_lengthscales, 2 * radius + 1]``, each summing to 1, with
    ``radius = ceil(3 * max(lengthscales))``."""
    radius = max(1, math.ceil(3 * max(lengthscales_cells)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernels = torch.stack([torch.exp(-0.5 * (offsets / scale) ** 2) for scale in lengthscales_cells])
    return kernels / kernels.sum(1, keepdim=True)


class SetConvolution(nn.Module):
    """Context grids ``observed``, ``values`` ``[batch, 1, H, W]`` -> ``[batch, 2 + 2L, H, W]``:
    the two grids themselves, then L density and L normalised signal channels (separable
    Gaussian convolutions with zero padding: outside the grid nothing is observed)."""

    def __init__(self, config: ConvNPConfig) -> None:
        super().__init__()
        scales = [length / config.grid_km for length in config.set_conv_lengthscales_km]
        self.register_buffer("kernels", gaussian_kernels(scales), persistent=False)
        self.count = len(scales)

    @property
    def channels(self) -> int:
        """Number of output channels."""
        return 2 + 2 * self.count

    def forward(self, observed: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        both = torch.cat([observed, observed * values], dim=1).repeat_interleave(
            self.count, dim=1
        )  # [B, 2L, H, W]
        kernels = self.kernels.to(both.dtype).repeat(2, 1)  # [2L, k]
        size = kernels.shape[1]
        smoothed = functional.conv2d(
            both, kernels[:, None, :, None], padding=(size // 2, 0), groups=2 * self.count
        )
        smoothed = functional.conv2d(
            smoothed, kernels[:, None, None, :], padding=(0, size // 2), groups=2 * self.count
        )
        density, weighted = smoothed[:, : self.count], smoothed[:, self.count :]
        signal = weighted / (density + 1e-5)
        return torch.cat([observed, observed * values, density, signal], dim=1)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with SiLU and a residual connection (1x1 when widths differ)."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(inputs, outputs, 3, padding=1)
        self.second = nn.Conv2d(outputs, outputs, 3, padding=1)
        self.skip = nn.Conv2d(inputs, outputs, 1) if inputs != outputs else nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = functional.silu(self.first(features))
        return functional.silu(self.second(hidden) + self.skip(features))


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015): ``[batch, inputs, H, W]`` -> ``[batch, channels[0], H, W]``
    with H and W multiples of ``2 ** (len(channels) - 1)``; average pooling down, nearest
    upsampling and a 3x3 convolution up, skip connections concatenated."""

    def __init__(self, inputs: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.stem = nn.Conv2d(inputs, channels[0], 3, padding=1)
        self.down = nn.ModuleList(
            [ResidualBlock(channels[0], channels[0])]
            + [ResidualBlock(channels[level - 1], channels[level]) for level in range(1, len(channels))]
        )
        self.lift = nn.ModuleList(
            [
                nn.Conv2d(channels[level], channels[level - 1], 3, padding=1)
                for level in range(1, len(channels))
            ]
        )
        self.up = nn.ModuleList(
            [ResidualBlock(2 * channels[level - 1], channels[level - 1]) for level in range(1, len(channels))]
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        skips = []
        hidden = self.down[0](functional.silu(self.stem(features)))
        for block in self.down[1:]:
            skips.append(hidden)
            hidden = block(functional.avg_pool2d(hidden, 2))
        for level in reversed(range(len(self.lift))):
            hidden = functional.silu(
                self.lift[level](functional.interpolate(hidden, scale_factor=2.0, mode="nearest"))
            )
            hidden = self.up[level](torch.cat([hidden, skips[level]], dim=1))
        return hidden


def read_at(features: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of ``features`` ``[batch, C, H, W]`` at ``positions`` ``[batch, n, 2]``
    (row, column in cell units, 0 at the first cell's centre) -> ``[batch, n, C]``; positions
    outside the grid read the nearest edge."""
    height, width = features.shape[-2:]
    row = 2.0 * positions[..., 0] / max(height - 1, 1) - 1.0
    column = 2.0 * positions[..., 1] / max(width - 1, 1) - 1.0
    grid = torch.stack([column, row], dim=-1)[:, None].to(features.dtype)  # [B, 1, n, 2] as (x, y)
    sampled = functional.grid_sample(
        features, grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    return sampled[:, :, 0].transpose(1, 2)


#: Decoder output that makes ``softplus`` 1: a prior model's std starts at the prior's.
_UNIT_SOFTPLUS = math.log(math.e - 1.0)


class ConvNP(nn.Module):
    """Set convolution, U-Net and pointwise decoder; see the module docstring.

    With a GP prior (``config.prior == "gp"``), the prior's quantile grids ``[batch, 3, H, W]``
    join the encoder's channels, and the decoder's first two outputs correct the prior's moments
    at each target (:func:`~weatherunc.models.convnp.prior.prior_moments` of the prior's quantiles
    at the targets ``[batch, n, 3]``): mean = prior mean + output 0, std = minimum_std + prior std
    x softplus(output 1 + log(e - 1)); with ``config.correction_bound`` b, mean = prior mean +
    prior std x b tanh(output 0 / b) and std = minimum_std + prior std x exp(b tanh(output 1 / b)).
    Those two outputs start at zero, so that an untrained prior model predicts the prior.
    """

    def __init__(self, config: ConvNPConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SetConvolution(config)
        self.unet = UNet(self.encoder.channels + config.prior_channels, config.channels)
        self.decoder = nn.Sequential(
            nn.Linear(config.channels[0], config.decoder_hidden),
            nn.SiLU(),
            nn.Linear(config.decoder_hidden, config.decoder_hidden),
            nn.SiLU(),
            nn.Linear(config.decoder_hidden, 2 + config.bins),
        )
        if config.prior_channels:
            self.start_at_prior()

    def start_at_prior(self) -> None:
        """Zero the decoder's two correction outputs, so that a prior model predicts its prior."""
        with torch.no_grad():
            self.decoder[-1].weight[:2].zero_()
            self.decoder[-1].bias[:2].zero_()

    @property
    def multiple(self) -> int:
        """Grid sizes must be multiples of this (:meth:`features` pads to it)."""
        return 2 ** (self.config.levels - 1)

    def features(
        self, observed: torch.Tensor, values: torch.Tensor, prior: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Grid features ``[batch, channels[0], H, W]`` from the context grids ``[batch, 1, H, W]``
        and, for a prior model, the prior's grids ``[batch, 3, H, W]`` (padded with unobserved
        cells to a multiple of :attr:`multiple` and cropped back)."""
        height, width = observed.shape[-2:]
        pad_rows, pad_columns = -height % self.multiple, -width % self.multiple
        inputs = self.encoder(observed, values)
        if self.config.prior_channels:
            if prior is None or prior.shape != (observed.shape[0], self.config.prior_channels, height, width):
                raise ValueError(
                    f"a model with prior {self.config.prior!r} needs prior grids "
                    f"[{observed.shape[0]}, {self.config.prior_channels}, {height}, {width}], got "
                    f"{None if prior is None else list(prior.shape)}"
                )
            inputs = torch.cat([inputs, prior.to(inputs.dtype)], dim=1)
        if pad_rows or pad_columns:
            inputs = functional.pad(inputs, (0, pad_columns, 0, pad_rows))
        return self.unet(inputs)[..., :height, :width]

    def decode(
        self, features: torch.Tensor, positions: torch.Tensor, target_prior: torch.Tensor | None = None
    ) -> ConvNPOutput:
        """Predictive outputs at ``positions`` ``[batch, n, 2]`` (row, column in cells) read from
        ``features``, for a prior model corrections of the prior's quantiles at the targets
        ``target_prior`` ``[batch, n, 3]``."""
        output = self.decoder(read_at(features, positions))
        if not self.config.prior_channels:
            std = self.config.minimum_std + functional.softplus(output[..., 1])
            return ConvNPOutput(mean=output[..., 0], std=std, logits=output[..., 2:])
        if target_prior is None or target_prior.shape != (*positions.shape[:2], self.config.prior_channels):
            raise ValueError(
                f"a model with prior {self.config.prior!r} needs the prior at the targets "
                f"[{positions.shape[0]}, {positions.shape[1]}, {self.config.prior_channels}], got "
                f"{None if target_prior is None else list(target_prior.shape)}"
            )
        prior_mean, prior_std = prior_moments(target_prior.to(output.dtype), self.config.minimum_std)
        bound = self.config.correction_bound
        if bound is None:
            std = self.config.minimum_std + prior_std * functional.softplus(output[..., 1] + _UNIT_SOFTPLUS)
            return ConvNPOutput(mean=prior_mean + output[..., 0], std=std, logits=output[..., 2:])
        mean = prior_mean + prior_std * bound * torch.tanh(output[..., 0] / bound)
        std = self.config.minimum_std + prior_std * torch.exp(bound * torch.tanh(output[..., 1] / bound))
        return ConvNPOutput(mean=mean, std=std, logits=output[..., 2:])

    def forward(
        self,
        observed: torch.Tensor,
        values: torch.Tensor,
        positions: torch.Tensor,
        prior: torch.Tensor | None = None,
        target_prior: torch.Tensor | None = None,
    ) -> ConvNPOutput:
        """``observed``, ``values`` ``[batch, 1, H, W]``; ``positions`` ``[batch, n_target, 2]``;
        for a prior model the prior's grids ``prior`` ``[batch, 3, H, W]`` and its quantiles at
        the targets ``target_prior`` ``[batch, n_target, 3]``, else ``None``."""
        return self.decode(self.features(observed, values, prior), positions, target_prior)


def censored_loss(
    output: ConvNPOutput,
    target_values: torch.Tensor,
    target_bins: torch.Tensor,
    weights: torch.Tensor,
    *,
    dry_bound: float,
    bin_weight: float,
) -> dict[str, torch.Tensor]:
    """Training loss, each term a weighted mean over targets.

    ``target_values`` ``[batch, n]`` standardised transformed rates, ``target_bins`` ``[batch, n]``
    (long), ``weights`` ``[batch, n]`` (0 for padding). A dry target (value at ``dry_bound``)
    contributes ``-log Phi((dry_bound - mean) / std)``, the probability mass the predictive
    distribution ``max(g^-1(Z), 0)`` gives to 0 mm/h (a Tobit likelihood; Tobin 1958); a wet one
    the Gaussian density. Plus ``bin_weight`` times the bins' cross-entropy (Sønderby et al. 2020).
    """
    dry = target_values <= dry_bound + 1e-6
    standardised = (target_values - output.mean) / output.std
    wet_nll = 0.5 * standardised**2 + torch.log(output.std) + 0.5 * math.log(2 * math.pi)
    dry_nll = -torch.special.log_ndtr((dry_bound - output.mean) / output.std)
    nll_each = torch.where(dry, dry_nll, wet_nll)
    total = weights.sum().clamp_min(1.0)
    nll = (nll_each * weights).sum() / total
    cross_entropy = (
        functional.cross_entropy(
            output.logits.reshape(-1, output.logits.shape[-1]).float(),
            target_bins.reshape(-1),
            reduction="none",
        )
        * weights.reshape(-1)
    ).sum() / total
    return {"loss": nll + bin_weight * cross_entropy, "nll": nll, "cross_entropy": cross_entropy}


#: Quantile levels (k - 1/2) / K of the quantile decomposition of the CRPS in :func:`rate_crps_loss`.
CRPS_LEVELS = 16
#: Rate [mm/h] added to a task's mean rate before :func:`rate_crps_loss` divides by it.
CRPS_SCALE_FLOOR = 0.1
#: Rates above this [mm/h] are clipped in :func:`rate_crps_loss` (keeps exp() finite).
CRPS_RATE_CEILING = 500.0


def rate_crps_loss(
    output: ConvNPOutput, target_values: torch.Tensor, weights: torch.Tensor, config: ConvNPConfig
) -> torch.Tensor:
    """CRPS in mm/h of the predictive ``max(g^-1(Z), 0)``, divided by each task's mean rate
    (+ :data:`CRPS_SCALE_FLOOR`), so that dry and heavy-rain tasks count alike; a weighted mean.

    ``target_values`` ``[batch, n]`` standardised transformed rates, ``weights`` ``[batch, n]``
    (0 for padding). The CRPS is the integral of twice the quantile (pinball) loss over the
    levels (Gneiting & Raftery 2007, JASA 102, eq. 20 onwards; Laio & Tamea 2007, HESS 11), here
    at :data:`CRPS_LEVELS` midpoint levels. It aims training at the score the benchmarks report,
    in the units they report it in, where the censored likelihood weighs errors in the
    transformed space."""
    levels = (
        torch.arange(CRPS_LEVELS, dtype=output.mean.dtype, device=output.mean.device) + 0.5
    ) / CRPS_LEVELS
    normal = torch.special.ndtri(levels)
    ceiling = float((config.transform.forward(CRPS_RATE_CEILING) - config.value_centre) / config.value_scale)
    standardised = (output.mean[..., None] + output.std[..., None] * normal).clamp_max(ceiling)
    scale, centre = config.value_scale, config.value_centre
    quantiles = config.transform.inverse_tensor(standardised * scale + centre).clamp_min(0.0)
    truth = config.transform.inverse_tensor(target_values.clamp_max(ceiling) * scale + centre).clamp_min(0.0)
    difference = truth[..., None] - quantiles
    pinball = torch.maximum(levels * difference, (levels - 1.0) * difference)
    crps = 2.0 * pinball.mean(-1)
    counts = weights.sum(-1).clamp_min(1.0)
    task_scale = (truth * weights).sum(-1) / counts + CRPS_SCALE_FLOOR
    per_task = (crps * weights).sum(-1) / counts / task_scale
    present = (weights.sum(-1) > 0).to(per_task.dtype)
    return (per_task * present).sum() / present.sum().clamp_min(1.0)
