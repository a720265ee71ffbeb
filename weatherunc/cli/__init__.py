"""The ``weatherunc`` command line: one Typer app whose commands live in one module per group."""

from __future__ import annotations

import typer

from weatherunc.cli.calibration import calibrate
from weatherunc.cli.catalog import catalog_app
from weatherunc.cli.jobs import demo, ingest, run
from weatherunc.cli.outputs import plot, serve
from weatherunc.cli.training import pack, refit_head, swag, train

__all__ = ["app"]

app = typer.Typer(
    help="weatherunc: fill unobserved precipitation and say how sure each value is.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(catalog_app, name="catalog")
app.command()(ingest)
app.command()(train)
app.command("refit-head")(refit_head)
app.command()(swag)
app.command()(calibrate)
app.command()(pack)
app.command()(run)
app.command()(plot)
app.command()(serve)
app.command()(demo)
