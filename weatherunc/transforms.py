"""Invertible precipitation transforms and the back-transformed predictive distribution.

Models predict a Gaussian ``Z ~ N(mu, s^2)`` for the transformed rate ``z = g(y)``. The rate
is then ``Y = max(g^-1(Z), 0)``: a Gaussian censored at zero in transformed space, which
puts a point mass on "dry" (zero-inflation) and keeps a skewed wet tail.

- Quantiles map through the monotone ``g^-1`` (then clip at 0).
- Exceedance probabilities ``P(Y > t) = 1 - Phi((g(t) - mu) / s)`` for ``t >= 0``.
- The mean and standard deviation do *not* map naively (``g^-1(mu)`` is the median);
  they are integrated with Gauss-Hermite quadrature.

References: Box & Cox (1964), JRSS B 26, 211; Tobin (1958), Econometrica 26, 24 (censoring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import special, stats

from weatherunc import conventions

if TYPE_CHECKING:
    import torch

GAUSS_HERMITE_NODES = 48
#: Attributes in which :meth:`PrecipitationTransform.to_attrs` records a transform.
TRANSFORM_ATTRIBUTES = ("transform", conventions.TRANSFORM_OFFSET, "transform_lambda", "censored_at_zero")


@dataclass(frozen=True)
class PrecipitationTransform:
    """``g(y) = log(y + offset)`` (``kind="log"``) or Box-Cox ``((y + offset)^lam - 1) / lam``.

    ``kind="identity"`` leaves values as they are. ``offset`` > 0 keeps ``g(0)`` finite;
    ``log`` with offset 1 is ``log1p``.
    """

    kind: Literal["log", "box_cox", "identity"] = "log"
    offset: float = 1.0
    lam: float = 0.25
    censor_at_zero: bool = True

    def floor(self, rate: np.ndarray) -> np.ndarray:
        """Censor back-transformed values at 0 mm/h (no effect with ``censor_at_zero=False``)."""
        return np.maximum(rate, 0.0) if self.censor_at_zero else rate

    def forward(self, rate: np.ndarray) -> np.ndarray:
        """``g(rate)``, any shape, rate in mm/h."""
        rate = np.asarray(rate, dtype=np.float64)
        if self.kind == "identity":
            return rate
        if self.kind == "log":
            return np.log(rate + self.offset)
        return ((rate + self.offset) ** self.lam - 1.0) / self.lam

    def inverse(self, value: np.ndarray) -> np.ndarray:
        """``g^-1(value)`` (not clipped), any shape."""
        value = np.asarray(value, dtype=np.float64)
        if self.kind == "identity":
            return value
        if self.kind == "log":
            return np.exp(value) - self.offset
        base = np.maximum(self.lam * value + 1.0, 0.0)
        return base ** (1.0 / self.lam) - self.offset

    def inverse_tensor(self, value: torch.Tensor) -> torch.Tensor:
        """:meth:`inverse` on a torch tensor, differentiable (for losses in mm/h), any shape."""
        if self.kind == "identity":
            return value
        if self.kind == "log":
            return value.exp() - self.offset
        base = (self.lam * value + 1.0).clamp_min(0.0)
        return base ** (1.0 / self.lam) - self.offset

    def to_attrs(self) -> dict[str, str | float]:
        """Attributes that record the transform in an output dataset."""
        return {
            "transform": self.kind,
            conventions.TRANSFORM_OFFSET: self.offset,
            "transform_lambda": self.lam,
            "censored_at_zero": int(self.censor_at_zero),
        }


def quantiles(
    transform: PrecipitationTransform, mean: np.ndarray, std: np.ndarray, levels: np.ndarray
) -> np.ndarray:
    """Rate quantiles ``[..., n_levels]`` of ``max(g^-1(Z), 0)``, ``Z ~ N(mean, std^2)`` ``[...]``."""
    z = mean[..., None] + std[..., None] * special.ndtri(np.asarray(levels))
    return transform.floor(transform.inverse(z))


def log_density(
    transform: PrecipitationTransform, mean: np.ndarray, std: np.ndarray, rate: np.ndarray
) -> np.ndarray:
    """Log predictive likelihood of observed ``rate`` under ``Y = max(g^-1(Z), 0)``, any shapes that
    broadcast.

    Wet (``rate > 0``, or any rate without censoring): the density of ``Y``,
    ``log phi((g(y) - mean) / std) - log std + log g'(y)`` (change of variables). Dry with
    censoring: the probability mass ``log Phi((g(0) - mean) / std)`` (Tobin 1958). Both refer to
    the rate itself, so the value is comparable between transforms and offsets (a density of the
    transformed value is not: it changes with the transform's scale).
    """
    mean, std, rate = np.broadcast_arrays(
        np.asarray(mean, dtype=np.float64),
        np.asarray(std, dtype=np.float64),
        np.asarray(rate, dtype=np.float64),
    )
    dry = (rate <= 0.0) if transform.censor_at_zero else np.zeros(rate.shape, dtype=bool)
    safe = np.where(
        dry, np.maximum(rate, 0.0) + 1.0, rate
    )  # any value where g is defined; replaced below where dry
    z = (transform.forward(safe) - mean) / std
    if transform.kind == "identity":
        jacobian = np.zeros_like(safe)
    elif transform.kind == "log":
        jacobian = -np.log(safe + transform.offset)
    else:
        jacobian = (transform.lam - 1.0) * np.log(safe + transform.offset)
    wet_value = stats.norm.logpdf(z) - np.log(std) + jacobian
    dry_value = stats.norm.logcdf((transform.forward(np.zeros_like(rate)) - mean) / std)
    return np.where(dry, dry_value, wet_value)


def pit_interval_probability(
    transform: PrecipitationTransform,
    mean: np.ndarray,
    std: np.ndarray,
    rate: np.ndarray,
    lower: float,
    upper: float,
) -> np.ndarray:
    """Probability that the randomised PIT of the observed ``rate`` lies in ``[lower, upper]``.

    ``U = F(y-) + V (F(y) - F(y-))``, ``V ~ U(0, 1)``, is uniform under a calibrated forecast also
    where ``F`` has the point mass at dry of ``Y = max(g^-1(Z), 0)``. Its expectation over ``V`` is
    closed form (the non-randomised PIT of Czado, Gneiting & Held 2009, Biometrics 65, 1254):

    - wet, or no censoring: 1 where ``lower <= F(y) <= upper``, else 0;
    - dry with censoring, ``U ~ U(0, F0)``, ``F0 = Phi((g(0) - mean) / std)``:
      ``max(min(F0, upper) - lower, 0) / F0``.

    ``0 <= lower < upper <= 1``; arrays broadcast; returns values in [0, 1].
    """
    if not 0.0 <= lower < upper <= 1.0:
        raise ValueError(f"the PIT interval must satisfy 0 <= lower < upper <= 1, got [{lower}, {upper}]")
    mean, std, rate = np.broadcast_arrays(
        np.asarray(mean, dtype=np.float64),
        np.asarray(std, dtype=np.float64),
        np.asarray(rate, dtype=np.float64),
    )
    dry = (rate <= 0.0) if transform.censor_at_zero else np.zeros(rate.shape, dtype=bool)
    safe = np.where(dry, 0.0, rate) if transform.censor_at_zero else rate
    probability = stats.norm.cdf((transform.forward(safe) - mean) / std)  # F(y); F0 where dry
    inside = ((probability >= lower) & (probability <= upper)).astype(np.float64)
    mass = np.maximum(probability, np.finfo(np.float64).tiny)
    dry_value = np.maximum(np.minimum(mass, upper) - lower, 0.0) / mass
    return np.where(dry, dry_value, inside)


def central_interval_coverage(
    transform: PrecipitationTransform, mean: np.ndarray, std: np.ndarray, rate: np.ndarray, level: float
) -> np.ndarray:
    """Probability that the randomised PIT of ``rate`` lies in the central ``level`` interval
    (:func:`pit_interval_probability` on ``[(1 - level) / 2, (1 + level) / 2]``).

    Its mean is ``level`` for a calibrated model. For a wet truth it is the plain "inside the
    central interval of the rate"; for a dry truth the share of the mass at zero inside it.
    Counting a dry truth as inside whenever the lower quantile is censored to 0 would instead
    give a calibrated forecast up to ``(1 + level) / 2`` (0.95 at the 90 % level) on dry targets.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return pit_interval_probability(transform, mean, std, rate, 0.5 - level / 2.0, 0.5 + level / 2.0)


def exceedance_probability(
    transform: PrecipitationTransform, mean: np.ndarray, std: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """``P(Y > t)`` ``[..., n_thresholds]`` for rate thresholds ``t >= 0``."""
    z = transform.forward(np.asarray(thresholds, dtype=np.float64))
    return stats.norm.sf((z - mean[..., None]) / std[..., None])


def moments(
    transform: PrecipitationTransform, mean: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the rate ``max(g^-1(Z), 0)`` by Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(GAUSS_HERMITE_NODES)
    weights = weights / weights.sum()
    values = transform.floor(transform.inverse(mean[..., None] + std[..., None] * nodes))
    first = values @ weights
    second = (values**2) @ weights
    return first, np.sqrt(np.maximum(second - first**2, 0.0))


def quantile_nodes(count: int) -> np.ndarray:
    """``count`` equally weighted probability levels ``(i - 0.5) / count``, for sample-free CRPS."""
    return (np.arange(count) + 0.5) / count
