"""What every benchmark records beside its figures: its title, the machine, and the JSON file itself."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, object]:
    """Cores, processor and Python version of the machine the figures come from, and the date (UTC)."""
    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def require_data_dir() -> None:
    """Exit with a message unless ``WEATHERUNC_DATA_DIR`` names the shared data folder."""
    if not os.environ.get("WEATHERUNC_DATA_DIR"):
        sys.exit("set WEATHERUNC_DATA_DIR to the shared data folder")


def result_header(docstring: str) -> dict[str, object]:
    """The opening entries of a result file: ``benchmark``, the first line of the script's
    ``docstring``, and ``machine`` (:func:`machine`)."""
    return {"benchmark": docstring.strip().splitlines()[0], "machine": machine()}


def write_result(name: str, result: dict[str, object]) -> Path:
    """Write ``result`` as ``benchmarks/results/NAME`` and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def parsed_options(assignments: list[str], config: type) -> dict[str, object]:
    """``--option NAME=VALUE`` strings as fields of the dataclass ``config`` (values read as JSON,
    else text), checked by building ``config`` from them before any work; exits naming the
    assignment otherwise."""
    names = {field.name for field in dataclasses.fields(config)}
    options: dict[str, object] = {}
    for assignment in assignments:
        name, separator, value = assignment.partition("=")
        if not separator or name not in names:
            sys.exit(f"--option {assignment!r}: expected NAME=VALUE with NAME one of {sorted(names)}")
        try:
            options[name] = json.loads(value)
        except json.JSONDecodeError:
            options[name] = value
    config.from_options(options)
    return options
