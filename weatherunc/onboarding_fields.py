"""Fields of a drafted catalog entry that every format shares: the files pattern, the CRS, the
time step and the default Z-R law (used by :mod:`weatherunc.onboarding`).

Reference: Marshall, J. S. and Palmer, W. M. (1948), "The distribution of raindrops with size",
J. Meteor. 5, 165-166.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyproj

from weatherunc.errors import InputDataError

#: Marshall and Palmer (1948), J. Meteor. 5, 165-166: Z = 200 R^1.6, the default for a new entry.
MARSHALL_PALMER = {"a": 200.0, "b": 1.6, "reference": "Marshall and Palmer (1948); review for this radar"}


def files_pattern(files: list[Path], root: Path) -> str:
    """A glob relative to ``root`` that matches ``files``: the path of one file, else the common
    folder, name prefix and suffix around ``*`` (digits next to ``*`` go in it: they are usually a
    time). :class:`InputDataError` when a file is outside ``root``."""
    relative = []
    for path in files:
        resolved = path.resolve()
        if not resolved.is_relative_to(root.resolve()):
            raise InputDataError(
                source=path,
                variable="files",
                check="path inside data root",
                detail=f"not under the data root {root}; pass --data-dir or set WEATHERUNC_DATA_DIR",
            )
        relative.append(resolved.relative_to(root.resolve()))
    if len(relative) == 1:
        return relative[0].as_posix()
    folders = {path.parent for path in relative}
    if len(folders) > 1:
        raise InputDataError(
            source=root,
            variable="files",
            check="files in one folder",
            detail=f"the files lie in {len(folders)} folders; inspect one folder at a time",
        )
    names = [path.name for path in relative]
    prefix = os.path.commonprefix(names)
    suffix = os.path.commonprefix([name[len(prefix) :][::-1] for name in names])[::-1]
    prefix, suffix = prefix.rstrip("0123456789"), suffix.lstrip("0123456789")  # times vary in full
    return (folders.pop() / f"{prefix}*{suffix}").as_posix()


def crs_text(definition: str) -> str:
    """``EPSG:code`` when the CRS ``definition`` (WKT, PROJ string) matches an EPSG definition
    exactly, else ``definition`` as the file gives it."""
    code = pyproj.CRS.from_user_input(definition).to_epsg(min_confidence=100)
    return f"EPSG:{code}" if code is not None else definition


def regular_time_step(times: pd.DatetimeIndex) -> dict[str, Any]:
    """``{time_step_minutes: M}`` when ``times`` are evenly spaced, else ``{}``."""
    steps = np.unique(np.diff(times.values).astype("timedelta64[s]").astype(np.int64))
    return {"time_step_minutes": float(steps[0]) / 60.0} if steps.size == 1 and steps[0] > 0 else {}
