"""What the ``mother`` command line shares with the programs it starts.

:class:`CommandError` (a command cannot go on; ``mother`` prints it as one
line) and :func:`check_connection` (connect once, directly, before any pool
waits). ``mother demo`` (``mother.pyramid.demo.serve``) uses them too,
which is why they live here and not in :mod:`mother.cli`: the command line
imports the demo, and the demo does not import the command line.
"""

from __future__ import annotations

from typing import Any


class CommandError(Exception):
    """A command cannot go on: the message says why and what to change."""


def check_connection(database: Any, source: str) -> None:
    """Connect once, directly: any failure is one :class:`CommandError` that names the
    database and where its DSN came from (``source``), before a pool retries and waits."""
    try:
        database.dialect.connect().close()
    except Exception as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise CommandError(f"cannot connect to database {database.name!r}: {reason} "
                           f"(the DSN comes from {source})") from error


__all__ = ["CommandError", "check_connection"]
