"""The code base passes ``ruff check`` and ``ruff format --check`` with the settings in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    beside_python = Path(sys.executable).with_name("ruff")
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: it is in the test extras (pip install -e '.[test]')")
    return [found]


@pytest.mark.parametrize("arguments", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(arguments: list[str]) -> None:
    result = subprocess.run([*_ruff(), *arguments, "."], cwd=REPOSITORY, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"ruff {' '.join(arguments)} found problems:\n{result.stdout}{result.stderr}"
    )
