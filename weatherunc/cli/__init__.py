"""The ``weatherunc`` command line: one Typer app whose commands live in one module per group."""

from __future__ import annotations

import typer

from weatherunc.cli.calibration import calibrate
from weatherunc.cli.catalog import catalog_app
from weatherunc.cli.jobs import demo, ingest, run
from weatherunc.cli.outputs import plot, serve
from weatherunc.cli.training import bbb, pack, refit_head, swag, train
from weatherunc.version import __version__

__all__ = ["app"]

app = typer.Typer(
    help="weatherunc: fill unobserved precipitation and say how sure each value is.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"weatherunc {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """weatherunc: fill unobserved precipitation and say how sure each value is."""


app.add_typer(catalog_app, name="catalog")
app.command()(ingest)
app.command()(train)
app.command("refit-head")(refit_head)
app.command()(swag)
app.command()(bbb)
app.command()(calibrate)
app.command()(pack)
app.command()(run)
app.command()(plot)
app.command()(serve)
app.command()(demo)
