"""What the command groups share: the catalog and data-root options, and the error exit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from weatherunc.catalog import Catalog

CatalogOption = Annotated[
    list[Path] | None, typer.Option("--catalog", help="Extra folder of catalog YAML files (repeatable).")
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data root for catalog file patterns (default: $WEATHERUNC_DATA_DIR)."),
]


def load_catalog(catalog_dirs: list[Path] | None, data_dir: Path | None) -> Catalog:
    """The shipped catalog plus ``catalog_dirs``, with ``data_dir`` as the data root."""
    from weatherunc.catalog import Catalog

    return Catalog.load(catalog_dirs, data_root_dir=data_dir)


def fail(error: Exception) -> NoReturn:
    """Print ``error`` in red on stderr and exit with status 2 (a ``KeyError``'s message without the
    quotes its ``str`` adds)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)
