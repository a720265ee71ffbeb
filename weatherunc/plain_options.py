"""Plain values (a YAML file, a command line) as the fields of a config dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any


def dataclass_values(config: type, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` as keyword arguments of the dataclass ``config``: lists become tuples (YAML and
    JSON have no tuples); ``ValueError`` naming the fields ``config`` does not have."""
    unknown = sorted(set(options) - {item.name for item in fields(config)})
    if unknown:
        raise ValueError(f"{config.__name__} has no field {', '.join(map(repr, unknown))}")
    return {name: tuple(value) if isinstance(value, list) else value for name, value in options.items()}
