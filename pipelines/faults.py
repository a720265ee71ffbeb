"""Fault injection for the crash tests of the batch job: SIGKILL this process at a named point.

``WEATHERUNC_CRASH_AT=POINT:N`` kills the process (SIGKILL, no clean-up) the N-th time it
reaches ``crash_point(POINT)``; unset, ``crash_point`` does nothing. Points: ``tile-half``
(half of a tile's variables written), ``marker-temporary`` (a tile's manifest entry written
but not yet renamed into place), ``tile-done``, ``before-complete`` (everything written, store
not yet marked complete).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

VARIABLE = "WEATHERUNC_CRASH_AT"


def crash_point(name: str, counter: Counter) -> None:
    """Kill this process if ``$WEATHERUNC_CRASH_AT`` names ``name`` and its count is reached."""
    setting = os.environ.get(VARIABLE)
    if not setting:
        return
    point, _, count = setting.partition(":")
    if point != name:
        return
    counter[name] += 1
    if counter[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
