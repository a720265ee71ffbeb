"""Earlier frames of the same place as self-calibration's rolling window."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weatherunc.tasks import Task


@dataclass(frozen=True)
class EarlierFrame:
    """One earlier frame on a grid: ``values`` ``[ny, nx]`` in mm/h (NaN = unobserved or withheld),
    ``x_km`` ``[nx]`` and ``y_km`` ``[ny]``, the axes of the grid the tasks' coordinates are on."""

    values: np.ndarray
    x_km: np.ndarray
    y_km: np.ndarray

    def __post_init__(self) -> None:
        if self.values.shape != (self.y_km.size, self.x_km.size):
            raise ValueError(
                f"values: shape {self.values.shape} does not match the axes (y {self.y_km.size}, "
                f"x {self.x_km.size})"
            )

    def task_like(self, task: Task, seed: int = 0) -> Task:
        """This frame's observations where ``task``'s contexts lie (their bounding box), as contexts
        (at most as many as ``task`` has, a seeded subsample), with ``task``'s targets (coordinates
        only: their values are NaN). Self-calibration draws its pseudo-targets from the contexts."""
        lower, upper = task.context_coordinates.min(axis=0), task.context_coordinates.max(axis=0)
        columns = np.flatnonzero((self.x_km >= lower[0]) & (self.x_km <= upper[0]))
        rows = np.flatnonzero((self.y_km >= lower[1]) & (self.y_km <= upper[1]))
        region = self.values[np.ix_(rows, columns)]
        row_index, column_index = np.nonzero(np.isfinite(region))
        if row_index.size > task.n_context:
            keep = np.sort(np.random.default_rng(seed).choice(row_index.size, task.n_context, replace=False))
            row_index, column_index = row_index[keep], column_index[keep]
        return Task(
            context_coordinates=np.stack(
                [self.x_km[columns[column_index]], self.y_km[rows[row_index]]], axis=1
            ).reshape(-1, 2),
            context_values=region[row_index, column_index].astype(np.float64),
            target_coordinates=task.target_coordinates,
            target_values=np.full(task.n_target, np.nan),
            description=f"an earlier frame where {task.description or 'the task'} lies",
        )
