"""Catalogue cases for catalog entries (schema, path escapes, YAML tags), configuration YAML
(job and training configs) and CSV station sets (ingested over an earlier store)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bad_inputs.grids import write_grid
from tests.bad_inputs.runner import Case, Scenario, named
from tests.conftest import write_entry
from weatherunc.catalog import Catalog
from weatherunc.errors import InputDataError
from weatherunc.pipelines.ingest import ingest
from weatherunc.pipelines.job_config import load_job_config
from weatherunc.training.config import load_training_config

#: A YAML value that runs a shell command when an unsafe loader constructs it.
SYSTEM_TAG = "!!python/object/apply:os.system ['touch {marker}']"


def _load_user_catalog(work: Path) -> Catalog:
    """Load the project catalog plus ``work/catalog`` and resolve every user entry's files."""
    catalog = Catalog.load([work / "catalog"], data_root_dir=work / "data")
    for name in ("synthetic", "other"):
        if name in catalog.entries:
            catalog.resolve_files(catalog.get(name))
    return catalog


def entry_case(
    case_id: str, variable: str, check: str, *, entry: dict[str, Any] | None = None, text: str | None = None
) -> Case:
    """A user catalog folder with one entry ``synthetic`` (``entry`` overrides its fields, or
    ``text`` is written as the whole YAML file); loading the catalog must fail with ``check``
    on ``variable`` (``check=""``: a valid control)."""

    def build(work: Path, shared: Path | None) -> Scenario:
        (work / "data").mkdir()
        write_grid(work / "data" / "synthetic.nc")
        path = write_entry(work / "catalog", **(entry or {}))
        marker = work / "executed"
        if text is not None:
            path.write_text(text.format(marker=marker))
        return Scenario(action=lambda: _load_user_catalog(work), marker=marker)

    if not check:
        return Case(case_id, "catalog", build, error=None)
    return Case(case_id, "catalog", build, InputDataError, named(variable, check))


def _escape_case(case_id: str, link: Callable[[Path, Path], object], files: str) -> Case:
    """A data root whose entry's files reach outside it through a symbolic link made by
    ``link(outside_folder, data_root)``."""

    def build(work: Path, shared: Path | None) -> Scenario:
        outside, root = work / "outside", work / "data"
        outside.mkdir()
        root.mkdir()
        write_grid(outside / "synthetic.nc")
        link(outside, root)
        write_entry(work / "catalog", files=files)
        return Scenario(action=lambda: _load_user_catalog(work))

    return Case(case_id, "catalog", build, InputDataError, named("precipitation", "path inside data root"))


def _duplicate_name(work: Path, shared: Path | None) -> Scenario:
    write_entry(work / "catalog", name="mrms_embedded")
    return Scenario(action=lambda: Catalog.load([work / "catalog"]))


