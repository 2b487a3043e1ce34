"""Child process of the automatic recovery tests: a process that only has automatic recovery on.

Usage: python -m tests.support.tm_autorecovery_child MODE INTERVAL DSN [DSN2] [GOFILE], MODE being

* ``serve``: configure the databases with ``recover_interval=INTERVAL``, print
  "ready", wait for GOFILE to exist, start automatic recovery, and run until no
  dbmother branch is prepared in any of them (at most 60 s); print the stats;
* ``fork``: start it, wait for a run, fork; the child prints its stats right
  after the fork and again after it started its own thread and it ran;
* ``exit``: start it, wait for a run, and return while the thread runs (the
  interpreter must exit promptly and cleanly).

Stats are printed as one JSON line each.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import psycopg

import mother
from mother.tm import autorecovery

NAMES = ("default", "second")


def say(**values: object) -> None:
    print(json.dumps(values), flush=True)


def stats() -> dict[str, object]:
    return dataclasses.asdict(autorecovery.stats())


def wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def in_doubt(dsns: list[str]) -> int:
    total = 0
    for dsn in dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            total += conn.execute("SELECT COUNT(*) FROM pg_prepared_xacts WHERE database = "
                                  "current_database() AND gid LIKE 'mother:%'").fetchone()[0]
    return total


def main(mode: str, interval: str, dsns: list[str], go: Path | None) -> None:
    databases = [mother.init_mother(dsn=dsn, name=name, pool_min=1, recover_interval=interval)
                 for name, dsn in zip(NAMES, dsns)]
    if mode == "serve":
        say(ready=True)
        wait_for(go.exists)  # type: ignore[union-attr]
        for database in databases:
            autorecovery.ensure_started(database)
        wait_for(lambda: autorecovery.stats().runs and not in_doubt(dsns))
        say(**stats())
        return
    autorecovery.ensure_started(databases[0])
    wait_for(lambda: autorecovery.stats().runs)
    if mode == "exit":
        say(**stats())
        return
    child = os.fork()
    if child == 0:
        try:
            say(child_after_fork=stats())
            autorecovery.ensure_started(databases[0])
            wait_for(lambda: autorecovery.stats().runs)
            say(child_later=stats())
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    say(parent=stats())


if __name__ == "__main__":
    mode_, interval_, *rest = sys.argv[1:]
    go_ = Path(rest.pop()) if mode_ == "serve" else None
    main(mode_, interval_, rest, go_)
