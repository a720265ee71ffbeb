"""Run a list of Dask tasks on a local scheduler or a distributed cluster, with progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
from dask.delayed import Delayed

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


def compute_tasks(
    tasks: Sequence[Delayed], *, scheduler: str = "threads", workers: int | None = None, progress: bool = True
) -> list[Any]:
    """Compute ``tasks`` and return their results in order.

    ``scheduler`` is one of :data:`LOCAL_SCHEDULERS` or the address of a running
    ``distributed`` scheduler (``tcp://host:8786``), used unchanged.
    """
    if not tasks:
        return []
    if scheduler in LOCAL_SCHEDULERS:
        options: dict[str, Any] = {"scheduler": scheduler}
        if workers is not None and scheduler != "synchronous":
            options["num_workers"] = workers
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar(minimum=1.0):
                return list(dask.compute(*tasks, **options))
        return list(dask.compute(*tasks, **options))
    from distributed import Client
    from distributed import progress as distributed_progress

    with Client(scheduler) as client:
        futures = client.compute(list(tasks))
        if progress:
            distributed_progress(futures)
        return client.gather(futures)
