"""``weatherunc catalog list``, ``show`` and ``new``: describe the data catalog, draft an entry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from weatherunc.cli.shared import CatalogOption, DataDirOption, fail, load_catalog

catalog_app = typer.Typer(help="Describe the data catalog and draft new entries.", no_args_is_help=True)


@catalog_app.command("list")
def catalog_list(catalog: CatalogOption = None, data_dir: DataDirOption = None) -> None:
    """List catalog entries: name, kind, reader and description."""
    from weatherunc.errors import InputDataError

    try:
        entries = load_catalog(catalog, data_dir).entries
    except InputDataError as error:
        fail(error)
    width = max(len(name) for name in entries)
    reader_width = max(len(entry.reader) for entry in entries.values())
    for name, entry in entries.items():
        typer.echo(f"{name:<{width}}  {entry.kind:<8}  {entry.reader:<{reader_width}}  {entry.description}")


@catalog_app.command("show")
def catalog_show(name: str, catalog: CatalogOption = None, data_dir: DataDirOption = None) -> None:
    """Show one entry's fields as YAML."""
    import yaml

    from weatherunc.errors import InputDataError

    try:
        entry = load_catalog(catalog, data_dir).get(name)
    except (InputDataError, KeyError) as error:
        fail(error)
    typer.echo(yaml.safe_dump(entry.model_dump(mode="json"), sort_keys=False, allow_unicode=True))


@catalog_app.command("new")
def catalog_new(
    files: Annotated[list[Path], typer.Argument(help="Data files of one source (CF NetCDF or ODIM_H5).")],
    name: Annotated[str, typer.Option("--name", help="Entry name: lower-case letters, digits and _.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write NAME.yaml into.")] = Path("."),
    variable: Annotated[
        str | None, typer.Option("--variable", help="The precipitation variable, when several fit.")
    ] = None,
    crs: Annotated[
        str | None,
        typer.Option("--crs", help="The CRS (EPSG code, PROJ string, WKT), when the files carry none."),
    ] = None,
    data_dir: DataDirOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing NAME.yaml.")] = False,
) -> None:
    """Inspect FILES and write a catalog entry (reader, variable, units, CRS, times) to review."""
    from weatherunc.errors import InputDataError
    from weatherunc.onboarding import draft_entry, write_draft

    try:
        entry = draft_entry(files, name, data_root=data_dir, variable=variable, crs=crs)
        path = write_draft(entry, out, overwrite=overwrite)
    except (InputDataError, FileExistsError, ValueError) as error:
        fail(error)
    typer.echo(f"wrote {path}: review it, then use it with --catalog {path.parent}")
