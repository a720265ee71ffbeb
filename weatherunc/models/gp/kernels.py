"""Kernel families of the GP, each with its GPyTorch module, its covariance and its name.

A family's ``name`` is the one of :attr:`~weatherunc.models.gp.config.GaussianProcessConfig.kernel`
and of the ``kernel`` attribute of predictions. Its hyperparameters live in a GPyTorch
``ScaleKernel`` (:meth:`StationaryKernel.module`: the constraints and parametrisation); its
covariances are evaluated from them by :mod:`weatherunc.models.covariance` in plain torch, which
is checked there against GPyTorch's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import ModuleType

import torch

from weatherunc.models.covariance import (
    covariance_from_differences,
    kernel_hyperparameters,
    module_covariance,
)


@dataclass(frozen=True)
class StationaryKernel(ABC):
    """A stationary kernel family with one lengthscale per input dimension (ARD) and an output scale.

    ``name``: the family's name in the configuration, in outputs and in
    :mod:`weatherunc.models.covariance` (one of its ``KERNEL_NAMES``).
    """

    name: str

    def module(self, dimensions: int) -> torch.nn.Module:
        """A new GPyTorch ``ScaleKernel`` of this family over ``dimensions`` inputs, with GPyTorch's
        initial values and dtype."""
        import gpytorch

        return gpytorch.kernels.ScaleKernel(self._base_module(gpytorch, dimensions))

    @abstractmethod
    def _base_module(self, gpytorch: ModuleType, dimensions: int) -> torch.nn.Module:
        """The GPyTorch base kernel (inside the ``ScaleKernel``) with ``ard_num_dims=dimensions``."""

    def covariance(self, module: torch.nn.Module, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Covariance ``[n, m]`` between ``first`` ``[n, d]`` and ``second`` ``[m, d]`` with the
        hyperparameters of ``module``.

        :func:`~weatherunc.models.covariance.stationary_covariance`: computed in place unless a
        gradient is needed.
        """
        return module_covariance(module, self.name, first, second)

    def covariance_from_differences(self, module: torch.nn.Module, differences: torch.Tensor) -> torch.Tensor:
        """Differentiable covariance ``[..., n, m]`` from squared coordinate differences ``[d, ..., n, m]``.

        :func:`~weatherunc.models.covariance.covariance_from_differences` with the hyperparameters
        of ``module``; the differences come from :func:`~weatherunc.models.covariance.squared_differences`.
        """
        return covariance_from_differences(self.name, differences, **kernel_hyperparameters(module))


@dataclass(frozen=True)
class Matern(StationaryKernel):
    """Matern kernel of smoothness ``nu`` (0.5, 1.5 or 2.5; Rasmussen & Williams 2006, eq. 4.14)."""

    nu: float

    def _base_module(self, gpytorch: ModuleType, dimensions: int) -> torch.nn.Module:
        return gpytorch.kernels.MaternKernel(nu=self.nu, ard_num_dims=dimensions)


@dataclass(frozen=True)
class SquaredExponential(StationaryKernel):
    """Squared-exponential (RBF) kernel (Rasmussen & Williams 2006, eq. 4.9)."""

    def _base_module(self, gpytorch: ModuleType, dimensions: int) -> torch.nn.Module:
        return gpytorch.kernels.RBFKernel(ard_num_dims=dimensions)


@dataclass(frozen=True)
class RationalQuadratic(StationaryKernel):
    """Rational quadratic kernel, a scale mixture of squared exponentials (Rasmussen & Williams 2006, eq.
    4.19)."""

    def _base_module(self, gpytorch: ModuleType, dimensions: int) -> torch.nn.Module:
        return gpytorch.kernels.RQKernel(ard_num_dims=dimensions)


#: Every kernel family by its name (the names of ``GaussianProcessConfig.kernel`` other than ``"auto"``).
KERNELS: dict[str, StationaryKernel] = {
    kernel.name: kernel
    for kernel in (
        Matern("matern12", 0.5),
        Matern("matern32", 1.5),
        Matern("matern52", 2.5),
        SquaredExponential("rbf"),
        RationalQuadratic("rational_quadratic"),
    )
}


def kernel_named(name: str) -> StationaryKernel:
    """The kernel family called ``name`` (a key of :data:`KERNELS`); ``ValueError`` lists the valid names."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; valid kernels: {', '.join(KERNELS)}")
    return KERNELS[name]


def gpytorch_kernel(name: str, dimensions: int) -> torch.nn.Module:
    """A new GPyTorch ``ScaleKernel`` of the family ``name`` over ``dimensions`` inputs
    (:meth:`StationaryKernel.module`)."""
    return kernel_named(name).module(dimensions)
