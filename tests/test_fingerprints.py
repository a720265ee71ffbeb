"""One fingerprint helper: stable under key order, sensitive to values, unchanged for JSON data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from weatherunc.fingerprints import fingerprint


def test_fingerprint_ignores_key_order_and_sees_every_value() -> None:
    description = {"model": {"kind": "gp", "offsets": [0.3, 1.0]}, "frames": 92}
    assert fingerprint(description) == fingerprint(
        {"frames": 92, "model": {"offsets": [0.3, 1.0], "kind": "gp"}}
    )
    assert fingerprint(description) != fingerprint({**description, "frames": 93})
    # runs and stores recorded before this helper keep their fingerprint
    assert (
        fingerprint(description)
        == hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
    )


def test_fingerprint_writes_what_json_cannot_hold_as_text() -> None:
    assert fingerprint({"path": Path("a/b.nc")}) == fingerprint({"path": "a/b.nc"})
    assert fingerprint({"step": np.int64(3)}) == fingerprint({"step": "3"})
