"""Shared fixtures: the shared data root (skip when absent) and synthetic CF files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from weatherunc import shared_data

REPOSITORY = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """``$WEATHERUNC_DATA_DIR`` or ``../shared/data`` beside the repository, if present (the rule the
    notebooks follow too: :func:`weatherunc.shared_data.shared_data_dir`)."""
    return shared_data.shared_data_dir(REPOSITORY)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs ``pytest -n auto``) the workers share the cores: each
    worker, and every process it starts (notebook kernels, the CLI), gets ``cores // workers``
    threads. Torch's default of one thread per core in every worker would oversubscribe them, and
    a torch process beside another busy one runs many times slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers <= 1:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // workers)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


requires_shared_data = pytest.mark.skipif(shared_data_dir() is None, reason="../shared/data is absent")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data root; skips the test when it is absent."""
    root = shared_data_dir()
    if root is None:
        pytest.skip("../shared/data is absent")
    return root


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no user catalog folders unless they set one."""
    monkeypatch.delenv("WEATHERUNC_CATALOG", raising=False)


def write_cf_netcdf(
    path: Path,
    *,
    values: np.ndarray | None = None,
    times: list[str] | None = None,
    units: str | None = "mm h-1",
    dims: tuple[str, str, str] = ("time", "y", "x"),
    with_coordinates: bool = True,
    latitude: bool = False,
    grid_mapping: str | None = None,
    crs: str | None = None,
) -> Path:
    """A small CF NetCDF file ``precipitation(time, y, x)`` with chosen defects; ``crs`` (anything
    pyproj reads) adds a CF grid-mapping variable ``crs`` that the precipitation names."""
    if values is None:
        rng = np.random.default_rng(0)
        values = rng.gamma(0.5, 2.0, size=(3, 8, 10))
    n_time, ny, nx = values.shape
    times = times or [str(t) for t in pd.date_range("2020-01-01", periods=n_time, freq="5min")]
    attrs = {} if units is None else {"units": units}
    if grid_mapping:
        attrs["grid_mapping"] = grid_mapping
    coords: dict[str, object] = {}
    if with_coordinates:
        coords[dims[0]] = pd.to_datetime(times)
        if latitude:
            coords[dims[1]] = (dims[1], np.linspace(85.0, 95.0, ny), {"units": "degrees_north"})
            coords[dims[2]] = (dims[2], np.linspace(0.0, 9.0, nx), {"units": "degrees_east"})
        else:
            coords[dims[1]] = (dims[1], 1000.0 * np.arange(ny), {"units": "m"})
            coords[dims[2]] = (dims[2], 1000.0 * np.arange(nx), {"units": "m"})
    dataset = xr.Dataset({"precipitation": (dims, values.astype(np.float32), attrs)}, coords=coords)
    if crs is not None:
        import pyproj

        from weatherunc.geolocation import grid_mapping as cf_grid_mapping

        dataset["crs"] = cf_grid_mapping(pyproj.CRS.from_user_input(crs))
        dataset["precipitation"].attrs["grid_mapping"] = "crs"
    dataset.to_netcdf(path)
    return path


def write_classic_netcdf(
    path: Path, values: np.ndarray, *, engine: str = "netcdf4", unlimited_time: bool = False
) -> Path:
    """A classic (NETCDF3_64BIT) file ``precipitation(time, y, x)`` in mm h-1, written by
    ``engine``; the coordinates are defined first, so with the netCDF4 library the
    precipitation data come last in the file. ``unlimited_time`` makes time the record
    dimension (time and precipitation then share each record)."""
    n_time, ny, nx = values.shape
    dataset = xr.Dataset(
        coords={
            "time": pd.date_range("2020-01-01", periods=n_time, freq="5min"),
            "y": ("y", 1000.0 * np.arange(ny), {"units": "m"}),
            "x": ("x", 1000.0 * np.arange(nx), {"units": "m"}),
        }
    )
    dataset["precipitation"] = (("time", "y", "x"), values.astype(np.float32), {"units": "mm h-1"})
    dataset.to_netcdf(
        path, format="NETCDF3_64BIT", engine=engine, unlimited_dims=["time"] if unlimited_time else None
    )
    return path


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes: equal trees are equal dicts."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def write_entry(folder: Path, **overrides: object) -> Path:
    """A catalog YAML entry for a synthetic CF file, with fields overridden."""
    entry = {
        "name": "synthetic",
        "description": "synthetic test field",
        "kind": "grid",
        "reader": "cf_netcdf",
        "files": "synthetic.nc",
        "variable": "precipitation",
        "units": "mm h-1",
        "time_step_minutes": 5,
        "crs": "EPSG:3035",
        "licence": "test data",
        "attribution": "weatherunc tests",
    }
    entry.update(overrides)
    entry = {key: value for key, value in entry.items() if value is not None}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entry['name']}.yaml"
    path.write_text(yaml.safe_dump(entry))
    return path


@pytest.fixture
def synthetic(tmp_path: Path):
    """Factory: write a synthetic file and entry, return a loaded Catalog."""
    from weatherunc.catalog import Catalog

    def make(file_options: dict | None = None, **entry_overrides: object) -> Catalog:
        data_root = tmp_path / "data"
        data_root.mkdir(exist_ok=True)
        write_cf_netcdf(data_root / "synthetic.nc", **(file_options or {}))
        write_entry(tmp_path / "catalog", **entry_overrides)
        return Catalog.load([tmp_path / "catalog"], data_root_dir=data_root)

    return make
