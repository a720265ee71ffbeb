"""Options of the Gaussian-process interpolator (:class:`GaussianProcessConfig`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from weatherunc.models.gp.kernels import KERNELS
from weatherunc.plain_options import dataclass_values
from weatherunc.transforms import PrecipitationTransform

#: Kernels compared by marginal likelihood when ``kernel="auto"``.
AUTOMATIC_KERNELS = ("matern12", "matern32", "matern52", "rational_quadratic")
#: Default of ``small_network_contexts``: below it a task's contexts are a small network.
SMALL_NETWORK_CONTEXTS = 300


@dataclass(frozen=True)
class GaussianProcessConfig:
    """Options of :class:`GaussianProcessInterpolator`.

    ``offset_candidates``: offsets [mm/h] of the log/Box-Cox transform tried per task, the one
    with the lowest leave-one-out CRPS of the contexts is used (empty: ``transform.offset`` as
    given; ignored for the identity transform). Offsets below 0.3 mm/h are not among the
    defaults: they can win the leave-one-out, which scores points near other contexts, yet
    inflate the back-transformed mean far from them. ``selection_points``: contexts
    scored in that leave-one-out (a seeded random subset above it). ``automatic_kernels``: the
    kernels compared by marginal likelihood when ``kernel="auto"``. ``censored_contexts``: treat
    dry contexts as ``z <= g(0)`` when the transform censors at zero and the task has both dry
    and wet contexts, with ``censored_samples`` Gibbs sweeps kept after ``censored_burn_in``
    (it costs a Gibbs sweep per dry context).
    ``composite_points``, ``block_points``: with more than ``fit_points`` contexts, the fit uses
    up to ``composite_points`` of them (a seeded random subset above it) in compact spatial blocks
    of at most ``block_points`` (``composite_points <= fit_points``: a random ``fit_points``
    instead); a random subset of a dense ring of contexts makes the fit, and the kernel chosen
    with it, depend on the seed, compact blocks much less so.
    ``local_variance``: re-scale the predictive variance locally from the contexts'
    leave-one-out residuals (:mod:`weatherunc.models.local_variance`), with the bandwidth
    (``local_variance_bandwidths``, multiples of the geometric mean of the fitted spatial
    lengthscales) and ``local_variance_prior_weights`` chosen with the transform offset by the
    leave-one-out CRPS of the contexts, among them no re-scaling at all (its effect on the
    benchmark's tasks: benchmarks/results/interpolation.md).
    ``small_network_contexts``: a task with fewer contexts than this is a small network, fitted
    with the options of :func:`~weatherunc.models.gp.small_network.small_network_config` (fewer
    options, a prior on the noise, the variance calibrated by leave-block-out cross-validation of
    the contexts); 0 turns the rule off, and tasks with at least this many contexts are never
    affected. ``small_network_kernels``: the kernels compared when ``kernel="auto"`` on a small
    network. ``small_network_noise_prior``: shape and rate of the Gamma prior on the noise
    variance (as a fraction of the contexts' variance) in the marginal likelihood of a small
    network. ``small_network_blocks``: compact spatial blocks of the contexts left out in turn to
    calibrate the predictive variance of a small network (0: no calibration), by the rule
    ``small_network_variance_rule`` (:func:`~weatherunc.models.gp.small_network.blocked_variance_factor`:
    the mean squared standardised residual, or the factor whose 90 % intervals cover them). ``noise_prior``:
    (shape, rate) of a Gamma prior on that noise fraction in every fit (``None``: none; set by the
    small-network rule).
    """

    kernel: Literal["auto", "matern12", "matern32", "matern52", "rbf", "rational_quadratic"] = "auto"
    automatic_kernels: tuple[str, ...] = AUTOMATIC_KERNELS
    transform: PrecipitationTransform = field(default_factory=PrecipitationTransform)
    offset_candidates: tuple[float, ...] = (0.3, 1.0, 3.0)
    selection_points: int = 2000
    fit_points: int = 500
    fit_iterations: int = 20
    minimum_noise: float = 1e-4
    max_exact_context: int = 6000
    tile_km: float = 40.0
    max_local_context: int = 1500
    target_batch: int = 1024
    censored_contexts: bool = True
    censored_samples: int = 32
    censored_burn_in: int = 16
    composite_points: int = 2000
    block_points: int = 200
    local_variance: bool = True
    local_variance_bandwidths: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    local_variance_prior_weights: tuple[float, ...] = (1.0, 4.0)
    seed: int = 0
    small_network_contexts: int = SMALL_NETWORK_CONTEXTS
    small_network_kernels: tuple[str, ...] = ("matern12",)
    small_network_noise_prior: tuple[float, float] = (2.0, 20.0)
    small_network_blocks: int = 8
    small_network_variance_rule: Literal["mean_square", "coverage"] = "mean_square"
    noise_prior: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        """``ValueError`` naming the field for an invalid small-network option or noise prior."""
        if self.small_network_contexts < 0:
            raise ValueError(f"small_network_contexts must be >= 0, got {self.small_network_contexts}")
        if not self.small_network_kernels or not set(self.small_network_kernels) <= set(KERNELS):
            raise ValueError(
                f"small_network_kernels must be a non-empty subset of {tuple(KERNELS)}, "
                f"got {self.small_network_kernels}"
            )
        for name in ("small_network_noise_prior", "noise_prior"):
            prior = getattr(self, name)
            if prior is not None and (len(prior) != 2 or not all(value > 0 for value in prior)):
                raise ValueError(f"{name} must be (shape > 0, rate > 0), got {prior}")
        if self.small_network_blocks < 0 or self.small_network_blocks == 1:
            raise ValueError(f"small_network_blocks must be 0 or >= 2, got {self.small_network_blocks}")
        if self.small_network_variance_rule not in ("mean_square", "coverage"):
            raise ValueError(
                "small_network_variance_rule must be 'mean_square' or 'coverage', "
                f"got {self.small_network_variance_rule!r}"
            )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> GaussianProcessConfig:
        """A config from plain values (a job's YAML ``model.options.config``): lists become tuples,
        ``transform`` may be the mapping of a :class:`~weatherunc.transforms.PrecipitationTransform`;
        ``ValueError`` naming a field the config does not have."""
        values = dataclass_values(cls, options)
        if isinstance(values.get("transform"), Mapping):
            values["transform"] = PrecipitationTransform(**values["transform"])
        return cls(**values)
