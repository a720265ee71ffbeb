"""The package's top-level names resolve lazily to the real functions."""

from __future__ import annotations

import subprocess
import sys

import pytest

import weatherunc
from weatherunc.filling import fill
from weatherunc.loading import open_dataset


def test_top_level_names() -> None:
    assert weatherunc.open_dataset is open_dataset
    assert issubclass(weatherunc.InputDataError, ValueError)
    with pytest.raises(AttributeError, match="no attribute"):
        weatherunc.does_not_exist  # noqa: B018


def test_import_does_no_work() -> None:
    code = (
        "import sys, weatherunc; print(sorted(m for m in ('xarray', 'dask', 'torch', 'pysteps') if m in "
        "sys.modules))"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "[]"
    )


def test_fill_is_the_function_not_its_module() -> None:
    import weatherunc.filling  # binding a submodule named like the function would shadow it

    assert weatherunc.fill is fill and callable(weatherunc.fill)
    assert "fill" in weatherunc.__all__
