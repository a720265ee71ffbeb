"""Commands that use finished prediction stores: ``plot`` (maps) and ``serve`` (the service).

Help texts are Rich markup: a bracketed word such as ``[mm/h]`` is written ``\\[mm/h]`` to be shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from weatherunc.cli.shared import fail


def plot(
    store: Annotated[
        Path, typer.Argument(help="A complete prediction store (zarr) with dims (y, x) or (time, y, x).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG figures.")],
    threshold: Annotated[float, typer.Option(help="Rate threshold \\[mm/h] of the exceedance map.")] = 1.0,
) -> None:
    """Draw the uncertainty maps of a prediction store: observed, mean, std, P(rate > t), combined, panel."""
    from weatherunc.plotting.files import plot_store

    try:
        written = plot_store(store, out, threshold=threshold)
    except (ValueError, FileNotFoundError) as error:
        fail(error)
    for path in written:
        typer.echo(str(path))


def serve(
    stores: Annotated[
        list[Path],
        typer.Argument(help="Complete prediction stores, or folders searched for them (job run folders)."),
    ],
    host: Annotated[
        str, typer.Option(help="Interface to bind; the default serves this machine only.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    fill_timeout: Annotated[
        float, typer.Option(help="Seconds a synchronous POST /fill may take before it is answered 503.")
    ] = 120.0,
) -> None:
    r"""Serve prediction stores: OGC EDR queries, zarr, maps, on-demand fills and a map page (needs the
    service extra: pip install 'weatherunc\[service]')."""
    try:
        from weatherunc.service.server import serve as run_service
    except ImportError as error:
        fail(ImportError(f"{error}; install the service extra: pip install 'weatherunc[service]'"))
    try:
        from weatherunc.service.settings import ServiceLimits

        run_service(stores, host=host, port=port, limits=ServiceLimits(fill_timeout_s=fill_timeout))
    except (ValueError, FileNotFoundError, ImportError) as error:
        fail(error)
