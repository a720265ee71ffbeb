"""Validation tasks and scores during training, with the verification module's metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.evaluation import score_prediction
from weatherunc.geolocation import crs_of
from weatherunc.loading import open_dataset
from weatherunc.models.neural_process.interpolator import NeuralProcessInterpolator
from weatherunc.tasks import Task, gauge_network, masked_blocks, wettest_window
from weatherunc.training.config import FrameSelection, selected_frames

WINDOW_PIXELS = 96


def validation_tasks(
    selections: list[FrameSelection], count: int, *, seed: int = 0, open_options: dict | None = None
) -> list[Task]:
    """``count`` tasks (alternately masked blocks and gauge networks) on the wettest windows of
    the wettest selected frames, spread over the selections; fixed by ``seed``."""
    return [
        task for _, task in labelled_validation_tasks(selections, count, seed=seed, open_options=open_options)
    ]


def labelled_validation_tasks(
    selections: list[FrameSelection], count: int, *, seed: int = 0, open_options: dict | None = None
) -> list[tuple[str, Task]]:
    """:func:`validation_tasks` with the dataset each task was drawn from: ``(dataset, task)``
    pairs, the same tasks in the same order (for calibrations cross-validated by dataset)."""
    rng = np.random.default_rng(seed)
    tasks: list[tuple[str, Task]] = []
    per_selection = int(np.ceil(count / len(selections)))
    for selection in selections:
        dataset = open_dataset(selection.dataset, **(open_options or {}))
        crs = crs_of(dataset)
        precipitation = selected_frames(dataset, selection)
        wet = (precipitation > 0.1).mean((conventions.Y, conventions.X)).values
        frames = np.argsort(-wet, kind="stable")[: max(1, per_selection // 2)]
        for number in range(per_selection):
            index = int(frames[number % len(frames)])
            frame = (
                precipitation.isel(time=index)
                .load()
                .drop_vars(["latitude", "longitude", "time"], errors="ignore")
            )
            window = wettest_window(frame, min(WINDOW_PIXELS, *frame.shape))
            task_seed = int(rng.integers(2**31))
            if number % 2 == 0:
                task = masked_blocks(
                    window,
                    block_pixels=16,
                    count=2,
                    halo_pixels=16,
                    max_context=1000,
                    max_target=2000,
                    min_wet_fraction=0.2,
                    seed=task_seed,
                    crs=crs,
                )
            else:
                task = gauge_network(window, fraction=0.02, max_target=2000, seed=task_seed, crs=crs)
            tasks.append((selection.dataset, task))
    return tasks[:count]


def validation_scores(interpolator: NeuralProcessInterpolator, tasks: list[Task]) -> dict[str, float]:
    """Mean crps, nlpd, rmse and coverage_90 over ``tasks``."""
    return mean_scores([interpolator.predict(task) for task in tasks], tasks)


def mean_scores(predictions: Sequence[xr.Dataset], tasks: Sequence[Task]) -> dict[str, float]:
    """Mean crps, nlpd, rmse and coverage_90 of predictions already made, one per task."""
    scores = [score_prediction(prediction, task) for prediction, task in zip(predictions, tasks, strict=True)]
    return {
        key: float(np.mean([score[key] for score in scores]))
        for key in ("crps", "nlpd", "rmse", "coverage_90")
    }
