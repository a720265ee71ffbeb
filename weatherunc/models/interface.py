"""The protocol every model meets: ``predict(task) -> xr.Dataset``; and the optional one of models
that can fit once and share that fit across tasks.

Kept apart from :mod:`weatherunc.models.registry` so that code that only needs the type (heads,
gridding, ensembles) does not import every registered model.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import xarray as xr

from weatherunc.tasks import Task


class Interpolator(Protocol):
    """The contract every model meets (see ``tests/test_model_contract.py``)."""

    name: str

    def predict(self, task: Task) -> xr.Dataset:
        """Predict every target of ``task``."""
        ...


@runtime_checkable
class SharesFit(Protocol):
    """A model that fits options or hyperparameters per task and can instead fit them once.

    ``shared_fit(task)`` fits on ``task``'s contexts and returns a model that predicts every task
    with that one fit (only conditioning on each task's contexts): the tiles of one frame then
    share it (:mod:`weatherunc.shared_fit`).
    """

    name: str

    def predict(self, task: Task) -> xr.Dataset:
        """Predict every target of ``task`` with a fit of its own."""
        ...

    def shared_fit(self, task: Task) -> Interpolator:
        """A model fitted once on ``task``'s contexts, predicting any task with that fit."""
        ...


def minimum_contexts(model: Interpolator) -> int:
    """How many contexts ``model`` needs in a task: its ``minimum_contexts`` attribute where it has
    one (kriging needs 3 to fit a variogram), else 1."""
    return int(getattr(model, "minimum_contexts", 1))
