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


#: The most lines a module of the library or the pipelines may have (house style: one job a module).
MAXIMUM_MODULE_LINES = 400


def _module_lines() -> dict[str, int]:
    """Line count of every Python module under ``weatherunc/`` and ``pipelines/`` (where present)."""
    return {
        path.relative_to(REPOSITORY).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for folder in ("weatherunc", "pipelines")
        if (REPOSITORY / folder).is_dir()
        for path in sorted((REPOSITORY / folder).rglob("*.py"))
    }


def test_no_module_is_over_the_line_limit() -> None:
    lines = _module_lines()
    assert lines, "no module found under weatherunc/ or pipelines/"
    too_long = {name: count for name, count in lines.items() if count > MAXIMUM_MODULE_LINES}
    assert too_long == {}, f"modules over {MAXIMUM_MODULE_LINES} lines (split them by concept): {too_long}"
