"""The YAML catalog: schema, user folders, and paths that must stay inside their root."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import pytest

from tests.conftest import write_cf_netcdf, write_entry
from weatherunc.catalog import (
    SHIPPED_CATALOG,
    Catalog,
    CatalogEntry,
    TimeFromFilename,
    catalog_dirs,
    data_root,
    load_entry,
    package_data_dir,
    yaml_files,
)
from weatherunc.errors import InputDataError

SHARED_ENTRIES = {
    "knmi_20100826",
    "mch_20150515",
    "mch_20170131",
    "fmi_20160928",
    "bom_prcp_c10_20201031",
    "bom_prcp_cscn_20180616",
    "mrms_20190610",
    "knmi_sample_20100826",
    "mrms_sample_20190610",
    "sic97",
}


def test_project_catalog_covers_every_shared_dataset_and_the_embedded_sample() -> None:
    catalog = Catalog.load()
    assert SHARED_ENTRIES | {"mrms_embedded"} == set(catalog.names())
    for entry in catalog.entries.values():
        assert entry.licence and entry.attribution and entry.crs


def test_every_project_entry_validates_alone() -> None:
    paths = yaml_files(SHIPPED_CATALOG)
    assert len(paths) == len(SHARED_ENTRIES) + 1
    for path in paths:
        assert isinstance(load_entry(path), CatalogEntry)


def test_the_shipped_catalog_and_data_are_package_resources() -> None:
    assert (
        catalog_dirs()[0] == SHIPPED_CATALOG == importlib.resources.files("weatherunc") / "data" / "catalog"
    )
    assert (package_data_dir() / "mrms_20190610_crop256.nc").is_file()


def test_get_unknown_name_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="knmi_20100826"):
        Catalog.load().get("no_such_entry")


def test_user_folders_from_option_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_entry(tmp_path / "option", name="from_option")
    write_entry(tmp_path / "environment", name="from_environment")
    monkeypatch.setenv("WEATHERUNC_CATALOG", str(tmp_path / "environment"))
    names = Catalog.load([tmp_path / "option"]).names()
    assert {"from_option", "from_environment", "knmi_20100826"} <= set(names)
    assert catalog_dirs([tmp_path / "option"])[-2:] == [tmp_path / "environment", tmp_path / "option"]


def test_duplicate_name_is_refused(tmp_path: Path) -> None:
    write_entry(tmp_path / "user", name="knmi_20100826")
    with pytest.raises(InputDataError, match="unique name"):
        Catalog.load([tmp_path / "user"])


def test_data_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEATHERUNC_DATA_DIR", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root(Path("/elsewhere")) == Path("/elsewhere")


def test_entry_without_data_root_names_the_variable_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEATHERUNC_DATA_DIR", raising=False)
    catalog = Catalog.load()
    with pytest.raises(InputDataError, match="WEATHERUNC_DATA_DIR"):
        catalog.resolve_files(catalog.get("knmi_20100826"))
    assert catalog.resolve_files(catalog.get("mrms_embedded"))[0].name == "mrms_20190610_crop256.nc"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("files", "../outside/*.nc", "without '..'"),
        ("files", "/etc/*.conf", "relative"),
        ("units", "inches", "unknown units"),
        ("reader", "teletype", "unknown grid reader"),
        ("name", "Has Spaces", "pattern"),
        ("accumulation_minutes", -5, "greater than 0"),
        ("surprise", "field", "Extra inputs"),
    ],
)
def test_schema_failures_name_the_field(tmp_path: Path, field: str, value: object, message: str) -> None:
    path = write_entry(tmp_path, **{field: value})
    with pytest.raises(InputDataError) as caught:
        load_entry(path)
    assert caught.value.check == "schema"
    assert caught.value.variable == field
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_every_schema_failure_of_an_entry_is_reported_at_once(tmp_path: Path) -> None:
    path = write_entry(tmp_path, units="inches", files="../outside/*.nc", surprise="field")
    with pytest.raises(InputDataError) as caught:
        load_entry(path)
    assert caught.value.check == "schema"
    assert set(caught.value.variable.split(", ")) == {"units", "files", "surprise"}
    assert "3 error(s)" in caught.value.detail
    for message in ("unknown units", "without '..'", "Extra inputs"):
        assert message in caught.value.detail


def test_licence_and_attribution_are_optional_for_user_entries(tmp_path: Path) -> None:
    entry = load_entry(write_entry(tmp_path, licence=None, attribution=None))
    assert entry.licence is None and entry.attribution is None
    with pytest.raises(InputDataError, match="licence"):
        load_entry(write_entry(tmp_path, licence=""))


def test_crs_is_optional_for_grids_but_required_for_station_sets(tmp_path: Path) -> None:
    assert load_entry(write_entry(tmp_path, crs=None)).crs is None
    with pytest.raises(InputDataError, match="crs is required"):
        load_entry(write_entry(tmp_path, kind="stations", reader="station_csv", crs=None))


def test_accumulation_needs_its_period(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="accumulation_minutes is required"):
        load_entry(write_entry(tmp_path, units="mm"))


def test_reflectivity_needs_a_zr_relation(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="zr_relation is required"):
        load_entry(write_entry(tmp_path, units="dBZ"))


def test_not_yaml_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(InputDataError, match="one mapping"):
        load_entry(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(InputDataError, match="readable YAML"):
        load_entry(path)


def test_symbolic_link_out_of_the_data_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write_cf_netcdf(outside / "synthetic.nc")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside / "synthetic.nc", root / "synthetic.nc")
    write_entry(tmp_path / "catalog")
    catalog = Catalog.load([tmp_path / "catalog"], data_root_dir=root)
    with pytest.raises(InputDataError, match="path inside data root"):
        catalog.resolve_files(catalog.get("synthetic"))


def test_no_matching_files(tmp_path: Path) -> None:
    write_entry(tmp_path / "catalog", files="nothing/*.nc")
    catalog = Catalog.load([tmp_path / "catalog"], data_root_dir=tmp_path)
    with pytest.raises(InputDataError, match="files exist"):
        catalog.resolve_files(catalog.get("synthetic"))


def test_time_from_filename() -> None:
    parse = TimeFromFilename(pattern=r"^AQC(\d{9})", format="%y%j%H%M").parse
    assert parse("AQC151351545F_00005.801.gif").isoformat() == "2015-05-15T15:45:00"
    with pytest.raises(ValueError, match="does not match"):
        parse("other.gif")
    with pytest.raises(ValueError, match="exactly one capturing group"):
        TimeFromFilename(pattern=r"(\d)(\d)", format="%H%M")


def test_package_data_inside_an_archive_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    import weatherunc.catalog

    with zipfile.ZipFile(tmp_path / "weatherunc.zip", "w") as archive:
        archive.writestr("weatherunc/data/catalog/a.yaml", "name: a\n")
    monkeypatch.setattr(
        weatherunc.catalog, "PACKAGE_DATA", zipfile.Path(tmp_path / "weatherunc.zip", "weatherunc/data/")
    )
    with pytest.raises(InputDataError, match="package installed as files"):
        package_data_dir()


def test_yaml_files_lists_only_yaml_files_of_a_folder_by_name(tmp_path: Path) -> None:
    for name in ("b.yaml", "a.yaml", "notes.txt", "c.yml"):
        (tmp_path / name).write_text("")
    (tmp_path / "folder.yaml").mkdir()
    assert [path.name for path in yaml_files(tmp_path)] == ["a.yaml", "b.yaml"]


def test_a_grid_without_crs_takes_the_grid_mapping_of_its_file(synthetic) -> None:
    import pyproj

    from weatherunc.geolocation import crs_of
    from weatherunc.loading import open_dataset

    catalog = synthetic({"crs": "EPSG:3035"}, crs=None, licence=None, attribution=None)
    dataset = open_dataset("synthetic", catalog=catalog)
    assert crs_of(dataset).equals(pyproj.CRS.from_epsg(3035))
    assert "licence" not in dataset.attrs and "attribution" not in dataset.attrs
    assert float(dataset.precipitation.isel(time=0).mean()) > 0


def test_a_grid_without_crs_in_entry_or_file_names_the_missing_crs(synthetic) -> None:
    from weatherunc.loading import open_dataset

    with pytest.raises(InputDataError, match="CRS present.*set crs in the catalog entry"):
        open_dataset("synthetic", catalog=synthetic(crs=None))


def test_the_entry_crs_takes_precedence_over_the_file(synthetic) -> None:
    import pyproj

    from weatherunc.geolocation import crs_of
    from weatherunc.loading import open_dataset

    dataset = open_dataset("synthetic", catalog=synthetic({"crs": "EPSG:3035"}, crs="EPSG:32631"))
    assert crs_of(dataset).equals(pyproj.CRS.from_epsg(32631))
