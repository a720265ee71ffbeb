"""Kernel families of the GP as classes: GPyTorch module, hyperparameters and covariance of each.

A family (:class:`Matern`, :class:`RadialBasis`, :class:`RationalQuadratic`) builds its GPyTorch
``ScaleKernel`` (:meth:`StationaryKernel.module`: the constraints and parametrisation of its
hyperparameters), reads its hyperparameters back from one (:meth:`StationaryKernel.hyperparameters`)
and evaluates its covariance from them in plain torch (:meth:`StationaryKernel.covariance`; in place
when no gradient is needed, to save memory traffic), which tests check against GPyTorch's own.

The names of the families (``"matern12"``, ``"matern32"``, ``"matern52"``, ``"rbf"``,
``"rational_quadratic"``) are those of :attr:`~weatherunc.models.gp.config.GaussianProcessConfig.kernel`,
of configuration files and of the ``kernel`` attribute of predictions; :func:`kernel_named` is the
only place where a name maps to a family.

Reference: Rasmussen & Williams (2006), "Gaussian Processes for Machine Learning", chapter 4.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import ModuleType

import torch

from weatherunc.models.covariance import scaled_distance, scaled_squared_distance, squared_differences

#: Floor of the squared distance under the square root of the differentiable Matern covariance:
#: coincident points keep a finite gradient (their distance does not depend on the lengthscales).
SMALLEST_SQUARED_DISTANCE = 1e-30


@dataclass(frozen=True)
class KernelHyperparameters:
    """Hyperparameters of a stationary kernel, as tensors (they may require a gradient).

    ``lengthscale`` ``[d]`` (one per input dimension, ARD), ``outputscale`` ``[]`` (the signal
    variance ``a^2``), ``alpha`` (``[]`` or ``[1]``; the shape parameter of the rational quadratic
    kernel, ``None`` for every other family).
    """

    lengthscale: torch.Tensor
    outputscale: torch.Tensor
    alpha: torch.Tensor | None = None

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The hyperparameters that are set, in the order lengthscale, outputscale(, alpha)."""
        return tuple(
            tensor for tensor in (self.lengthscale, self.outputscale, self.alpha) if tensor is not None
        )


