"""``weatherunc catalog list`` and ``weatherunc catalog show``: describe the data catalog."""

from __future__ import annotations

import typer

from weatherunc.cli.shared import CatalogOption, DataDirOption, fail, load_catalog

catalog_app = typer.Typer(help="Describe the data catalog.", no_args_is_help=True)


@catalog_app.command("list")
def catalog_list(catalog: CatalogOption = None, data_dir: DataDirOption = None) -> None:
    """List catalog entries: name, kind, reader and description."""
    from weatherunc.errors import InputDataError

    try:
        entries = load_catalog(catalog, data_dir).entries
    except InputDataError as error:
        fail(error)
    width = max(len(name) for name in entries)
    for name, entry in entries.items():
        typer.echo(f"{name:<{width}}  {entry.kind:<8}  {entry.reader:<10}  {entry.description}")


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
