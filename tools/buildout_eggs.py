"""The buildout egg cache of ``tests/zope/test_buildout_e2e.py``, filled ahead of the test.

On a machine that never ran the test, its first buildout run fetches and installs
about 120 eggs, one ``pip install`` each: about four minutes, most of a cold
``make test``'s main run spent waiting for it. ``make test`` therefore starts
``python3 tools/buildout_eggs.py start`` first: it returns at once, and a process
in the background runs that first buildout while the venvs are installed, the
linters and the docs run and the first tests run. The test then waits for the
cache's lock and finds the eggs there. Without the warm-up (``pytest`` run by
hand) the test fills the cache itself, as before.

``warm`` runs, in a copy of the tree as a fresh clone has it, what the test's
first step runs: a venv with zc.buildout, then ``bo/bin/buildout`` into the cache
(``buildout:eggs-directory``, non-newest). ``start`` runs ``warm`` detached, its
output in ``LOG``. Both hold the cache's lock (``LOCK``) throughout; ``start``
does nothing while another holder (a warm-up, or the test) has it. A warm-up that
fails only leaves the cache colder: the test's own buildout runs then fill it, and
report what fails. This module imports only the standard library: it runs before any venv exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dbmother"
EGGS = CACHE / "buildout-eggs"
LOCK = CACHE / "buildout-eggs.lock"
LOG = CACHE / "buildout-eggs-warm.log"


def source(target: Path) -> None:
    """Copy the project's files as a fresh clone has them (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others",
                             "--exclude-standard", "-z"], check=True, capture_output=True)
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)


def buildout(tree: Path) -> list[str]:
    """The buildout command of ``tree`` (its ``bo`` venv), with the cache, non-newest."""
    return [str(tree / "bo" / "bin" / "buildout"), f"buildout:eggs-directory={EGGS}",
            "buildout:newest=false"]


def run(*args: str | Path, cwd: Path, timeout: float = 600) -> str:
    """Run a command of the buildout (without this process's ``PYTHONPATH``); its output.
    A failure raises ``AssertionError`` with the command and the end of its output."""
    result = subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def bootstrap(tree: Path) -> None:
    """Copy the project into ``tree`` and make its ``bo`` venv with zc.buildout."""
    source(tree)
    run(sys.executable, "-m", "venv", "bo", cwd=tree)
    run(tree / "bo" / "bin" / "pip", "install", "-q", "zc.buildout", cwd=tree)


def _take(lock: IO[str]) -> bool:
    """Take the cache's lock on the open ``lock`` file if nobody holds it."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def locked(timeout: float) -> Iterator[None]:
    """Hold the cache's lock (waiting up to ``timeout`` seconds for a warm-up to end)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a") as lock:
        deadline = time.monotonic() + timeout
        while not _take(lock):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{LOCK} still held after {timeout:.0f} s "
                                   f"(a buildout warm-up: see {LOG})")
            time.sleep(1)
        yield  # the lock goes with the file's closing


def warm() -> None:
    """Run the test's first buildout in a copy of the tree, filling the cache."""
    EGGS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dbmother-buildout-") as scratch:
        tree = Path(scratch)
        bootstrap(tree)
        run(*buildout(tree), cwd=tree, timeout=900)


def start() -> None:
    """Start :func:`warm` in the background, holding the lock it inherits; return at once
    (at once too when something else holds the lock)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a") as lock:
        if not _take(lock):
            print(f"buildout egg cache: {LOCK} is held, no warm-up started")
            return
        with open(LOG, "w") as log:
            # the child's copy of the descriptor holds the lock until the child exits
            subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "warm",
                              "--inherited"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             pass_fds=(lock.fileno(),), start_new_session=True,
                             env={**os.environ, "PYTHONPATH": ""})
    print(f"buildout egg cache: warming {EGGS} in the background (log: {LOG})")


def main(argv: list[str]) -> None:
    if argv[:1] == ["start"]:
        start()
    elif argv[:1] == ["warm"]:
        if "--inherited" in argv:
            warm()
        else:
            with locked(timeout=1200):
                warm()
    else:
        sys.exit("usage: python3 tools/buildout_eggs.py start | warm")


if __name__ == "__main__":
    main(sys.argv[1:])
