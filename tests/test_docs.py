"""The documentation: the MkDocs site builds strictly, and the README is short, linked and true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from tests.conftest import REPOSITORY
from weatherunc.cli import app
from weatherunc.models.registry import MODELS

README = REPOSITORY / "README.md"
MAXIMUM_README_LINES = 150
#: A markdown link or image target: ``[text](target)`` / ``![alt](target)``.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
#: A score chain such as ``0.674 → 0.630`` (history belongs in benchmarks/HISTORY.md).
SCORE_CHAIN = re.compile(r"\d\s*(?:→|->)\s*[−-]?\d")
FIRST_PERSON = re.compile(r"\b(?:I|we|We|our|Our|my|My)\b")


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _guide_pages() -> list[Path]:
    """README and every page of the docs site."""
    return [README, *sorted((REPOSITORY / "docs").rglob("*.md"))]


def _command_lines() -> list[str]:
    """``weatherunc NAME`` for every command of the CLI (``weatherunc catalog list`` for subcommands)."""
    lines = []
    for name, command in typer.main.get_command(app).commands.items():
        if hasattr(command, "commands"):  # a group (typer's own click, not necessarily `click`)
            lines.extend(f"weatherunc {name} {sub}" for sub in command.commands)
        else:
            lines.append(f"weatherunc {name}")
    return lines


def test_mkdocs_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(REPOSITORY / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for anchor in (
        "weatherunc.models.registry.get_model",
        "weatherunc.evaluation.score_prediction",
        "weatherunc.gridding.predict_grid",
    ):
        assert f'id="{anchor}"' in api, f"the API reference lacks {anchor}"


def test_readme_is_short() -> None:
    lines = len(_readme().splitlines())
    assert lines <= MAXIMUM_README_LINES, (
        f"README.md has {lines} lines (at most {MAXIMUM_README_LINES}); move details to docs/"
    )


def test_readme_relative_links_point_to_existing_files() -> None:
    targets = [target for target in LINK.findall(_readme()) if not re.match(r"^(?:[a-z]+:|#)", target)]
    assert targets, "README.md has no relative links"
    missing = [target for target in targets if not (REPOSITORY / target.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_guide_holds_no_score_history_or_first_person() -> None:
    for page in _guide_pages():
        text = page.read_text(encoding="utf-8")
        assert not SCORE_CHAIN.search(text), (
            f"{page.name}: score chain {SCORE_CHAIN.search(text).group()!r} (belongs in "
            "benchmarks/HISTORY.md)"
        )
        assert not FIRST_PERSON.search(text), (
            f"{page.name}: first person {FIRST_PERSON.search(text).group()!r}"
        )
        assert "session" not in text.lower(), f"{page.name} mentions a session"


def test_readme_names_every_registered_model() -> None:
    readme = _readme()
    missing = [name for name in MODELS if f"| `{name}` |" not in readme]
    assert not missing, f"the README's model table lacks {missing}"


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md"])
def test_every_cli_command_is_documented(page: str) -> None:
    text = (REPOSITORY / page).read_text(encoding="utf-8")
    commands = _command_lines()
    assert len(commands) >= 10
    missing = [command for command in commands if command not in text]
    assert not missing, f"{page} lacks {missing}"


def test_readme_example_runs() -> None:
    blocks = [
        block
        for block in re.findall(r"```python\n(.*?)```", _readme(), flags=re.DOTALL)
        if "weatherunc.fill(" in block
    ]
    assert len(blocks) == 1, "README.md should hold one Python example that calls weatherunc.fill"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    filled, gap = namespace["filled"], namespace["gap"]
    assert int(gap.sum()) == 900
    inside = filled.where(gap)
    assert (
        bool(inside.precipitation_mean.notnull().sum() == 900) and float(inside.precipitation_std.min()) > 0
    )
    observed_outside = filled.observation.values[~gap.values] == 1
    assert observed_outside.mean() > 0.9 and set(filled.precipitation_mean.dims) == {"y", "x"}


def test_the_jobs_page_lists_every_job_field_and_every_shipped_job() -> None:
    from weatherunc.pipelines.job_config import JobConfig

    page = (REPOSITORY / "docs" / "jobs.md").read_text()
    rows = [line.split("|")[1] for line in page.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row)}
    assert set(JobConfig.model_fields) <= documented, set(JobConfig.model_fields) - documented
    shipped = sorted(path.name for path in (REPOSITORY / "weatherunc" / "pipelines" / "jobs").glob("*.yaml"))
    assert shipped and all(f"`{name}`" in page for name in shipped)
