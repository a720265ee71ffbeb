"""Start the service: in this process (:func:`serve`, what ``weatherunc serve`` runs), or as a child
process on a free loopback port until a ``with`` block ends (:func:`background_service`)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from weatherunc.service.settings import ServiceLimits

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
LOOPBACK = "127.0.0.1"


def serve(
    paths: Sequence[Path | str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    limits: ServiceLimits | None = None,
) -> None:
    """Serve the complete prediction stores that ``paths`` name (stores or folders holding them) until
    interrupted. Binds to the loopback interface unless ``host`` says otherwise.

    One process-wide setting is made here, as the service owns its process: zarr writes chunks that
    hold only the fill value, because xpublish-zarr encodes each requested chunk through a scratch
    zarr array and answers 500 when zarr skips writing an all-NaN chunk (``array.write_empty_chunks``).
    Maps are drawn in a child process (:class:`weatherunc.service.maps.MapRenderer`).
    """
    import uvicorn
    import zarr

    from weatherunc.service.app import create_app
    from weatherunc.service.stores import discover_stores

    zarr.config.set({"array.write_empty_chunks": True})
    stores = discover_stores(paths)
    application = create_app(stores, limits)
    print(f"serving {len(stores)} store(s) ({', '.join(stores)}) at http://{host}:{port}/", flush=True)
    uvicorn.run(
        application, host=host, port=port, log_level="warning", timeout_keep_alive=5, limit_concurrency=256
    )


def free_port() -> int:
    """A TCP port that is free on the loopback interface now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class BackgroundService:
    """A service running in a child process: its base URL (ending in ``/``) and the process."""

    url: str
    process: subprocess.Popen


@contextmanager
def background_service(
    paths: Sequence[Path | str],
    *,
    port: int | None = None,
    log: Path | None = None,
    startup_seconds: float = 240.0,
    options: Sequence[str] = (),
) -> Iterator[BackgroundService]:
    """Run ``weatherunc serve PATHS [OPTIONS]`` on the loopback interface (a free port unless ``port``) in
    a child process, writing its output to ``log`` (else discarding it); yields once ``/datasets``
    answers and stops the process when the block ends. ``RuntimeError`` when it exits or stays silent
    at start."""
    port = free_port() if port is None else port
    command = [
        sys.executable,
        "-m",
        "weatherunc.cli",
        "serve",
        *map(str, paths),
        "--port",
        str(port),
        *options,
    ]
    output = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://{LOOPBACK}:{port}/"
    try:
        deadline = time.monotonic() + startup_seconds
        while not _answers(url + "datasets"):
            if process.poll() is not None:
                told = Path(log).read_text()[-2000:] if log is not None else "(no log kept)"
                raise RuntimeError(f"weatherunc serve exited with {process.returncode}: {told}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"weatherunc serve did not answer within {startup_seconds:.0f} s")
            time.sleep(0.5)
        yield BackgroundService(url=url, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log is not None:
            output.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
