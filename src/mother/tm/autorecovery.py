"""Automatic recovery: every process resolves in-doubt branches in the background.

One daemon thread per process calls :func:`~mother.tm.recovery.recover` every
``recover_interval`` seconds (±20 % jitter, so that processes started together
do not recover in step). :func:`ensure_started` starts it, idempotently, for a
database that prepares transactions; ``mother.tm.join()`` calls it.

Each run covers every configured database with ``recover_interval`` on, not
only the one that started the thread: a branch's commit decision may live in
any database of its transaction (SQLite ones too), and a decision recovery
does not see is taken for "not decided". The thread holds no database between
runs: it looks them up in the registry each time, and it ends by itself once
no database that started it is configured any more (``close_all()``,
``init_mother()`` replacing it), at interpreter exit, or on :func:`stop`.

The thread and its counters are the process's own: after ``fork()`` the child
starts with neither (``os.register_at_fork``), so a pre-fork server's workers
start their own thread on first use.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import random
import threading
import time
import weakref
from typing import Any

from ..database import Database, databases
from .recovery import RecoveryReport, recover

#: results go to the recovery logger, where ``mother recover`` reports too
log = logging.getLogger("mother.tm.recovery")

JITTER = 0.2
THREAD_NAME = "mother-autorecovery"
#: how often (seconds) a run also cleans the commit logs; the runs between make one
#: round trip per database
CLEAN_EVERY = 60.0


@dataclasses.dataclass(frozen=True)
class RecoveryStats:
    """What this process's automatic recovery has done (a snapshot, for health checks).

    ``runs`` counts every attempt; ``errors`` the runs that raised (a database
    unreachable, say); ``failed`` the branches a run found but could not resolve.
    ``last_error`` describes the latest of either; ``last_run_at`` is the
    ``time.time()`` of the latest run that completed.
    """

    running: bool = False
    runs: int = 0
    committed: int = 0
    rolled_back: int = 0
    failed: int = 0
    errors: int = 0
    last_error: str | None = None
    last_run_at: float | None = None


def _live(database: Database, configured: list[Database]) -> bool:
    return bool(database.settings.recover_interval) and any(database is db for db in configured)


class _AutoRecovery:
    """The process's recovery thread: the one piece of state this module keeps."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.counts = RecoveryStats()
        #: the databases that asked for the thread (weakly: a replaced one may go)
        self.anchors: weakref.WeakSet[Database] = weakref.WeakSet()
        # after fork() the parent's connections stay referenced, unused: closing them
        # here would end the parent's sessions on the server
        self.inherited = [*getattr(self, "inherited", ()), *getattr(self, "conns", {}).values()]
        #: the thread's connections, kept between runs: (database name, dsn) -> connection
        self.conns: dict[tuple[str, str], Any] = {}
        self.cleaned_at = float("-inf")

    def ensure_started(self, database: Database) -> bool:
        if not database.settings.recover_interval or not database.twophase:
            return False
        if self.thread is not None and database in self.anchors:
            return True  # the common case, once per transaction: no lock taken
        with self.lock:
            self.anchors.add(database)
            if self.thread is None:
                self.stopping = threading.Event()
                self.thread = threading.Thread(target=self._loop, args=(self.stopping,),
                                               name=THREAD_NAME, daemon=True)
                self.thread.start()
        return True

    def stop(self, timeout: float | None = 10.0) -> None:
        with self.lock:
            thread, self.thread = self.thread, None
            self.stopping.set()
            self.anchors = weakref.WeakSet()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def stats(self) -> RecoveryStats:
        with self.lock:
            return dataclasses.replace(self.counts, running=self.thread is not None)

    def _interval(self, stopping: threading.Event) -> float | None:
        """The shortest interval among the live databases that started the thread; None
        when it was stopped or none is left, and then (in the same lock) it is forgotten,
        so that the next :meth:`ensure_started` starts a new one."""
        with self.lock:
            configured = databases()
            intervals = [interval for db in self.anchors
                         if (interval := db.settings.recover_interval) and _live(db, configured)]
            if stopping.is_set() or not intervals:
                self._forget()
                return None
            return min(intervals)

    def _forget(self) -> None:
        if self.thread is threading.current_thread():
            self.thread = None

    def _loop(self, stopping: threading.Event) -> None:
        try:
            first = True
            while (interval := self._interval(stopping)) is not None:
                # the first run comes at a random point of the first period: spreads workers
                spread = random.random() if first else random.uniform(1 - JITTER, 1 + JITTER)
                first = False
                if stopping.wait(interval * spread):
                    return
                targets = [db for db in databases() if db.settings.recover_interval]
                if targets:
                    self._run(targets)
                del targets  # hold no database while sleeping
        finally:
            for conn in self.conns.values():
                conn.close()
            self.conns = {}
            with self.lock:
                self._forget()

    def _run(self, targets: list[Database]) -> None:
        names = ", ".join(db.name for db in targets)
        # connections kept between runs, per database name and DSN (a replaced database
        # gets a new one); they belong to this thread alone
        kept = {db.name: self.conns.pop((db.name, db.settings.dsn)) for db in targets
                if (db.name, db.settings.dsn) in self.conns}
        for conn in self.conns.values():  # databases no longer recovered
            conn.close()
        self.conns = {}
        clean = time.monotonic() - self.cleaned_at >= CLEAN_EVERY
        # the most patient grace of them all: one run covers every database
        min_age = max(db.settings.recover_min_age for db in targets)
        try:
            report = recover(targets, connections=kept, clean=clean, min_age=min_age)
            self.conns = {(db.name, db.settings.dsn): kept[db.name] for db in targets
                          if db.name in kept}
            if clean:
                self.cleaned_at = time.monotonic()
        except Exception as error:
            log.error("automatic recovery of %s failed: %s", names, error, exc_info=True)
            self._count(None, f"{type(error).__name__}: {error}")
            return
        failed = report.failed
        if failed:
            log.error("automatic recovery of %s could not resolve %d branch(es):\n%s",
                      names, len(failed), report.describe())
        elif report.committed or report.rolled_back:
            log.info("automatic recovery of %s:\n%s", names, report.describe())
        else:
            log.debug("automatic recovery of %s: nothing in doubt (%d old commit log rows "
                      "removed)", names, report.cleaned)
        self._count(report, failed[-1].error if failed else None)

    def _count(self, report: RecoveryReport | None, error: str | None) -> None:
        """Count a run: one that completed (``report``) or one that raised (None)."""
        with self.lock:
            counts = self.counts
            if report is None:
                self.counts = dataclasses.replace(
                    counts, runs=counts.runs + 1, errors=counts.errors + 1, last_error=error)
                return
            self.counts = dataclasses.replace(
                counts, runs=counts.runs + 1, last_run_at=time.time(),
                committed=counts.committed + len(report.committed),
                rolled_back=counts.rolled_back + len(report.rolled_back),
                failed=counts.failed + len(report.failed),
                last_error=error or counts.last_error)


_recovery = _AutoRecovery()
os.register_at_fork(after_in_child=_recovery._reset)
atexit.register(_recovery.stop)


def ensure_started(database: Database) -> bool:
    """Make sure this process recovers in the background, for ``database`` among others.

    Cheap and thread safe: call it as often as you like. Returns whether automatic
    recovery covers ``database`` (False when its ``recover_interval`` is off or it
    does not prepare transactions, as SQLite does not).
    """
    return _recovery.ensure_started(database)


def stop(timeout: float | None = 10.0) -> None:
    """Stop the thread (waiting up to ``timeout`` for a run in progress); it starts
    again on the next :func:`ensure_started`."""
    _recovery.stop(timeout)


def stats() -> RecoveryStats:
    """A snapshot of this process's automatic recovery counters."""
    return _recovery.stats()
