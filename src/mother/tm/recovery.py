"""Resolve the in-doubt prepared transactions a crash left behind (``mother recover``).

Rule: a dbmother branch is committed if and only if its global id is in the
commit log (``mother_commit_log``) of any of the given databases; otherwise it
is rolled back. Prepared transactions that dbmother did not make are listed
and left alone. Log rows that no prepared branch needs any more are deleted
once they are older than ``log_retention`` seconds.

Run it while no dbmother process is committing against these databases (after
the crash, before the restart), or the presumed-abort rule may roll back a
branch whose decision is about to be recorded.
"""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..config import make_settings
from ..database import Database, resolve
from ..database import databases as configured
from .datamanager import COMMIT_LOG, parse_gid

log = logging.getLogger(__name__)

COMMIT, ROLLBACK, FOREIGN, FAILED = "commit", "rollback", "foreign", "failed"


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

    def describe(self) -> str:
        verb = {COMMIT: "COMMIT PREPARED", ROLLBACK: "ROLLBACK PREPARED",
                FOREIGN: "left alone (not made by dbmother)", FAILED: "FAILED"}
        lines = []
        for b in self.branches:
            would = "would " if self.dry_run and b.action in (COMMIT, ROLLBACK) else ""
            error = f" ({b.error})" if b.error else ""
            lines.append(f"{would}{verb[b.action]}: {b.gid!r} in {b.database}{error}")
        if not self.branches:
            lines.append("no prepared transactions")
        lines.append(f"{self.cleaned} old commit log rows removed")
        return "\n".join(lines)


def _read_log(db: Database, conn: Any) -> dict[str, float]:
    """The commit log of ``db`` (global id -> time), empty when it has none."""
    dialect = db.dialect
    try:
        dialect.begin(conn)
        rows = dialect.execute(
            conn, f"SELECT global_id, decided_at FROM {dialect.quote(COMMIT_LOG)}").fetchall()
    except Exception as error:
        if db.dialect.is_broken(conn):
            raise
        log.debug("no commit log in %s: %s", db.name, error)
        rows = []
    dialect.rollback(conn)
    return {row["global_id"]: row["decided_at"] or 0.0 for row in rows}


def recover(databases: Iterable[str | Database] | None = None, *, dry_run: bool = False,
            log_retention: float = 3600.0) -> RecoveryReport:
    """Find and resolve the in-doubt dbmother branches of ``databases`` (default: all)."""
    dbs = [resolve(db) for db in databases] if databases is not None else configured()
    report = RecoveryReport(dry_run)
    conns = {db.name: db.dialect.connect() for db in dbs}
    try:
        found = [(db, gid) for db in dbs
                 for gid in db.dialect.prepared_transactions(conns[db.name])]
        logs = {db.name: _read_log(db, conns[db.name]) for db in dbs}
        decided = set().union(*logs.values()) if logs else set()
        pending: set[str] = set()
        for db, gid in found:
            global_id = parse_gid(gid)
            if global_id is None:
                report.branches.append(Branch(db.name, gid, None, FOREIGN))
                log.info("prepared transaction %r in %s was not made by dbmother: left alone",
                         gid, db.name)
                continue
            branch = Branch(db.name, gid, global_id, COMMIT if global_id in decided else ROLLBACK)
            report.branches.append(branch)
            if dry_run:
                pending.add(global_id)
                continue
            try:
                db.dialect.finish_prepared(conns[db.name], gid, branch.action == COMMIT)
                log.warning("recovery: %s %r in %s", branch.action, gid, db.name)
            except Exception as error:
                branch.error, branch.action = f"{branch.action}: {error}", FAILED
                pending.add(global_id)
                log.error("recovery could not resolve %r in %s: %s", gid, db.name, error)
        if not dry_run:
            cutoff = time.time() - log_retention
            for db in dbs:
                stale = [{"gid": gid} for gid, at in logs[db.name].items()
                         if gid not in pending and at < cutoff]
                if stale:
                    _delete_log_rows(db, conns[db.name], stale)
                    report.cleaned += len(stale)
    finally:
        for conn in conns.values():
            conn.close()
    return report


def _delete_log_rows(db: Database, conn: Any, rows: list[dict[str, str]]) -> None:
    dialect = db.dialect
    dialect.begin(conn)
    dialect.executemany(conn, f"DELETE FROM {dialect.quote(COMMIT_LOG)} WHERE global_id = "
                        f"{dialect.placeholder('gid')}", rows)
    dialect.commit(conn)


def _ini_databases(path: str) -> list[Database]:
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(path):
        raise SystemExit(f"mother recover: cannot read {path}")
    names = ["default" if section == "mother" else section.split(":", 1)[1]
             for section in parser.sections()
             if section == "mother" or section.startswith("mother:")]
    return [Database(name, make_settings(path, name)) for name in names]


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
        report = recover(dbs, dry_run=args.dry_run, log_retention=args.log_retention)
    finally:
        for db in dbs:
            db.close()
    print(report.describe())
    return 1 if report.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m mother.tm.recovery [-c FILE.ini | --dsn DSN ...] [--dry-run]``."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
