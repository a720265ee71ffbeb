"""The YAML data catalog: one validated entry per data source.

A catalog is a set of folders of ``*.yaml`` files, one entry each. The catalog shipped with the
package (``weatherunc/data/catalog/``, read through :mod:`importlib.resources`, so also from an
installed wheel) is always read; users add folders with ``--catalog DIR`` or the
``WEATHERUNC_CATALOG`` environment variable (several separated by ``os.pathsep``). File
patterns are relative to a data root (``WEATHERUNC_DATA_DIR``) or, for entries with
``root: package``, to the data shipped inside weatherunc. Paths may never leave their root.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from weatherunc import conventions
from weatherunc.errors import InputDataError

CATALOG_ENVIRONMENT_VARIABLE = "WEATHERUNC_CATALOG"
DATA_DIR_ENVIRONMENT_VARIABLE = "WEATHERUNC_DATA_DIR"
#: The data shipped inside weatherunc (package data: the sample, the checkpoints, the catalog).
PACKAGE_DATA: Traversable = resources.files("weatherunc") / "data"
#: The shipped catalog folder, always read first.
SHIPPED_CATALOG: Traversable = PACKAGE_DATA / "catalog"


class TimeFromFilename(BaseModel):
    """How to read each file's valid time from its name: a regex with one group, parsed by ``format``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pattern: str
    format: str

    @field_validator("pattern")
    @classmethod
    def _one_group(cls, pattern: str) -> str:
        if re.compile(pattern).groups != 1:
            raise ValueError("pattern must have exactly one capturing group")
        return pattern

    def parse(self, filename: str) -> datetime:
        """The time in ``filename``; raises ``ValueError`` when it does not match."""
        match = re.search(self.pattern, filename)
        if match is None:
            raise ValueError(f"file name {filename!r} does not match time pattern {self.pattern!r}")
        return datetime.strptime(match.group(1), self.format)


class ZRCoefficients(BaseModel):
    """Coefficients of ``Z = a R^b`` used to turn reflectivity into rain rate."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    a: float = Field(gt=0)
    b: float = Field(gt=0)
    reference: str


class CatalogEntry(BaseModel):
    """One data source. Validated on load; a failure names the file and the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$")
    description: str = Field(min_length=1)
    kind: Literal["grid", "stations"] = "grid"
    reader: str
    root: Literal["data", "package"] = "data"
    files: str = Field(min_length=1, description="glob pattern relative to the root")
    variable: str = Field(description="the variable's name in the source")
    units: str = Field(description="native units of the variable")
    accumulation_minutes: float | None = Field(default=None, gt=0)
    time_step_minutes: float | None = Field(default=None, gt=0)
    crs: str | None = Field(
        default=None,
        min_length=1,
        description="PROJ string, EPSG code or WKT; optional for grids whose files carry a CF grid mapping",
    )
    time_from_filename: TimeFromFilename | None = None
    zr_relation: ZRCoefficients | None = None
    no_echo_dbz: float | None = None
    negative_tolerance: float = Field(
        default=0.0,
        ge=0,
        description=(
            "native-unit magnitude below which negative values are set to 0 (artefacts of bias correction)"
        ),
    )
    reader_options: dict[str, Any] = Field(default_factory=dict)
    licence: str | None = Field(default=None, min_length=1, description="the provider's terms")
    attribution: str | None = Field(default=None, min_length=1, description="who to credit")

    @field_validator("units")
    @classmethod
    def _known_units(cls, units: str) -> str:
        if units not in conventions.KNOWN_UNITS:
            raise ValueError(f"unknown units {units!r}; known: {sorted(conventions.KNOWN_UNITS)}")
        return units

    @field_validator("reader")
    @classmethod
    def _registered_reader(cls, reader: str, info: ValidationInfo) -> str:
        from weatherunc.readers import get_reader

        get_reader(reader, info.data.get("kind", "grid"))  # ValueError names the valid readers
        return reader

    @field_validator("files")
    @classmethod
    def _relative_pattern(cls, files: str) -> str:
        if Path(files).is_absolute() or ".." in Path(files).parts:
            raise ValueError(f"files pattern {files!r} must be relative to the data root, without '..'")
        return files

    @field_validator("crs")
    @classmethod
    def _parsable_crs(cls, crs: str | None) -> str | None:
        import pyproj

        if crs is None:
            return None
        try:
            pyproj.CRS.from_user_input(crs)
        except pyproj.exceptions.CRSError as error:
            raise ValueError(f"crs {crs!r} cannot be parsed: {error}") from None
        return crs

    @model_validator(mode="after")
    def _units_need_their_parameters(self) -> CatalogEntry:
        if self.units in conventions.ACCUMULATION_UNITS and self.accumulation_minutes is None:
            raise ValueError(f"units {self.units!r} are an accumulation: accumulation_minutes is required")
        if self.units in conventions.REFLECTIVITY_UNITS and self.zr_relation is None:
            raise ValueError(f"units {self.units!r} are reflectivity: zr_relation is required")
        if self.kind == "stations" and self.crs is None:
            raise ValueError("station sets carry no grid mapping: crs is required")
        return self


