"""Plain values as a config dataclass's fields (``weatherunc.plain_options``)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from weatherunc.plain_options import dataclass_values


@dataclass(frozen=True)
class _Config:
    edges: tuple[float, ...] = (0.0, 1.0)
    draws: int = 1


def test_lists_become_tuples_and_unknown_fields_are_named() -> None:
    assert dataclass_values(_Config, {"edges": [0, 2, 4], "draws": 3}) == {"edges": (0, 2, 4), "draws": 3}
    assert _Config(**dataclass_values(_Config, {"edges": [0.5]})) == _Config(edges=(0.5,))
    with pytest.raises(ValueError, match=r"_Config has no field 'nope', 'zz'"):
        dataclass_values(_Config, {"zz": 1, "nope": 2, "draws": 2})
