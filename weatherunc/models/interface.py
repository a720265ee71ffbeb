"""The protocol every model meets: ``predict(task) -> xr.Dataset``.

Kept apart from :mod:`weatherunc.models.registry` so that code that only needs the type (heads,
gridding, ensembles) does not import every registered model.
"""

from __future__ import annotations

from typing import Protocol

import xarray as xr

from weatherunc.tasks import Task


class Interpolator(Protocol):
    """The contract every model meets (see ``tests/test_model_contract.py``)."""

    name: str

    def predict(self, task: Task) -> xr.Dataset:
        """Predict every target of ``task``."""
        ...
