"""One fingerprint for "the same inputs": the sha256 of a JSON description.

Stores, job runs, training runs and prior banks record the fingerprint of what they were made
from, and refuse to resume (or say what changed) when the current inputs give another one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def fingerprint(description: Any) -> str:
    """sha256 (hex) of ``description`` as JSON with sorted keys; values JSON cannot hold (a path,
    a date, a numpy scalar) are written as their ``str``."""
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()
