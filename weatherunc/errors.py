"""The one exception type raised for bad input data or catalog entries."""

from __future__ import annotations

from pathlib import Path


class InputDataError(ValueError):
    """Incoming data or a catalog entry failed a named check.

    The message always names the file (or catalog entry), the variable and the check, so
    that a user can find and fix the offending input without reading a traceback.
    """

    def __init__(self, *, source: str | Path, variable: str, check: str, detail: str) -> None:
        self.source = str(source)
        self.variable = variable
        self.check = check
        self.detail = detail
        super().__init__(f"{self.source}: variable {variable!r} failed check {check!r}: {detail}")