class StationaryKernel(ABC):
    """A stationary kernel family ``a^2 k(r)`` with one lengthscale per input dimension (ARD).

    ``r`` is the Euclidean distance between two points ``[d]`` after dividing each dimension by its
    lengthscale, and ``a^2`` the output scale. A family defines its name, its GPyTorch base kernel
    and its correlation ``k(r)``, in place (:meth:`correlation_in_place`) and differentiable
    (:meth:`covariance_from_squared_distance`); every family has the same form as GPyTorch's kernel.
    """

    @property
    @abstractmethod
    def name(self) -> str:
        """The family's name in configurations, checkpoints and outputs (a key of :data:`KERNELS`)."""

    def module(self, dimensions: int) -> torch.nn.Module:
        """A new GPyTorch ``ScaleKernel`` of this family over ``dimensions`` inputs, with GPyTorch's
        initial values and dtype."""
        import gpytorch

        return gpytorch.kernels.ScaleKernel(self._base_module(gpytorch, dimensions))

    @abstractmethod
    def _base_module(self, gpytorch: ModuleType, dimensions: int) -> torch.nn.Module:
        """The GPyTorch base kernel (inside the ``ScaleKernel``) with ``ard_num_dims=dimensions``."""

    def hyperparameters(self, module: torch.nn.Module) -> KernelHyperparameters:
        """The hyperparameters of a GPyTorch ``ScaleKernel`` ``module`` of this family: lengthscale
        ``[d]`` and outputscale ``[]`` (differentiable with respect to the module's parameters)."""
        return KernelHyperparameters(
            lengthscale=module.base_kernel.lengthscale.reshape(-1), outputscale=module.outputscale
        )

    @abstractmethod
    def correlation_in_place(
        self, distance: torch.Tensor, hyperparameters: KernelHyperparameters
    ) -> torch.Tensor:
        """Correlation ``k(r)`` ``[n, m]`` of the scaled distances ``r`` ``[n, m]``, written over them
        (no autograd)."""

    @abstractmethod
    def covariance_from_squared_distance(
        self, squared_distance: torch.Tensor, hyperparameters: KernelHyperparameters
    ) -> torch.Tensor:
        """Covariance ``a^2 k(r)`` ``[..., n, m]`` from the squared scaled distances ``r^2`` ``[..., n, m]``,
        differentiable."""

    def covariance(
        self, first: torch.Tensor, second: torch.Tensor, hyperparameters: KernelHyperparameters
    ) -> torch.Tensor:
        """Covariance ``[n, m]`` between points ``first`` ``[n, d]`` and ``second`` ``[m, d]``.

        Differentiable in every argument when one of them requires a gradient (then through
        :meth:`covariance_from_differences`); otherwise computed in place, to save memory traffic.
        """
        if torch.is_grad_enabled() and any(
            tensor.requires_grad for tensor in (first, second, *hyperparameters.tensors())
        ):
            return self.covariance_from_differences(squared_differences(first, second), hyperparameters)
        distance = scaled_distance(first, second, hyperparameters.lengthscale)  # [n, m]
        return self.correlation_in_place(distance, hyperparameters).mul_(hyperparameters.outputscale)

    def module_covariance(
        self, module: torch.nn.Module, first: torch.Tensor, second: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`covariance` ``[n, m]`` of ``first`` ``[n, d]`` and ``second`` ``[m, d]`` with the
        hyperparameters of the GPyTorch ``ScaleKernel`` ``module``."""
        return self.covariance(first, second, self.hyperparameters(module))

    def covariance_from_differences(
        self, differences: torch.Tensor, hyperparameters: KernelHyperparameters
    ) -> torch.Tensor:
        """Differentiable covariance ``[..., n, m]`` from squared coordinate differences ``[d, ..., n, m]``
        (:func:`~weatherunc.models.covariance.squared_differences`, computed once per fit)."""
        return self.covariance_from_squared_distance(
            scaled_squared_distance(differences, hyperparameters.lengthscale), hyperparameters
        )


@dataclass(frozen=True)
class Matern(StationaryKernel):
    """Matern kernel of smoothness ``nu`` = 1/2, 3/2 or 5/2 (Rasmussen & Williams 2006, eqs. 4.14, 4.16-4.17).

    ``k(r) = exp(-r)`` (``nu = 1/2``, the exponential kernel), ``(1 + sqrt3 r) exp(-sqrt3 r)``
    (``nu = 3/2``) or ``(1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r)`` (``nu = 5/2``). The differentiable
    form takes ``r = sqrt(max(r^2, 1e-30))``: coincident points keep a finite gradient.
    """

    nu: float

    def __post_init__(self) -> None:
        if self.nu not in (0.5, 1.5, 2.5):
            raise ValueError(f"Matern: nu must be 0.5, 1.5 or 2.5, got {self.nu!r}")

    @property
    def name(self) -> str:
        return f"matern{round(2 * self.nu)}2"

    def _base_module(self, gpytorch: ModuleType, dimensions: int) -> torch.nn.Module:
        return gpytorch.kernels.MaternKernel(nu=self.nu, ard_num_dims=dimensions)

    def correlation_in_place(
        self, distance: torch.Tensor, hyperparameters: KernelHyperparameters
    ) -> torch.Tensor:
        if self.nu == 0.5:
            return distance.neg_().exp_()
        scaled = distance.mul_(math.sqrt(2.0 * self.nu))  # sqrt(2 nu) r
        decay = torch.exp(-scaled)
        if self.nu == 1.5:
            return scaled.add_(1.0).mul_(decay)
        return scaled.square().div_(3.0).add_(scaled).add_(1.0).mul_(decay)

    def covariance_from_squared_distance(
        self, squared_distance: torch.Tensor, hyperparameters: KernelHyperparameters
    ) -> torch.Tensor:
        distance = squared_distance.clamp_min(SMALLEST_SQUARED_DISTANCE).sqrt()
        outputscale = hyperparameters.outputscale
        if self.nu == 0.5:
            return outputscale * torch.exp(-distance)
        scaled = math.sqrt(2.0 * self.nu) * distance
        polynomial = 1.0 + scaled if self.nu == 1.5 else 1.0 + scaled + scaled.square() / 3.0
        return outputscale * polynomial * torch.exp(-scaled)


@dataclass(frozen=True)
class RadialBasis(StationaryKernel):
    """Squared-exponential (radial basis function) kernel ``k(r) = exp(-r^2 / 2)`` (Rasmussen & Williams
    2006, eq. 4.9)."""

    @property
    def name(self) -> str:
        return "rbf"

    def _base_module(self, gpytorch: ModuleType, dimensions: int) -> torch.nn.Module:
        return gpytorch.kernels.RBFKernel(ard_num_dims=dimensions)

    def correlation_in_place(
        self, distance: torch.Tensor, hyperparameters: KernelHyperparameters
    ) -> torch.Tensor:
        return distance.square_().mul_(-0.5).exp_()

    def covariance_from_squared_distance(
        self, squared_distance: torch.Tensor, hyperparameters: KernelHyperparameters
    ) -> torch.Tensor:
        return hyperparameters.outputscale * torch.exp(-0.5 * squared_distance)


@dataclass(frozen=True)
class RationalQuadratic(StationaryKernel):
    """Rational quadratic kernel ``k(r) = (1 + r^2 / (2 alpha))^-alpha``, a scale mixture of squared
    exponentials with shape ``alpha`` (a hyperparameter; Rasmussen & Williams 2006, eqs. 4.19-4.20)."""

    @property
    def name(self) -> str:
        return "rational_quadratic"

    def _base_module(self, gpytorch: ModuleType, dimensions: int) -> torch.nn.Module:
        return gpytorch.kernels.RQKernel(ard_num_dims=dimensions)

    def hyperparameters(self, module: torch.nn.Module) -> KernelHyperparameters:
        """Lengthscale ``[d]``, outputscale ``[]`` and ``alpha`` ``[1]`` of a GPyTorch ``ScaleKernel``
        around an ``RQKernel``."""
        common = super().hyperparameters(module)
        return KernelHyperparameters(common.lengthscale, common.outputscale, module.base_kernel.alpha)

    @staticmethod
    def _alpha(hyperparameters: KernelHyperparameters) -> torch.Tensor:
        """``alpha`` as a scalar ``[]``; ``ValueError`` when it is missing."""
        if hyperparameters.alpha is None:
            raise ValueError("RationalQuadratic: the rational quadratic kernel needs alpha")
        return hyperparameters.alpha.reshape(())

    def correlation_in_place(
        self, distance: torch.Tensor, hyperparameters: KernelHyperparameters
    ) -> torch.Tensor:
        alpha = self._alpha(hyperparameters)
        return distance.square_().div_(2.0 * alpha).add_(1.0).pow_(-alpha)

    def covariance_from_squared_distance(
        self, squared_distance: torch.Tensor, hyperparameters: KernelHyperparameters
    ) -> torch.Tensor:
        alpha = self._alpha(hyperparameters)
        return hyperparameters.outputscale * (1.0 + squared_distance / (2.0 * alpha)).pow(-alpha)


#: Every kernel family by its name (the names of ``GaussianProcessConfig.kernel`` other than ``"auto"``).
KERNELS: dict[str, StationaryKernel] = {
    kernel.name: kernel
    for kernel in (Matern(0.5), Matern(1.5), Matern(2.5), RadialBasis(), RationalQuadratic())
}


def kernel_named(name: str) -> StationaryKernel:
    """The kernel family called ``name`` (a key of :data:`KERNELS`); ``ValueError`` lists the valid names.

    The only place where a kernel's name (configuration, checkpoint sidecar, output attribute)
    maps to its family.
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; valid kernels: {', '.join(KERNELS)}")
    return KERNELS[name]


def gpytorch_kernel(name: str, dimensions: int) -> torch.nn.Module:
    """A new GPyTorch ``ScaleKernel`` of the family ``name`` over ``dimensions`` inputs
    (:meth:`StationaryKernel.module`)."""
    return kernel_named(name).module(dimensions)
