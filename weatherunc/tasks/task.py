"""The :class:`Task` of one interpolation problem: context points to condition on, target points to
predict and score.

A task holds numpy arrays only and refuses, at construction, the inputs no model can use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from weatherunc import conventions


@dataclass(frozen=True)
class Task:
    """Context and target points of one interpolation problem.

    context_coordinates: ``[n_context, 2]`` (x, y) in km.
    context_values: ``[n_context]`` rate in mm/h.
    target_coordinates: ``[n_target, 2]`` in km.
    target_values: ``[n_target]`` withheld truth in mm/h (NaN where unknown).
    context_covariates / target_covariates: ``[n, n_covariates]`` or ``None``.
    target_dim: name of the output dimension ("target" or "station").
    target_coords: coordinates of the targets for the output dataset, each ``[n_target]``.

    Construction refuses (``ValueError`` naming the variable and the check): coordinates or
    covariates that are not finite, context values that are not finite, negative or above
    :data:`~weatherunc.conventions.MAXIMUM_RATE_MM_PER_HOUR`, and two contexts at exactly
    the same point (merge them first, e.g. by averaging).
    """

    context_coordinates: np.ndarray
    context_values: np.ndarray
    target_coordinates: np.ndarray
    target_values: np.ndarray
    context_covariates: np.ndarray | None = None
    target_covariates: np.ndarray | None = None
    target_dim: str = "target"
    target_coords: dict[str, np.ndarray] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        n_context, n_target = len(self.context_values), len(self.target_values)
        if self.context_coordinates.shape != (n_context, 2) or self.target_coordinates.shape != (n_target, 2):
            raise ValueError(
                f"coordinates must be [n, 2]: context {self.context_coordinates.shape}, target "
                f"{self.target_coordinates.shape}"
            )
        if n_context == 0:
            raise ValueError("a task needs at least one context point")
        if (self.context_covariates is None) != (self.target_covariates is None):
            raise ValueError("give covariates for both context and targets, or for neither")
        for name in ("context_coordinates", "target_coordinates", "context_covariates", "target_covariates"):
            array = getattr(self, name)
            if array is not None and not np.all(np.isfinite(array)):
                count = int(np.count_nonzero(~np.all(np.isfinite(array), axis=-1)))
                raise ValueError(f"{name} must be finite: {count} point(s) with NaN or infinite entries")
        values = self.context_values
        if not np.all(np.isfinite(values)):
            count = int(np.count_nonzero(~np.isfinite(values)))
            raise ValueError(
                f"context_values must be finite and >= 0 (observed rates in mm/h): {count} NaN or infinite "
                "value(s)"
            )
        if np.any(values < 0):
            raise ValueError(
                "context_values must be finite and >= 0 (rates in mm/h): "
                f"{int(np.count_nonzero(values < 0))} negative value(s), "
                f"the lowest {float(values.min()):g}"
            )
        bound = conventions.MAXIMUM_RATE_MM_PER_HOUR
        if np.any(values > bound):
            raise ValueError(
                f"context_values must not exceed the plausibility bound of {bound:g} mm/h: "
                f"{int(np.count_nonzero(values > bound))} value(s) above it, the highest "
                f"{float(values.max()):g}"
            )
        duplicates = n_context - len(np.unique(self.context_coordinates, axis=0))
        if duplicates:
            raise ValueError(
                f"context_coordinates has {duplicates} duplicated point(s) (contexts at exactly the same "
                "point as another); "
                "merge them first, e.g. by averaging their values"
            )

    @property
    def n_context(self) -> int:
        """Number of context points."""
        return len(self.context_values)

    @property
    def n_target(self) -> int:
        """Number of target points."""
        return len(self.target_values)

    def observed_truth(self) -> xr.DataArray:
        """The withheld truth as ``precipitation(target)`` with the target coordinates."""
        return xr.DataArray(
            self.target_values,
            dims=self.target_dim,
            name=conventions.PRECIPITATION,
            coords={name: (self.target_dim, values) for name, values in self.target_coords.items()},
            attrs={"units": conventions.PRECIPITATION_UNITS},
        )
