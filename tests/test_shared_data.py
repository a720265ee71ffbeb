"""The shared data folder: ``$WEATHERUNC_DATA_DIR``, else ``shared/data`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from weatherunc.shared_data import NATURAL_EARTH, shared_data_dir, use_shared_data


def _shared(folder: Path, *, natural_earth: bool = False) -> Path:
    folder.mkdir(parents=True)
    (folder / "MANIFEST.md").write_text("# shared data\n")
    if natural_earth:
        (folder / NATURAL_EARTH).mkdir(parents=True)
    return folder


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository folder with no shared data beside it and an environment that names none."""
    monkeypatch.delenv("WEATHERUNC_DATA_DIR", raising=False)
    monkeypatch.delenv("CARTOPY_DATA_DIR", raising=False)
    (tmp_path / "repository").mkdir()
    return tmp_path / "repository"


def test_none_without_environment_or_sibling_folder(checkout: Path) -> None:
    assert shared_data_dir(checkout) is None
    assert use_shared_data(checkout) is None and "WEATHERUNC_DATA_DIR" not in os.environ


def test_sibling_folder_is_the_fall_back(checkout: Path) -> None:
    sibling = _shared(checkout.parent / "shared" / "data")
    assert shared_data_dir(checkout) == sibling.resolve()


def test_environment_comes_first_and_needs_the_manifest(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sibling = _shared(checkout.parent / "shared" / "data")
    elsewhere = _shared(tmp_path / "elsewhere")
    monkeypatch.setenv("WEATHERUNC_DATA_DIR", str(elsewhere))
    assert shared_data_dir(checkout) == elsewhere.resolve()
    (elsewhere / "MANIFEST.md").unlink()
    assert shared_data_dir(checkout) == sibling.resolve()


def test_use_shared_data_sets_what_is_unset(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sibling = _shared(checkout.parent / "shared" / "data", natural_earth=True)
    assert use_shared_data(checkout) == sibling.resolve()
    assert os.environ["WEATHERUNC_DATA_DIR"] == str(sibling.resolve())
    assert os.environ["CARTOPY_DATA_DIR"] == str(sibling.resolve() / NATURAL_EARTH)
    monkeypatch.setenv("CARTOPY_DATA_DIR", "/my/coastlines")
    use_shared_data(checkout)
    assert os.environ["CARTOPY_DATA_DIR"] == "/my/coastlines", "a value already set is kept"
