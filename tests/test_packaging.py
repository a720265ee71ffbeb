"""Set-up files agree: pyproject (source of truth), environment.yml, constraints, README, CI."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement

from tests.conftest import REPOSITORY

#: PyPI name -> conda-forge name where they differ.
CONDA_NAMES = {"torch": "pytorch", "netCDF4": "netcdf4"}
#: (PyPI name, extra) -> the separate conda-forge package that provides that extra.
CONDA_EXTRAS = {("dask", "distributed"): "distributed", ("mkdocstrings", "python"): "mkdocstrings-python"}


def _pyproject() -> dict:
    return tomllib.loads((REPOSITORY / "pyproject.toml").read_text())


def _conda_specs() -> dict[str, str]:
    environment = yaml.safe_load((REPOSITORY / "environment.yml").read_text())
    specs = {}
    for item in environment["dependencies"]:
        if isinstance(item, str):
            name = re.split(r"[<>=!\s]", item, maxsplit=1)[0]
            specs[name] = item[len(name) :].replace(" ", "")
    return specs


def _pypi_requirements() -> list[Requirement]:
    """The dependencies and every extra: environment.yml is the one conda environment for all of them."""
    project = _pyproject()["project"]
    extras = [text for texts in project["optional-dependencies"].values() for text in texts]
    return [Requirement(text) for text in project["dependencies"] + extras]


def test_environment_yml_matches_pyproject() -> None:
    conda = _conda_specs()
    for requirement in _pypi_requirements():
        name = CONDA_NAMES.get(requirement.name, requirement.name)
        assert name in conda, (
            f"{requirement.name} is in pyproject.toml but not in environment.yml (as {name})"
        )
        assert conda[name] == str(requirement.specifier) or sorted(conda[name].split(",")) == sorted(
            str(requirement.specifier).split(",")
        ), f"{name}: environment.yml says {conda[name]!r}, pyproject.toml says {requirement.specifier}"
        for extra in requirement.extras:
            if (requirement.name, extra) in CONDA_EXTRAS:
                assert CONDA_EXTRAS[requirement.name, extra] in conda, (
                    f"{requirement}: environment.yml lacks {CONDA_EXTRAS[requirement.name, extra]}"
                )
    pypi_names = (
        {CONDA_NAMES.get(r.name, r.name) for r in _pypi_requirements()}
        | {"python", "pip"}
        | set(CONDA_EXTRAS.values())
    )
    assert set(conda) <= pypi_names, f"environment.yml has extras: {set(conda) - pypi_names}"


def test_docs_extra_is_part_of_the_test_extra() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert extras["docs"], "pyproject.toml has an empty docs extra"
    assert set(extras["docs"]) <= set(extras["test"]), (
        "make test builds the docs: the test extra must hold the docs extra"
    )


def test_notebooks_extra_has_jupyterlab_and_stays_out_of_the_test_extra() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    names = {Requirement(text).name for text in extras["notebooks"]}
    assert {"jupyterlab", "ipykernel"} <= names, "the notebooks extra opens notebooks/ in JupyterLab"
    test_names = {Requirement(text).name for text in extras["test"]}
    assert "jupyterlab" not in test_names, (
        "make test (and CI) installs the test extra; the tests run the notebooks with nbclient, no JupyterLab"
    )


def test_licence_is_an_spdx_expression_with_a_setuptools_that_reads_it() -> None:
    pyproject = _pyproject()
    assert pyproject["project"]["license"] == "MIT"
    setuptools = next(
        Requirement(text) for text in pyproject["build-system"]["requires"] if text.startswith("setuptools")
    )
    assert not setuptools.specifier.contains("76.9"), "SPDX license strings need setuptools >= 77"


def test_torch_is_pinned_exactly_in_constraints_and_ranged_in_pyproject() -> None:
    constraints = (REPOSITORY / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", constraints, flags=re.MULTILINE)
    torch = next(r for r in _pypi_requirements() if r.name == "torch")
    assert "2.13.0" in torch.specifier and "==" not in str(torch.specifier)


def test_readme_commands_exist_and_ci_runs_the_test_command() -> None:
    readme = (REPOSITORY / "README.md").read_text()
    makefile = (REPOSITORY / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE)
    assert "make test" in (REPOSITORY / ".ci" / "run").read_text()


def test_console_script_is_declared() -> None:
    assert _pyproject()["project"]["scripts"]["weatherunc"] == "weatherunc.cli:app"
