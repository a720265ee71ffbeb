"""``python -m weatherunc.cli``: the same as the ``weatherunc`` command."""

from weatherunc.cli import app

app(prog_name="weatherunc")
