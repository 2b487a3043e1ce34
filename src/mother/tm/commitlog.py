"""The commit log: one table per database where commit decisions are recorded.

``mother_commit_log`` holds one row per decided global transaction id:
``outcome`` is ``commit`` (written by the deciding branch inside its own
transaction, so it exists exactly when that branch committed) or ``abort``
(a *fence* written by recovery: it makes a late decider fail on the unique
key instead of committing). One more row, keyed ``database``, holds this
database's id (its ``outcome`` column), which every branch id names so that
recovery knows where a branch's decision lives.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

from .. import sql
from ..database import Database
from ..filters import Compare
from ..session import Session

COMMIT_LOG = "mother_commit_log"
#: the log, as dbmother makes it (its statements are composed against this declaration)
LOG = sql.declared(COMMIT_LOG, [("global_id", "VARCHAR(64)"), ("outcome", "VARCHAR(64)"),
                                ("decided_at", "DOUBLE PRECISION")], ("global_id",))
#: the key of the row holding the database's id
ID_KEY = "database"
COMMIT, ABORT = "commit", "abort"

# the id of each database whose log this process has seen (a cache: saves a round trip)
_ids: weakref.WeakKeyDictionary[Database, str] = weakref.WeakKeyDictionary()


def _insert(db: Database, key: str, outcome: str, if_new: bool = False
            ) -> tuple[str, dict[str, Any]]:
    """The statement writing one row (``if_new``: unless the key has one already)."""
    return sql.insert(db.dialect, LOG, {"global_id": key, "outcome": outcome,
                                        "decided_at": time.time()}, returning=(), if_new=if_new)


def _outcome(db: Database, conn: Any, key: str) -> str | None:
    """The ``outcome`` column of the row of ``key`` (None: no such row)."""
    row = db.dialect.execute(conn, *sql.select(db.dialect, LOG, ["outcome"],
                                               {"global_id": key})).fetchone()
    return None if row is None else str(row["outcome"])


def _no_log(db: Database, conn: Any, error: Exception) -> bool:
    """After a failed read: True when the log does not exist (the transaction is rolled
    back); any other error is raised by the caller."""
    if db.dialect.is_broken(conn) or not db.dialect.is_missing_table(error):
        return False
    db.dialect.rollback(conn)
    return True


def database_id(db: Database, session: Session) -> str:
    """This database's id, making the log the first time: on a connection of its own
    (committed at once, the id remembered), or, where writers exclude each other
    (SQLite), inside ``session``'s transaction, which holds the write lock already."""
    dialect = db.dialect
    if not dialect.concurrent_writes:
        session.mark_written()
        conn = session.connection()
        _create(db, conn)
        return dialect.stable_id() or _made(db, conn)
    known = _ids.get(db)
    if known is None:
        known = _ids[db] = _made_apart(db)
    return known


def _made_apart(db: Database) -> str:
    dialect = db.dialect
    conn = dialect.connect()
    try:
        for attempt in range(2):
            dialect.begin(conn)
            try:
                known = _made(db, conn)
                dialect.commit(conn)
                return known
            except Exception:
                dialect.rollback(conn)
                if attempt or dialect.is_broken(conn):
                    raise  # two processes making the table at once: the second try sees it
    finally:
        conn.close()
    raise AssertionError("unreachable")


def _create(db: Database, conn: Any) -> None:
    """Create the log if it is missing, in the current transaction (a log made beforehand
    by its owner needs no ``CREATE`` privilege, which ``CREATE TABLE IF NOT EXISTS``
    would ask for anyway)."""
    if not db.dialect.has_table(conn, LOG.name):
        db.dialect.execute(conn, *sql.create_table(db.dialect, LOG))


def _made(db: Database, conn: Any) -> str:
    """Create the log if it is missing, in the current transaction; the database's id."""
    _create(db, conn)
    db.dialect.execute(conn, *_insert(db, ID_KEY, uuid.uuid4().hex[:8], if_new=True))
    known = _outcome(db, conn, ID_KEY)
    assert known is not None  # written just above, or already there
    return known


def recorded_id(db: Database, conn: Any) -> str | None:
    """The id of ``db`` (recovery): its stable one, or the one recorded in its log (None
    when it has no log)."""
    known = db.dialect.stable_id() or _ids.get(db)
    if known is not None:
        return known
    try:
        known = _outcome(db, conn, ID_KEY)
    except Exception as error:
        if not _no_log(db, conn, error):
            raise
        return None
    db.dialect.rollback(conn)
    if known is not None:
        _ids[db] = known
    return known


#: the columns a decision writes
_DECIDED = ("global_id", "outcome", "decided_at")


def decision(db: Database, global_id: str) -> tuple[str, dict[str, Any]]:
    """The statement recording that ``global_id`` commits (run inside the decider, once
    per two-phase transaction: its text is composed once per database)."""
    return (sql.template(db.dialect, LOG, "insert", _DECIDED),
            sql.template_params(_DECIDED, (), {"global_id": global_id, "outcome": COMMIT,
                                                "decided_at": time.time()}))


def read(db: Database, conn: Any, global_ids: Iterable[str] | None = None) -> dict[str, str]:
    """The outcomes recorded for ``global_ids`` (all when None); empty without a log."""
    dialect = db.dialect
    if global_ids is None:
        wanted = Compare("<>", ID_KEY)
    else:
        wanted = Compare("in", sorted(set(global_ids) - {ID_KEY}))
        if not wanted.value:
            return {}
    try:  # a read of committed rows, outside any transaction: it takes no write lock
        rows = dialect.execute(conn, *sql.select(dialect, LOG, ["global_id", "outcome"],
                                                 {"global_id": wanted})).fetchall()
    except Exception as error:
        if not _no_log(db, conn, error):
            raise
        return {}  # no log yet: nothing was ever decided here
    dialect.rollback(conn)
    return {row["global_id"]: row["outcome"] for row in rows}


def fence(db: Database, conn: Any, global_id: str, wait: float) -> str | None:
    """Record that ``global_id`` aborts unless it is already decided; its outcome, or None
    when its decider holds the key right now (waited ``wait`` seconds for it)."""
    dialect = db.dialect
    dialect.lock_timeout(conn, wait)
    try:
        dialect.begin(conn)  # SQLite takes its write lock here
        _create(db, conn)
        dialect.execute(conn, *_insert(db, global_id, ABORT, if_new=True))
        outcome = _outcome(db, conn, global_id)
        dialect.commit(conn)
    except Exception as error:
        if dialect.is_broken(conn):
            raise
        dialect.rollback(conn)
        if dialect.is_lock_timeout(error):
            return None
        raise
    return outcome


def clean(db: Database, conn: Any, keep: set[str], before: float) -> int:
    """Delete the decisions made before ``before`` (epoch seconds) except those of
    ``keep``; how many were deleted."""
    dialect = db.dialect
    old = {"decided_at": Compare("<", before),
           "global_id": Compare("not in", [ID_KEY, *sorted(keep)])}
    try:  # one statement, committed by itself: one round trip
        deleted: int = dialect.execute(conn, *sql.delete(dialect, LOG, old)).rowcount
    except Exception as error:
        if _no_log(db, conn, error):
            return 0
        if dialect.is_broken(conn) or not dialect.is_lock_timeout(error):
            raise
        dialect.rollback(conn)
        return 0  # busy (SQLite's write lock): the next run cleans
    return max(deleted, 0)