CATALOG_CASES: list[Case] = [
    entry_case("catalog-valid-entry", "", ""),
    entry_case("catalog-files-parent", "files", "schema", entry={"files": "../outside/*.nc"}),
    entry_case("catalog-files-nested-parent", "files", "schema", entry={"files": "radar/../../../etc/*"}),
    entry_case("catalog-files-absolute", "files", "schema", entry={"files": "/etc/*.conf"}),
    _escape_case(
        "catalog-file-symlink-outside",
        lambda outside, root: os.symlink(outside / "synthetic.nc", root / "synthetic.nc"),
        "synthetic.nc",
    ),
    _escape_case(
        "catalog-folder-symlink-outside",
        lambda outside, root: os.symlink(outside, root / "radar"),
        "radar/*.nc",
    ),
    entry_case(
        "catalog-yaml-python-apply",
        "<catalog entry>",
        "readable YAML",
        text=f"name: {SYSTEM_TAG}\ndescription: x\n",
    ),
    entry_case(
        "catalog-yaml-python-name",
        "<catalog entry>",
        "readable YAML",
        text="name: synthetic\nreader: !!python/name:os.system\n",
    ),
    entry_case(
        "catalog-yaml-python-object-new",
        "<catalog entry>",
        "readable YAML",
        text="name: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
    ),
    entry_case("catalog-yaml-malformed", "<catalog entry>", "readable YAML", text="name: [unclosed\n"),
    entry_case("catalog-yaml-list", "<catalog entry>", "schema", text="- a\n- list\n"),
    entry_case("catalog-yaml-empty", "<catalog entry>", "schema", text=""),
    entry_case("catalog-units-unknown", "units", "schema", entry={"units": "inches"}),
    entry_case("catalog-reader-unknown", "reader", "schema", entry={"reader": "teletype"}),
    entry_case("catalog-station-reader-for-grid", "reader", "schema", entry={"reader": "station_csv"}),
    entry_case("catalog-extra-field", "surprise", "schema", entry={"surprise": 1}),
    entry_case("catalog-name-pattern", "name", "schema", entry={"name": "Has Spaces"}),
    entry_case(
        "catalog-accumulation-negative", "accumulation_minutes", "schema", entry={"accumulation_minutes": -5}
    ),
    entry_case("catalog-accumulation-missing", "<entry>", "schema", entry={"units": "mm"}),
    entry_case("catalog-zr-missing", "<entry>", "schema", entry={"units": "dBZ"}),
    entry_case(
        "catalog-zr-zero",
        "zr_relation.a",
        "schema",
        entry={"units": "dBZ", "zr_relation": {"a": 0, "b": 1.6, "reference": "none"}},
    ),
    entry_case("catalog-crs-unparsable", "crs", "schema", entry={"crs": "EPSG:99999999"}),
    entry_case(
        "catalog-time-pattern-two-groups",
        "time_from_filename.pattern",
        "schema",
        entry={"time_from_filename": {"pattern": r"(\d+)_(\d+)", "format": "%H"}},
    ),
    entry_case(
        "catalog-negative-tolerance", "negative_tolerance", "schema", entry={"negative_tolerance": -1}
    ),
    entry_case("catalog-no-matching-file", "precipitation", "files exist", entry={"files": "absent/*.nc"}),
    Case("catalog-duplicate-name", "catalog", _duplicate_name, InputDataError, named("name", "unique name")),
]


def _config_case(case_id: str, kind: str, text: str, match: str) -> Case:
    """A job or training config YAML ``text``; loading it must raise ``ValueError`` matching ``match``."""

    def build(work: Path, shared: Path | None) -> Scenario:
        marker = work / "executed"
        path = work / "config.yaml"
        path.write_text(text.format(marker=marker))
        load = load_job_config if kind == "job" else load_training_config
        return Scenario(action=lambda: load(path), marker=marker)

    return Case(case_id, f"{kind} config", build, ValueError, match)


_JOB = "name: tiny\ndataset: mrms_embedded\nmodel: {{name: idw}}\n"
CONFIG_CASES: list[Case] = [
    _config_case(
        "job-config-yaml-python-apply", "job", f"name: {SYSTEM_TAG}\n", "cannot read the job config"
    ),
    _config_case(
        "job-config-yaml-python-object-new",
        "job",
        "model: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
        "cannot read the job config",
    ),
    _config_case("job-config-list", "job", "- name\n", "expected a mapping of job options"),
    _config_case(
        "job-config-tile-too-small", "job", _JOB + "tiling: {{tile_pixels: 2}}\n", r"tiling\.tile_pixels"
    ),
    _config_case("job-config-unknown-key", "job", _JOB + "colour: blue\n", r"colour: Extra inputs"),
    _config_case(
        "job-config-torch-threads-zero", "job", _JOB + "torch_threads: 0\n", r"torch_threads: Input should be"
    ),
    _config_case("training-config-yaml-python-apply", "training", f"seed: {SYSTEM_TAG}\n", "not valid YAML"),
]


HEADER = "ID,x,y,rainfall,altitude_m\n"
GOOD_ROWS = "1,0,0,1.5,300\n2,1000,0,0,350\n3,0,2000,7.25,400\n4,2000,2000,0.5,420\n"


