"""What the tests share: record classes, helpers, child processes, test applications.

Imported as ``tests.support.<module>``; a child process runs as
``python -m tests.support.<module>`` from the checkout's root (:func:`child`).
"""

from __future__ import annotations

import sys
from pathlib import Path

#: the root of the checkout (the tests read docs/ and start tools and children from it)
ROOT = Path(__file__).resolve().parents[2]


def child(module: str, *args: str) -> list[str]:
    """The command line of the child process ``tests.support.<module>``: run it with
    ``cwd=ROOT``, where ``python -m`` finds the ``tests`` package."""
    return [sys.executable, "-m", f"{__name__}.{module}", *args]
