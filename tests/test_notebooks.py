"""The notebooks run top to bottom (nbclient) and are stored without outputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_the_four_notebooks() -> None:
    assert [path.stem for path in NOTEBOOKS] == [
        "01_quickstart",
        "02_compare_models",
        "03_calibration",
        "04_batch_job",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}: clear the outputs before committing"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("image/png" in output.get("data", {}) for output in outputs), (
        "every notebook draws at least one figure"
    )
    if path.stem == "04_batch_job" and importlib.util.find_spec("xpublish") is not None:
        printed = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
        assert "mean over HTTP:" in printed and "precipitation_std" in printed, (
            "the service cell queries a running server (EDR over HTTP, the store with xarray)"
        )
