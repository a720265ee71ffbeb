"""The built wheel works outside the checkout: its contents, ``weatherunc catalog list`` and a small fill.

The wheel is built offline from a copy of the sources (``pip wheel --no-build-isolation`` with the test
environment's setuptools) and installed into a fresh virtual environment that sees the test
environment's dependencies through a ``.pth`` file but not the checkout: ``.pth`` files of the test
environment (the editable install's finder among them) are not run, the subprocesses start in an
empty folder and without ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY

#: What a wheel is built from: the project file, the readme it names, the package.
SOURCES = ("pyproject.toml", "README.md", "weatherunc")
#: Run by the wheel's Python: where weatherunc comes from, the shipped job configs, and a 12 x 12 px
#: gap in the embedded MRMS sample filled with inverse-distance weighting.
FILL_SCRIPT = """
import importlib.util, json, sys
import numpy as np
import weatherunc
from weatherunc.pipelines import jobs_folder
from weatherunc.pipelines.job_config import load_job_config

sample = weatherunc.open_dataset("mrms_embedded")
frame = sample.precipitation.isel(time=20, y=slice(96, 160), x=slice(96, 160))
frame = frame.assign_coords(crs=sample.crs)
gap = np.zeros(frame.shape, dtype=bool)
gap[26:38, 26:38] = True
filled = weatherunc.fill(frame.where(~gap), model="idw", progress=False)
print(json.dumps({
    "weatherunc": weatherunc.__file__,
    "top_level_pipelines": importlib.util.find_spec("pipelines") is not None,
    "demo_jobs": [load_job_config(path).name for path in sorted(jobs_folder().glob("demo_*.yaml"))],
    "gap_pixels": int(gap.sum()),
    "finite_mean": int(np.isfinite(filled.precipitation_mean.values[gap]).sum()),
    "positive_std": int((filled.precipitation_std.values[gap] > 0).sum()),
}))
"""


def _copy_sources(destination: Path) -> Path:
    """Copy :data:`SOURCES` to ``destination`` without caches or build metadata; returns it."""
    destination.mkdir()
    for name in SOURCES:
        source = REPOSITORY / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, destination / name)
    return destination


def _clean_environment() -> dict[str, str]:
    """This process's environment without the variables that would point Python or weatherunc at the
    checkout or at user folders."""
    removed = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "WEATHERUNC_CATALOG", "WEATHERUNC_DATA_DIR"}
    return {key: value for key, value in os.environ.items() if key not in removed}


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``command`` in ``cwd`` with :func:`_clean_environment`; fail the test with its output when it
    fails."""
    result = subprocess.run(
        command, cwd=cwd, env=_clean_environment(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources, offline."""
    root = tmp_path_factory.mktemp("wheel")
    source = _copy_sources(root / "source")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(root / "dist"),
        ],
        cwd=root,
    )
    (built,) = (root / "dist").glob("weatherunc-*.whl")
    return built


@pytest.fixture(scope="module")
def environment(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the wheel and, after it, the test environment's site-packages
    (the dependencies); returns its folder."""
    root = tmp_path_factory.mktemp("environment")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    python = venv / "bin" / "python"
    install = ["install", "--no-deps", "--no-index", "--quiet", str(wheel)]
    _run([sys.executable, "-m", "pip", "--python", str(python), *install], cwd=root)
    purelib = _run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=root
    )
    dependencies = [path for path in sys.path if Path(path).name in ("site-packages", "dist-packages")]
    (Path(purelib.stdout.strip()) / "test_environment.pth").write_text("\n".join(dependencies) + "\n")
    return venv


def test_the_wheel_holds_one_top_level_package_and_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"weatherunc", wheel.name.split("-py")[0] + ".dist-info"}
    package = {
        path.relative_to(REPOSITORY).as_posix()
        for path in (REPOSITORY / "weatherunc").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert {
        "weatherunc/data/catalog/mrms_embedded.yaml",
        "weatherunc/pipelines/jobs/demo_mrms_gp.yaml",
    } <= package
    assert sorted(package - set(names)) == [], "files of weatherunc/ missing from the wheel (package-data?)"
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    entry_points = zipfile.ZipFile(wheel).read(wheel.name.split("-py")[0] + ".dist-info/entry_points.txt")
    assert "weatherunc = weatherunc.cli:app" in entry_points.decode()


def test_the_console_script_lists_the_shipped_catalog_outside_the_checkout(
    environment: Path, tmp_path: Path
) -> None:
    result = _run([str(environment / "bin" / "weatherunc"), "catalog", "list"], cwd=tmp_path)
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert len(names) == 11 and {"mrms_embedded", "knmi_20100826", "sic97"} <= set(names)


def test_the_installed_package_fills_a_gap_of_the_embedded_sample(environment: Path, tmp_path: Path) -> None:
    result = _run([str(environment / "bin" / "python"), "-I", "-c", FILL_SCRIPT], cwd=tmp_path)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    imported_from = Path(report["weatherunc"]).resolve()
    assert imported_from.is_relative_to(environment.resolve())
    assert not imported_from.is_relative_to(REPOSITORY.resolve())
    assert report["top_level_pipelines"] is False
    assert report["demo_jobs"] == ["demo_mrms_anp", "demo_mrms_gp"]
    assert report["gap_pixels"] == 144 == report["finite_mean"] == report["positive_std"]
