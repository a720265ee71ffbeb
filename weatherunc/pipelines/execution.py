"""Run a list of Dask tasks on a local scheduler or a distributed cluster, with progress."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import dask
from dask.delayed import Delayed

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
#: The ``scheduler`` values of a batch job (``weatherunc run``) that are not a distributed address.
JOB_SCHEDULERS = ("local", "threads", "synchronous")
#: Seconds :func:`check_scheduler` waits for a distributed scheduler to accept a connection.
CONNECT_TIMEOUT = 5.0


class SchedulerError(ValueError):
    """A scheduler option is neither a known local scheduler nor a reachable distributed address."""

    def __init__(self, scheduler: str, check: str, detail: str) -> None:
        self.scheduler = scheduler
        self.check = check
        super().__init__(f"scheduler {scheduler!r} failed check {check!r}: {detail}")


def check_scheduler(
    scheduler: str, *, local: Sequence[str] = LOCAL_SCHEDULERS, timeout: float = CONNECT_TIMEOUT
) -> None:
    """Raise :class:`SchedulerError` unless ``scheduler`` is one of ``local`` or the address of a
    distributed scheduler that accepts a connection within ``timeout`` seconds.

    Batch commands call it before they read or write anything, so that a mistyped or unreachable
    address fails at once. An address is ``[protocol://]host:port``; ``tcp`` and ``tls`` addresses
    are probed with a plain TCP connection, other protocols are only parsed.
    """
    from distributed.comm.addressing import parse_address, parse_host_port

    if scheduler in local:
        return
    expected = f"one of {', '.join(local)} or a distributed scheduler address like tcp://host:8786"
    try:
        protocol, location = parse_address(scheduler, strict=False)
        host, port = parse_host_port(location)
    except (TypeError, ValueError) as error:
        raise SchedulerError(scheduler, "address", f"expected {expected} ({error})") from None
    if not host or not 0 < int(port) < 65536:
        raise SchedulerError(scheduler, "address", f"expected {expected} (host {host!r}, port {port!r})")
    if protocol not in ("tcp", "tls"):
        return
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        raise SchedulerError(
            scheduler,
            "reachable",
            f"no scheduler accepts connections at {host}:{port} within {timeout:g} s "
            f"({type(error).__name__}: {error})",
        ) from None


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


@contextlib.contextmanager
def restored_environment() -> Iterator[None]:
    """Run the block, then put back this process's environment variables as they were before it.

    A local ``distributed`` cluster's nannies set ``OMP_NUM_THREADS=1`` and the like in the
    environment of the process that starts them, before each worker starts (distributed's
    ``nanny.pre-spawn-environ``), and leave them there: every process started afterwards (a
    notebook kernel, a command run from Python) would run its numerical libraries single-threaded.
    """
    before = dict(os.environ)
    try:
        yield
    finally:
        for name in [name for name in os.environ if name not in before]:
            del os.environ[name]
        for name, value in before.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


@contextlib.contextmanager
def cluster_client(scheduler: str, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: of a local cluster of ``workers`` processes (default: one per core),
    one thread each, for ``"local"``; else connected to the scheduler at the address ``scheduler``.
    Closed (with the local cluster) at the end of the block, and the environment of this process
    restored (:func:`restored_environment`)."""
    from distributed import Client, LocalCluster

    with restored_environment():
        cluster = None
        if scheduler == "local":
            cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
        client = Client(cluster if cluster is not None else scheduler)
        try:
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
