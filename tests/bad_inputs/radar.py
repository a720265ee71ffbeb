"""Catalogue cases for the radar formats of the project catalog (KNMI HDF5, MeteoSwiss GIF, FMI
PGM, MRMS GRIB2, BoM NetCDF): empty files, and copies of the shared files cut short."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from tests.bad_inputs.grids import cut
from tests.bad_inputs.runner import Case, Scenario, named
from weatherunc.catalog import Catalog
from weatherunc.errors import InputDataError
from weatherunc.loading import open_dataset


def _intact(path: Path) -> None:
    """Leave the copied file as it is (valid control)."""


def _radar_case(case_id: str, entry: str, damage: Callable[[Path], object] | None) -> Case:
    """A case on project entry ``entry`` whose data root holds one file named like its pattern:
    an empty file when ``damage`` is ``None``, else a copy of the first shared file changed by
    ``damage`` (:func:`_intact`: a valid control). The first frame is read."""
    source_folder, glob = _PATTERNS[entry].rsplit("/", 1)

    def build(work: Path, shared: Path | None) -> Scenario:
        folder = work / "root" / source_folder
        folder.mkdir(parents=True)
        if damage is None:
            (folder / glob.replace("*", _STAMPS[entry])).touch()
        else:
            assert shared is not None, "this case needs the shared data"
            source = sorted((shared / source_folder).glob(glob))[0]
            copy = folder / source.name
            shutil.copy(source, copy)
            copy.chmod(0o644)
            damage(copy)
        catalog = Catalog.load(data_root_dir=work / "root")
        return Scenario(action=lambda: open_dataset(entry, catalog=catalog).precipitation[0].compute())

    shared = damage is not None
    if damage is _intact:
        return Case(case_id, "radar file", build, error=None, needs_shared_data=shared)
    pattern = named(_VARIABLES[entry], "readable file")
    return Case(case_id, "radar file", build, InputDataError, pattern, needs_shared_data=shared)


_STAMPS = {
    "knmi_20100826": "201008260000",
    "mch_20150515": "151351545F_00005.801",
    "fmi_20160928": "201609281445",
    "mrms_20190610": "20190610-000000",
}
_VARIABLES = {
    "knmi_20100826": "ACRR",
    "mch_20150515": "AQC",
    "fmi_20160928": "DBZH",
    "mrms_20190610": "PrecipRate",
    "bom_prcp_c10_20201031": "precipitation",
}
_PATTERNS = {
    "knmi_20100826": "radar/knmi/2010/08/RAD_NL25_RAP_5min_*.h5",
    "mch_20150515": "radar/mch/20150515/AQC*.gif",
    "fmi_20160928": "radar/fmi/20160928/*_fmi.radar.composite.lowest_FIN_SUOMI1.pgm.gz",
    "mrms_20190610": "radar/mrms/2019/06/10/PrecipRate_00.00_*.grib2",
    "bom_prcp_c10_20201031": "radar/bom/prcp-c10/66/2020/10/31/66_*.prcp-c10.nc",
}
RADAR_CASES: list[Case] = [
    *[_radar_case(f"{entry.split('_')[0]}-zero-bytes", entry, None) for entry in _STAMPS],
    *[
        _radar_case(f"{entry.split('_')[0]}-truncated-half", entry, cut(lambda n: n // 2))
        for entry in _PATTERNS
    ],
    *[
        _radar_case(f"{entry.split('_')[0]}-truncated-tail", entry, cut(lambda n: n - 64))
        for entry in _PATTERNS
    ],
    *[
        _radar_case(f"{entry.split('_')[0]}-valid-copy", entry, _intact)
        for entry in _STAMPS
        if entry != "mrms_20190610"
    ],
]
