"""Readers by name beyond the built-in ones: ``pysteps:import_NAME`` and entry points."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import weatherunc.readers
from tests.conftest import write_cf_netcdf, write_entry
from tests.test_odim import RAW, write_odim
from weatherunc.catalog import Catalog, CatalogEntry, load_entry
from weatherunc.errors import InputDataError
from weatherunc.loading import open_dataset
from weatherunc.readers import (
    ENTRY_POINT_GROUP,
    available_readers,
    entry_point_readers,
    get_reader,
    pysteps_reader,
    reader_kind,
)
from weatherunc.readers.pysteps_formats import PystepsReader


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two readers registered under the entry-point group, as an installed package would."""
    registered = [
        metadata.EntryPoint("plugin_netcdf", "weatherunc.readers.netcdf:NetCDFReader", ENTRY_POINT_GROUP),
        metadata.EntryPoint(
            "plugin_stations", "weatherunc.readers.stations:CSVStationReader", ENTRY_POINT_GROUP
        ),
    ]

    def entry_points(group: str) -> list[metadata.EntryPoint]:
        return registered if group == ENTRY_POINT_GROUP else []

    monkeypatch.setattr(weatherunc.readers.metadata, "entry_points", entry_points)
    entry_point_readers.cache_clear()
    yield
    entry_point_readers.cache_clear()


def test_any_pysteps_importer_is_a_reader_by_name() -> None:
    assert get_reader("pysteps:import_odim_hdf5") == PystepsReader("import_odim_hdf5")
    assert pysteps_reader("pysteps:import_bom_rf3").importer == "import_bom_rf3"
    for bad in ("pysteps:import_nothing", "pysteps:get_method"):
        with pytest.raises(ValueError, match="valid: .*pysteps:import_odim_hdf5"):
            get_reader(bad)


def test_an_unknown_pysteps_importer_fails_the_schema(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="unknown pysteps importer 'import_nothing'"):
        load_entry(write_entry(tmp_path, reader="pysteps:import_nothing"))
    assert (
        load_entry(write_entry(tmp_path, reader="pysteps:import_opera_hdf5")).reader
        == "pysteps:import_opera_hdf5"
    )


def test_a_pysteps_importer_reads_what_the_built_in_reader_reads(tmp_path: Path) -> None:
    (tmp_path / "radar").mkdir()
    write_odim(tmp_path / "radar" / "odim_202107141200.h5")
    common = {"files": "radar/*.h5", "variable": "DBZH", "units": "dBZ", "crs": None}
    common["zr_relation"] = {"a": 200.0, "b": 1.6, "reference": "Marshall and Palmer (1948)"}
    write_entry(tmp_path / "catalog", name="built_in", reader="odim_hdf5", **common)
    write_entry(
        tmp_path / "catalog",
        name="by_pysteps",
        reader="pysteps:import_odim_hdf5",
        reader_options={"qty": "DBZH"},
        time_from_filename={"pattern": r"_(\d{12})\.h5$", "format": "%Y%m%d%H%M"},
        **common,
    )
    catalog = Catalog.load([tmp_path / "catalog"], data_root_dir=tmp_path)
    built_in = open_dataset("built_in", catalog=catalog).precipitation.isel(time=0).values
    by_pysteps = open_dataset("by_pysteps", catalog=catalog).precipitation.isel(time=0).values
    detected = (RAW != 0) & (RAW != 255)
    np.testing.assert_allclose(by_pysteps[detected], built_in[detected], rtol=1e-5)
    assert np.isnan(by_pysteps[RAW == 255]).all()


@pytest.mark.usefixtures("plugins")
def test_readers_registered_as_entry_points_are_found_by_name(tmp_path: Path) -> None:
    assert {"plugin_netcdf", "plugin_stations"} <= set(available_readers())
    assert "plugin_netcdf" in available_readers("grid") and "plugin_stations" in available_readers("stations")
    assert reader_kind(get_reader("plugin_stations")) == "stations"
    with pytest.raises(ValueError, match="unknown grid reader 'plugin_stations'"):
        get_reader("plugin_stations", "grid")
    (tmp_path / "data").mkdir()
    write_cf_netcdf(tmp_path / "data" / "synthetic.nc")
    write_entry(tmp_path / "catalog", reader="plugin_netcdf")
    catalog = Catalog.load([tmp_path / "catalog"], data_root_dir=tmp_path / "data")
    assert open_dataset("synthetic", catalog=catalog).precipitation.shape == (3, 8, 10)


def test_a_broken_entry_point_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = metadata.EntryPoint("broken", "weatherunc.no_such_module:Reader", ENTRY_POINT_GROUP)
    monkeypatch.setattr(weatherunc.readers.metadata, "entry_points", lambda group: [broken])
    entry_point_readers.cache_clear()
    try:
        assert get_reader("cf_netcdf") is not None  # built-in names never load the plugins
        with pytest.raises(ImportError, match="reader 'broken' registered under 'weatherunc.readers'"):
            get_reader("broken")
    finally:
        entry_point_readers.cache_clear()


def test_the_shipped_entries_need_no_plugin() -> None:
    assert all(isinstance(entry, CatalogEntry) for entry in Catalog.load().entries.values())
