"""Every command's help renders the bracketed words of its text (Rich markup would swallow them)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from weatherunc.cli import app

runner = CliRunner()
#: A bracketed word such as ``[mm/h]`` or ``[service]``, escaped (``\\[``) or not.
BRACKETED = re.compile(r"\\?\[[^\]\s]+\]")


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, group
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))
IDS = [" ".join(path) or "weatherunc" for path, _ in COMMANDS]


def _texts(command: Any) -> list[str]:
    return [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]


def _rendered(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_bracketed_words_are_shown(path: tuple[str, ...], command: Any) -> None:
    output = _rendered(path)
    for text in _texts(command):
        for word in BRACKETED.findall(text):
            assert word.lstrip("\\") in output, f"weatherunc {' '.join(path)} --help does not show {word}"


def test_serve_and_plot_help_show_the_extra_and_the_unit() -> None:
    assert "pip install 'weatherunc[service]'" in " ".join(_rendered(("serve",)).split())
    assert "Rate threshold [mm/h]" in _rendered(("plot",))
