"""Resolve the in-doubt prepared transactions that crashes left behind (``mother recover``).

Safe at any time, from any number of processes, while others commit. A
branch younger than ``min_age`` seconds is left alone, decided or not: it most
likely belongs to a live process that is committing it right now, and its own
``COMMIT PREPARED`` is the one that should finish it. For each dbmother branch
(``mother:<global id>:<decider's database id>:<n>``) older than that:

1. its decision is read from the commit log of the decider's database (the
   database whose id the branch names; a branch whose decider's database was
   not given is reported FAILED and left alone);
2. ``commit`` found: COMMIT PREPARED; ``abort`` found: ROLLBACK PREPARED;
3. nothing found: if the decider itself is still prepared, recovery rolls it
   back (only one of its COMMIT PREPARED and this ROLLBACK PREPARED can
   succeed, so the committing process learns the outcome); then it *fences*
   the global id with an ``abort`` row. A decider that has not prepared yet
   then fails on that row's unique key instead of committing; a decider that
   holds the key right now makes the fence wait (``lock_timeout``), and the
   branch is left for the next run;
4. a branch that another process is finishing at that very moment (the server
   says it is "busy") is left for the next run too.

Two databases that carry one database id (a copy made after dbmother had made its
log, by ``CREATE DATABASE ... TEMPLATE`` or a restored dump) make recovery refuse,
before it decides anything, with a ``mother.RecoveryError`` that says
which one to give a new id and how: a branch naming that id may have been decided in
either, and reading the wrong log would undo a committed transaction.

Prepared transactions not made by dbmother are listed and left alone.
Decisions that no prepared branch of the given databases still needs are
deleted once older than ``log_retention`` seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..config import ini_databases, make_settings
from ..database import Database, resolve
from ..database import databases as configured
from ..errors import MotherError, RecoveryError
from . import commitlog
from .gid import make_gid, parse_gid

log = logging.getLogger("mother.tm.recovery")

COMMIT, ROLLBACK, FOREIGN, FAILED, WAITING, GONE = (
    "commit", "rollback", "foreign", "failed", "waiting", "gone")
#: how long a fence waits for a decider that holds its key (seconds)
FENCE_WAIT = 0.5


@dataclasses.dataclass
class Branch:
    """One prepared transaction found by recovery and what happened to it."""

    database: str
    gid: str
    global_id: str | None
    action: str
    error: str | None = None


@dataclasses.dataclass
class RecoveryReport:
    """What :func:`recover` found and did (or would do, with ``dry_run``)."""

    dry_run: bool
    branches: list[Branch] = dataclasses.field(default_factory=list)
    cleaned: int = 0

    def _with(self, action: str) -> list[Branch]:
        return [branch for branch in self.branches if branch.action == action]

    @property
    def committed(self) -> list[Branch]:
        return self._with(COMMIT)

    @property
    def rolled_back(self) -> list[Branch]:
        return self._with(ROLLBACK)

    @property
    def foreign(self) -> list[Branch]:
        return self._with(FOREIGN)

    @property
    def failed(self) -> list[Branch]:
        return self._with(FAILED)

    @property
    def gone(self) -> list[Branch]:
        """Branches another process (a committer, another recovery) finished first."""
        return self._with(GONE)

    @property
    def waiting(self) -> list[Branch]:
        """Branches too young, or whose decider was busy: left for a later run."""
        return self._with(WAITING)

    def describe(self) -> str:
        verb = {COMMIT: "COMMIT PREPARED", ROLLBACK: "ROLLBACK PREPARED",
                FOREIGN: "left alone (not made by dbmother)", FAILED: "FAILED",
                WAITING: "left for later (in progress)",
                GONE: "already finished by another process"}
        lines = []
        for b in self.branches:
            would = "would " if self.dry_run and b.action in (COMMIT, ROLLBACK) else ""
            error = f" ({b.error})" if b.error else ""
            lines.append(f"{would}{verb[b.action]}: {b.gid!r} in {b.database}{error}")
        if not self.branches:
            lines.append("no prepared transactions")
        lines.append(f"{self.cleaned} old commit log rows removed")
        return "\n".join(lines)


def _same(db: Database, other: Database) -> bool:
    """Whether ``db`` and ``other`` are surely one database: the same DSN, or an id made of
    where the database is (SQLite's file), never copied with it."""
    return (db is other or db.settings.dsn == other.settings.dsn
            or db.dialect.stable_id() is not None)


def _where(db: Database) -> str:
    """``db`` as a message names it: its name and where it is, from its settings (never a
    password)."""
    place = db.dialect.location()
    where = str(place.get("db.namespace", ""))
    if "server.address" in place:
        where += f" on {place['server.address']}"
        if "server.port" in place:
            where += f":{place['server.port']}"
    return f"{db.name!r} ({where})" if where else repr(db.name)


class _Run:
    """One recovery pass over a set of databases, each on a connection of its own."""

    def __init__(self, dbs: list[Database], dry_run: bool, min_age: float,
                 connections: dict[str, Any] | None) -> None:
        self.dbs = dbs
        self.dry_run = dry_run
        self.min_age = min_age
        #: the caller's open connections, reused and kept open (else this run's own)
        self.kept = connections is not None
        self.conns: dict[str, Any] = connections if connections is not None else {}
        self.ids: dict[str, Database] = {}
        #: the distinct databases that carry each id (one, unless a database was copied)
        self.holders: dict[str, list[Database]] = {}
        self.prepared: dict[str, dict[str, float]] = {}
        self.outcomes: dict[str, str] = {}
        self.report = RecoveryReport(dry_run)

    def open(self) -> None:
        """Connect to each database (apart from its pool: recovery never waits for a busy
        pool, and a database that cannot be reached fails at once), list its prepared
        transactions."""
        for db in self.dbs:
            conn = self.conns.get(db.name)
            if conn is None or db.dialect.is_broken(conn):
                conn = self.conns[db.name] = db.dialect.connect()
            self.prepared[db.name] = dict(db.dialect.prepared_transactions(conn))
            known = commitlog.recorded_id(db, conn)
            if known is not None:
                self.ids[known] = db
                holders = self.holders.setdefault(known, [])
                if not any(_same(db, other) for other in holders):
                    holders.append(db)
        for known, twins in self.holders.items():
            if len(twins) > 1:  # before anything is decided
                raise RecoveryError(self.shared(known, twins))

    def shared(self, known: str, twins: list[Database]) -> str:
        """Why recovery refuses: ``twins`` carry the one database id ``known``; and what to
        do, from where the decisions of the branches in doubt that name it are."""
        names = " and ".join(_where(db) for db in twins)
        pending = sorted({parsed[0] for gids in self.prepared.values() for gid in gids
                          if (parsed := parse_gid(gid)) is not None and parsed[1] == known})
        deciders = []  # the twins holding a decision, or the prepared decider, of one of them
        for db in twins:
            decided = commitlog.read(db, self.conns[db.name], pending) if pending else {}
            if decided or any(make_gid(global_id, known, 0) in self.prepared[db.name]
                              for global_id in pending):
                deciders.append(db)
        message = (f"databases {names} carry the same dbmother database id {known!r} (one is a "
                   "copy of the other: CREATE DATABASE ... TEMPLATE, a restored dump); the "
                   "decision of a branch that names it may be in either, so recovery decided "
                   "nothing (if they are one database reached by two DSNs, give it once). ")
        how = (f"in it, run DELETE FROM {commitlog.COMMIT_LOG} WHERE global_id = "
               f"'{commitlog.ID_KEY}' (dbmother writes a new id there the next time it decides "
               "a transaction), stop and start again the processes that use it (each keeps "
               "the id it read), then run recovery again")
        if len(deciders) > 1:
            return message + (
                f"Branches in doubt that name {known!r} were decided in several of them: "
                "resolve those by hand first, with the processes that use them stopped (COMMIT "
                "PREPARED where the row of its global id in "
                f"{commitlog.COMMIT_LOG} of either says commit, else ROLLBACK PREPARED), then "
                f"give the copy a new id: {how}.")
        if deciders:
            others = " and ".join(_where(db) for db in twins if db is not deciders[0])
            return message + (
                f"The branches in doubt that name it were decided in {_where(deciders[0])}, "
                f"which keeps the id: give {others} a new id: {how}.")
        return message + f"Give the copy a new id: {how}."

    def close(self, failed: bool) -> None:
        """Close this run's connections; the caller's only after a failure."""
        if self.kept and not failed:
            return
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()

    def outcome(self, decider: Database, global_id: str) -> str | None:
        if global_id not in self.outcomes:
            found = commitlog.read(decider, self.conns[decider.name], [global_id])
            if global_id in found:
                self.outcomes[global_id] = found[global_id]
        return self.outcomes.get(global_id)

    def resolve(self, db: Database, gid: str, age: float) -> Branch | None:
        """Resolve one prepared transaction; its report (None: reported already, as the
        decider of another branch)."""
        parsed = parse_gid(gid)
        if parsed is None:
            log.info("prepared transaction %r in %s was not made by dbmother: left alone",
                     gid, db.name)
            return Branch(db.name, gid, None, FOREIGN)
        global_id, decider_id, _ = parsed
        branch = Branch(db.name, gid, global_id, WAITING)
        if age < self.min_age:
            return branch  # most likely its own process is finishing it
        decider = self.ids.get(decider_id)
        if decider is None:
            branch.action, branch.error = FAILED, (
                f"its decision lives in the database with id {decider_id!r}, which was not "
                "given to recovery")
            return branch
        outcome = self.outcome(decider, global_id)
        if outcome is None:
            if self.dry_run:
                branch.action = ROLLBACK
                return branch
            outcome = self.decide_abort(decider, decider_id, global_id)
            if outcome is None:
                return branch  # the decider holds the key right now
        branch.action = COMMIT if outcome == commitlog.COMMIT else ROLLBACK
        if self.dry_run:
            return branch
        if gid not in self.prepared[db.name]:  # the decider, resolved just above
            return None
        return self.finish(db, branch)

    def finish(self, db: Database, branch: Branch) -> Branch:
        """COMMIT or ROLLBACK PREPARED the branch as decided (``branch.action``)."""
        conn, gid = self.conns[db.name], branch.gid
        try:
            done = db.dialect.finish_prepared(conn, gid, branch.action == COMMIT)
        except Exception as error:
            if db.dialect.is_broken(conn) or not db.dialect.is_busy(error):
                raise
            log.info("recovery: %r in %s is being finished by another process (%s): left "
                     "for later", gid, db.name, error)
            branch.action = WAITING
            return branch
        if done:
            log.warning("recovery: %s %r in %s", branch.action, gid, db.name)
        else:
            log.info("recovery: %r in %s was finished by another process", gid, db.name)
            branch.action = GONE
        self.prepared[db.name].pop(gid, None)
        return branch

    def decide_abort(self, decider: Database, decider_id: str, global_id: str) -> str | None:
        """No decision recorded: roll back a prepared decider, then fence the global id.
        The outcome now recorded, or None when the decider is busy or holds the key."""
        conn = self.conns[decider.name]
        decider_gid = make_gid(global_id, decider_id, 0)
        if decider_gid in self.prepared[decider.name]:
            # the arbiter: either this ROLLBACK PREPARED or the process's COMMIT PREPARED wins
            try:
                done = decider.dialect.finish_prepared(conn, decider_gid, False)
                self.report.branches.append(Branch(decider.name, decider_gid, global_id,
                                                   ROLLBACK if done else GONE))
                if done:
                    log.warning("recovery: rollback of undecided decider %r in %s",
                                decider_gid, decider.name)
            except Exception as error:
                if decider.dialect.is_broken(conn):
                    raise
                log.info("recovery: decider %r in %s is busy (%s)", decider_gid,
                         decider.name, error)
                return None
            self.prepared[decider.name].pop(decider_gid, None)
        outcome = commitlog.fence(decider, conn, global_id, FENCE_WAIT)
        if outcome is not None:
            self.outcomes[global_id] = outcome
        return outcome

    def clean(self, retention: float) -> None:
        keep = {parsed[0] for names in self.prepared.values() for gid in names
                if (parsed := parse_gid(gid)) is not None}
        cutoff = time.time() - retention
        for db in self.ids.values():  # the databases that have a log
            self.report.cleaned += commitlog.clean(db, self.conns[db.name], keep, cutoff)


def recover(databases: Iterable[str | Database] | None = None, *, dry_run: bool = False,
            log_retention: float = 3600.0, min_age: float = 5.0,
            connections: dict[str, Any] | None = None, clean: bool = True) -> RecoveryReport:
    """Find and resolve the in-doubt dbmother branches of ``databases`` (default: all).

    Safe to run at any time from any number of processes. Branches younger than
    ``min_age`` seconds are left alone, decided or not (they are most likely still
    being committed by their own process). ``connections`` (by database
    name) are reused and left open, and the connections made are added to it
    (automatic recovery keeps them between runs); after a failure they are closed
    and removed. ``clean=False`` leaves the commit log's old rows for a later run.
    Raises ``mother.RecoveryError``, having decided nothing, when two of
    ``databases`` carry one database id.
    """
    dbs = [resolve(db) for db in databases] if databases is not None else configured()
    run = _Run(dbs, dry_run, min_age, connections)
    failed = True
    try:
        run.open()
        for db in dbs:
            for gid, age in list(run.prepared[db.name].items()):
                if gid not in run.prepared[db.name]:
                    continue  # resolved (and reported) as the decider of another branch
                try:
                    branch = run.resolve(db, gid, age)
                except Exception as error:
                    if db.dialect.is_broken(run.conns[db.name]):
                        raise
                    branch = Branch(db.name, gid, None, FAILED, str(error))
                    log.error("recovery could not resolve %r in %s: %s", gid, db.name, error)
                if branch is not None:
                    run.report.branches.append(branch)
        if clean and not dry_run:
            run.clean(log_retention)
        failed = False
    finally:
        run.close(failed)
    return run.report


def _ini_databases(path: str) -> list[Database]:
    """Every database of an INI file (its ``[mother]`` and ``[mother:NAME]`` sections),
    read and refused exactly as :func:`mother.init_mother` reads and refuses them."""
    return [Database(name, make_settings(path, name)) for name in ini_databases(path)]


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The arguments of ``mother recover`` (added to a given parser, for the CLI's subcommand)."""
    parser = parser or argparse.ArgumentParser(
        prog="mother recover", description="Resolve in-doubt prepared transactions after a crash.")
    parser.add_argument("-c", "--config", action="append", default=[], metavar="FILE.ini",
                        dest="recover_config",
                        help="INI file: its [mother] and [mother:NAME] sections")
    parser.add_argument("--dsn", action="append", default=[], metavar="DSN", dest="recover_dsn",
                        help="a database to look at (repeat for several)")
    parser.add_argument("--dry-run", action="store_true", help="only say what would be done")
    parser.add_argument("--log-retention", type=float, default=3600.0, metavar="SECONDS",
                        help="keep commit log rows younger than this (default 3600)")
    parser.add_argument("--min-age", type=float, default=5.0, metavar="SECONDS",
                        help="leave branches younger than this to their process (default 5)")
    return parser


def _listed(value: Any) -> list[str]:
    """An option given once (the main ``mother`` parser) or repeated (ours) as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def run(args: argparse.Namespace) -> int:
    """Run ``mother recover`` with parsed arguments; 0 when everything was resolved."""
    # the main ``mother`` parser may hold one -c / --dsn given before the subcommand
    configs = _listed(getattr(args, "config", None)) + args.recover_config
    dsns = _listed(getattr(args, "dsn", None)) + args.recover_dsn
    dbs = [db for path in configs for db in _ini_databases(path)]
    dbs += [Database(f"dsn{index}", make_settings(None, f"dsn{index}", dsn=dsn))
            for index, dsn in enumerate(dsns, 1)]
    if not dbs:
        dbs = configured()
    if not dbs:
        print("mother recover: no database given (use -c FILE.ini or --dsn DSN)", file=sys.stderr)
        return 2
    try:
        report = recover(dbs, dry_run=args.dry_run, log_retention=args.log_retention,
                         min_age=args.min_age)
    finally:
        for db in dbs:
            db.close()
    print(report.describe())
    return 1 if report.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m mother.tm.recovery [-c FILE.ini | --dsn DSN ...] [--dry-run]``."""
    try:
        return run(build_parser().parse_args(argv))
    except MotherError as error:  # a bad setting or file: one line, as ``mother recover``
        print(f"mother recover: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
