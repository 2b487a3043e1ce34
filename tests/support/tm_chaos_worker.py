"""Child process of the chaos run (tests/support/tm_chaos.py): commits two-database transactions.

Usage::

    python -m tests.support.tm_chaos_worker worker DSN1 DSN2 JOURNAL STOPFILE \
        [--widen S] [--recover-interval S] [--recover-min-age S] [--die-in PHASE] [--drain]
    python -m tests.support.tm_chaos_worker recoverer DSN1 DSN2 STOPFILE [--every S] [--min-age S]

A worker runs transactions until STOPFILE exists. Each inserts its own id into
``chaos_rows`` of both databases and commits through ``transaction.commit()``,
with a foreign data manager sorted between the two dbmother branches: it sleeps
up to ``--widen`` seconds in ``tpc_vote`` (both branches prepared, nothing
committed) and in ``tpc_finish`` (the first branch committed, the second still
prepared). Around each transaction the worker appends to JOURNAL, with fsync,
one JSON line per event: ``begun`` before any work, then ``committed`` once
``commit()`` returned, or ``failed`` once it raised (``unknown`` for
:class:`~mother.errors.CommitOutcomeUnknownError`), with the exception's type.
Automatic recovery runs in the worker when ``--recover-interval`` is given
(``--recover-min-age``: its grace). With ``--die-in vote`` (or ``finish``) the
worker's third transaction ends the process (``os._exit(DIED)``) in the foreign
resource's vote (both branches prepared, nothing decided) or its finish (decided,
the second branch still prepared). With ``--drain`` a worker told to stop goes on
recovering until no dbmother branch is left prepared in either database (at most
60 s), then writes its automatic recovery counters, as JSON, to ``JOURNAL.stats``.

The recoverer calls ``mother.tm.recover()`` on both databases every ``--every``
seconds (with ``min_age=--min-age`` where ``recover()`` takes it) until
STOPFILE exists, then prints its counts as one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import os
import random
import sys
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
import transaction
from transaction.interfaces import IDataManager
from zope.interface import implementer

import mother
from mother import errors
from mother.tm import autorecovery, join, recover
from mother.tm.datamanager import joined_resources
from mother.tm.gid import GID_PREFIX

DATABASES = ("default", "second")
INSERT = "INSERT INTO chaos_rows (txid) VALUES (%(txid)s)"
#: the exit status of a worker that ended itself mid-commit (``--die-in``)
DIED = 17
#: which of its transactions a ``--die-in`` worker dies in
DIE_AFTER = 3


@implementer(IDataManager)
class Widener:
    """A foreign resource that sleeps in its vote and its finish (see the module docstring)."""

    def __init__(self, key: str, widen: float, die_in: str | None = None) -> None:
        self.key = key
        self.widen = widen
        self.die_in = die_in
        self.transaction_manager = transaction.manager

    def sortKey(self) -> str:
        return self.key

    def _pause(self, phase: str) -> None:
        if phase == self.die_in:
            os._exit(DIED)
        time.sleep(random.uniform(0, self.widen))

    def tpc_vote(self, txn: Any) -> None:
        self._pause("vote")

    def tpc_finish(self, txn: Any) -> None:
        self._pause("finish")

    def abort(self, txn: Any) -> None:
        pass

    tpc_begin = commit = tpc_abort = abort


def record(fd: int, txid: str, event: str, error: str | None = None) -> None:
    """Append one event to the journal and make it durable before going on."""
    line = {"tx": txid, "ev": event, **({"error": error} if error else {})}
    os.write(fd, (json.dumps(line) + "\n").encode())
    os.fsync(fd)


def one_transaction(txid: str, widen: float, die_in: str | None = None) -> None:
    txn = transaction.begin()
    for name in DATABASES:
        session = mother.MotherSession(database=name)
        join(session)
        session.oc_query(INSERT, {"txid": txid})
    # just above the first dbmother branch: between the two branches in every phase
    first = min(resource.sortKey() for resource in joined_resources(txn) or [])
    txn.join(Widener(first + "\0", widen, die_in))
    transaction.commit()


def worker(args: argparse.Namespace) -> None:
    for name, dsn in zip(DATABASES, (args.dsn1, args.dsn2)):
        database = mother.init_mother(dsn=dsn, name=name, pool_min=1, pool_max=2,
                                      pool_timeout=10, recover_interval=args.recover_interval,
                                      recover_min_age=args.recover_min_age)
        autorecovery.ensure_started(database)  # what join() does; harmless when it does
    unknown = getattr(errors, "CommitOutcomeUnknownError", ())
    fd = os.open(args.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    number = 0
    while not os.path.exists(args.stop):
        txid = uuid.uuid4().hex
        number += 1
        record(fd, txid, "begun")
        try:
            one_transaction(txid, args.widen, args.die_in if number == DIE_AFTER else None)
        except Exception as error:
            transaction.abort()
            record(fd, txid, "unknown" if isinstance(error, unknown) else "failed",
                   type(error).__name__)
        else:
            record(fd, txid, "committed")
    if args.drain:
        drain((args.dsn1, args.dsn2), f"{args.journal}.stats")


def _prepared_left(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_prepared_xacts WHERE database = "
                            "current_database() AND gid LIKE %s",
                            (GID_PREFIX + ":%",)).fetchone() is not None


def drain(dsns: tuple[str, str], stats: str, timeout: float = 60.0) -> None:
    """Let automatic recovery run until no dbmother branch is prepared in ``dsns``;
    then write its counters to ``stats``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_prepared_left(dsn) for dsn in dsns):
        time.sleep(0.05)
    with open(stats, "w") as out:
        json.dump(dataclasses.asdict(autorecovery.stats()), out)


def recoverer(args: argparse.Namespace) -> None:
    databases = [mother.init_mother(dsn=dsn, name=name, pool_min=1, recover_interval=None)
                 for name, dsn in zip(DATABASES, (args.dsn1, args.dsn2))]
    options = {"min_age": args.min_age} if args.min_age is not None and \
        "min_age" in inspect.signature(recover).parameters else {}
    counts: Counter[str] = Counter()
    last_error = None
    while not os.path.exists(args.stop):
        try:
            report = recover(databases, **options)
        except Exception as error:
            counts["errors"] += 1
            last_error = f"{type(error).__name__}: {error}"
        else:
            counts["runs"] += 1
            for action in ("committed", "rolled_back", "failed"):
                counts[action] += len(getattr(report, action))
        time.sleep(args.every)
    print(json.dumps({**counts, "last_error": last_error}))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    roles = parser.add_subparsers(dest="role", required=True)
    work = roles.add_parser("worker")
    work.add_argument("dsn1")
    work.add_argument("dsn2")
    work.add_argument("journal")
    work.add_argument("stop")
    work.add_argument("--widen", type=float, default=0.03)
    work.add_argument("--recover-interval", type=float, default=None)
    work.add_argument("--recover-min-age", type=float, default=5.0)
    work.add_argument("--die-in", choices=("vote", "finish"), default=None)
    work.add_argument("--drain", action="store_true")
    rec = roles.add_parser("recoverer")
    rec.add_argument("dsn1")
    rec.add_argument("dsn2")
    rec.add_argument("stop")
    rec.add_argument("--every", type=float, default=0.05)
    rec.add_argument("--min-age", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    if args.role == "worker":
        worker(args)
    else:
        recoverer(args)


if __name__ == "__main__":
    main(sys.argv[1:])
