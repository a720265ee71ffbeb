"""Models registered by name; every one has ``predict(task) -> xr.Dataset``.

Follows ``pysteps.nowcasts.interface.get_method``: a dict and a lookup that lists valid names.
"""

from __future__ import annotations

from typing import Any, Protocol

import xarray as xr

from weatherunc.models.baselines import ClimatologyInterpolator, InverseDistanceInterpolator, OrdinaryKrigingInterpolator
from weatherunc.models.gp import GaussianProcessInterpolator
from weatherunc.tasks import Task


class Interpolator(Protocol):
    """The contract every model meets (see ``tests/test_model_contract.py``)."""

    name: str

    def predict(self, task: Task) -> xr.Dataset:
        """Predict every target of ``task``."""
        ...


MODELS: dict[str, type] = {
    "gp": GaussianProcessInterpolator,
    "kriging": OrdinaryKrigingInterpolator,
    "idw": InverseDistanceInterpolator,
    "climatology": ClimatologyInterpolator,
}


def get_model(name: str, **options: Any) -> Interpolator:
    """A model instance by name; ``ValueError`` lists the valid names."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    return MODELS[name](**options)