def station_case(
    case_id: str, variable: str, check: str, text: str | bytes, *, entry: dict[str, Any] | None = None
) -> Case:
    """A station set ``stations.csv``: good rows are ingested first (the earlier store), then the
    file is replaced by ``text`` and the re-ingest must fail with ``check`` on ``variable``."""
    fields = {"units": "mm h-1", **(entry or {})}

    def write(path: Path, content: str | bytes) -> None:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    def build(work: Path, shared: Path | None) -> Scenario:
        root = work / "data"
        root.mkdir()
        good = "ID,x,y,rainfall\n" + "".join(row.rsplit(",", 1)[0] + "\n" for row in GOOD_ROWS.splitlines())
        write(root / "stations.csv", good if "altitude_m" not in str(text)[:40] else HEADER + GOOD_ROWS)
        options = {"name": "stations", "kind": "stations", "reader": "station_csv", "files": "stations.csv"}
        write_entry(work / "catalog", **options, variable="rainfall", time_step_minutes=None, **fields)
        out = work / "stations.zarr"
        earlier = not check == ""
        catalog = Catalog.load([work / "catalog"], data_root_dir=root)
        if earlier:
            ingest("stations", out, catalog=catalog, progress=False)
        write(root / "stations.csv", text)
        return Scenario(
            action=lambda: ingest(
                "stations",
                out,
                catalog=Catalog.load([work / "catalog"], data_root_dir=root),
                overwrite=True,
                progress=False,
            ),
            earlier=out if earlier else None,
        )

    if not check:
        return Case(case_id, "station set", build, error=None)
    return Case(case_id, "station set", build, InputDataError, named(variable, check))


_DAILY = {"units": "0.1 mm", "accumulation_minutes": 1440}
STATION_CASES: list[Case] = [
    station_case("csv-valid", "", "", HEADER + GOOD_ROWS),
    station_case("csv-valid-daily-tenths", "", "", HEADER + "1,0,0,15,300\n2,1000,0,0,350\n", entry=_DAILY),
    station_case("csv-zero-bytes", "rainfall", "readable file", ""),
    station_case("csv-binary-garbage", "rainfall", "readable file", bytes(range(256)) * 8),
    station_case("csv-header-only", "rainfall", "not all NaN", HEADER),
    station_case(
        "csv-extra-field", "rainfall", "readable file", HEADER + "1,0,0,1.5,300\n2,1000,0,2,350,9,9\n"
    ),
    station_case(
        "csv-truncated-mid-row", "rainfall", "complete rows", "ID,x,y,rainfall\n1,0,0,1.5\n2,1000,20"
    ),
    station_case(
        "csv-truncated-mid-row-covariates",
        "altitude_m",
        "complete rows",
        HEADER + "1,0,0,1.5,300\n2,1000,0,2",
    ),
    station_case("csv-missing-value-column", "rainfall", "column present", "ID,x,y\n1,0,0\n"),
    station_case("csv-missing-x-column", "x", "coordinates present", "ID,y,rainfall\n1,0,1.5\n"),
    station_case("csv-duplicate-ids", "ID", "unique stations", HEADER + "1,0,0,1.5,300\n1,1000,0,2,350\n"),
    station_case(
        "csv-duplicate-locations",
        "x, y",
        "unique station locations",
        HEADER + "1,0,0,1.5,300\n2,1000,0,2,350\n3,0,0,4,300\n",
    ),
    station_case("csv-text-rate", "rainfall", "numeric values", HEADER + "1,0,0,heavy,300\n2,1000,0,2,350\n"),
    station_case("csv-nan-coordinate", "x", "finite coordinates", HEADER + "1,,0,1.5,300\n2,1000,0,2,350\n"),
    station_case(
        "csv-negative-rate", "rainfall", "non-negative rate", HEADER + "1,0,0,-1.5,300\n2,1000,0,2,350\n"
    ),
    station_case(
        "csv-rate-above-500", "rainfall", "plausible rate", HEADER + "1,0,0,1.5,300\n2,1000,0,900,350\n"
    ),
    station_case(
        "csv-infinite-rate", "rainfall", "finite values", HEADER + "1,0,0,inf,300\n2,1000,0,2,350\n"
    ),
    station_case(
        "csv-undeclared-fill",
        "rainfall",
        "no undeclared fill values",
        HEADER + "1,0,0,-9999,300\n2,1000,0,2,350\n",
    ),
    station_case(
        "csv-undeclared-fill-daily-tenths",
        "rainfall",
        "no undeclared fill values",
        HEADER + "1,0,0,65535,300\n2,1000,0,20,350\n",
        entry=_DAILY,
    ),
    station_case(
        "csv-infinite-covariate",
        "altitude_m",
        "finite covariates",
        HEADER + "1,0,0,1.5,inf\n2,1000,0,2,350\n",
    ),
]