def catalog_dirs(extra: list[Path] | None = None) -> list[Path | Traversable]:
    """The shipped catalog folder, then ``WEATHERUNC_CATALOG`` folders, then ``extra``."""
    folders: list[Path | Traversable] = [SHIPPED_CATALOG]
    environment = os.environ.get(CATALOG_ENVIRONMENT_VARIABLE, "")
    folders += [Path(part) for part in environment.split(os.pathsep) if part]
    folders += list(extra or [])
    return folders


def data_root(explicit: Path | None = None) -> Path | None:
    """The data root: ``explicit``, else ``WEATHERUNC_DATA_DIR``, else ``None``."""
    if explicit is not None:
        return Path(explicit)
    environment = os.environ.get(DATA_DIR_ENVIRONMENT_VARIABLE)
    return Path(environment) if environment else None


def package_data_dir() -> Path:
    """The folder of the data shipped inside weatherunc, as a file-system path (readers open files by
    path); raises :class:`InputDataError` when weatherunc is imported from an archive."""
    if not isinstance(PACKAGE_DATA, Path):
        raise InputDataError(
            source=str(PACKAGE_DATA),
            variable="<package data>",
            check="package installed as files",
            detail="weatherunc is imported from an archive; install it into a folder (pip install)",
        )
    return PACKAGE_DATA


def yaml_files(folder: Path | Traversable) -> list[Path | Traversable]:
    """The ``*.yaml`` files directly in ``folder`` (a path or a package resource), sorted by name."""
    return sorted(
        (item for item in folder.iterdir() if item.name.endswith(".yaml") and item.is_file()),
        key=lambda item: item.name,
    )


def load_entry(path: Path | Traversable) -> CatalogEntry:
    """Read and validate one YAML entry (a path or a package resource); raises :class:`InputDataError`
    naming the field."""
    if isinstance(path, str):
        path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise InputDataError(
            source=str(path), variable="<catalog entry>", check="readable YAML", detail=str(error)
        ) from None
    if not isinstance(raw, dict):
        raise InputDataError(
            source=str(path),
            variable="<catalog entry>",
            check="schema",
            detail="the file must hold one mapping",
        )
    try:
        return CatalogEntry.model_validate(raw)
    except ValidationError as error:
        raise schema_error(path, error) from None


def schema_error(path: Path | Traversable, error: ValidationError) -> InputDataError:
    """One :class:`InputDataError` listing every field of ``error`` with the check it failed."""
    fields: list[str] = []
    lines: list[str] = []
    for failure in error.errors():
        field = ".".join(str(part) for part in failure["loc"]) or "<entry>"
        if field not in fields:
            fields.append(field)
        lines.append(f"{field}: {failure['msg']}")
    return InputDataError(
        source=str(path),
        variable=", ".join(fields),
        check="schema",
        detail=f"{error.error_count()} error(s): " + "; ".join(lines),
    )


class Catalog:
    """Entries by name, read from catalog folders, with data-root-safe file resolution."""

    def __init__(self, entries: dict[str, CatalogEntry], *, data_root: Path | None = None) -> None:
        self.entries = dict(sorted(entries.items()))
        self.data_root = data_root

    @classmethod
    def load(cls, extra_dirs: list[Path] | None = None, *, data_root_dir: Path | None = None) -> Catalog:
        """Read every ``*.yaml`` in :func:`catalog_dirs`; a later folder may not redefine a name."""
        entries: dict[str, CatalogEntry] = {}
        origins: dict[str, Path | Traversable] = {}
        for folder in catalog_dirs(extra_dirs):
            if not folder.is_dir():
                raise InputDataError(
                    source=str(folder),
                    variable="<catalog folder>",
                    check="folder exists",
                    detail="not a directory",
                )
            for path in yaml_files(folder):
                entry = load_entry(path)
                if entry.name in entries:
                    raise InputDataError(
                        source=str(path),
                        variable="name",
                        check="unique name",
                        detail=f"{entry.name!r} is already defined in {origins[entry.name]}",
                    )
                entries[entry.name] = entry
                origins[entry.name] = path
        return cls(entries, data_root=data_root(data_root_dir))

    def names(self) -> list[str]:
        """Entry names, sorted."""
        return list(self.entries)

    def get(self, name: str) -> CatalogEntry:
        """The entry called ``name``; ``KeyError`` lists the valid names."""
        try:
            return self.entries[name]
        except KeyError:
            raise KeyError(f"no catalog entry {name!r}; available: {', '.join(self.entries)}") from None

    def root_of(self, entry: CatalogEntry) -> Path:
        """The folder that ``entry.files`` is relative to."""
        if entry.root == "package":
            return package_data_dir()
        if self.data_root is None:
            raise InputDataError(
                source=entry.name,
                variable="files",
                check="data root set",
                detail=f"set {DATA_DIR_ENVIRONMENT_VARIABLE} or pass --data-dir to open this entry",
            )
        return self.data_root

    def resolve_files(self, entry: CatalogEntry) -> list[Path]:
        """The files matching ``entry.files``, sorted; each must stay inside the root."""
        root = self.root_of(entry).resolve()
        files = sorted(root.glob(entry.files))
        if not files:
            raise InputDataError(
                source=root / entry.files,
                variable=entry.variable,
                check="files exist",
                detail="no file matches the pattern",
            )
        for path in files:
            resolved = path.resolve()
            if not resolved.is_relative_to(root):
                raise InputDataError(
                    source=path,
                    variable=entry.variable,
                    check="path inside data root",
                    detail=f"resolves to {resolved}, outside {root}",
                )
        return files
