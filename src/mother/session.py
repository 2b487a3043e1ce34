"""Sessions (isolated, named, pooled units of work) and the shared connection."""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import events
from .config import as_isolation_level
from .database import Database, resolve
from .dialects.base import EndLost
from .errors import (
    CommitOutcomeUnknownError,
    ConnectionLostError,
    FlushError,
    NotUniqueError,
    PrimaryKeyError,
    ReadOnlySessionError,
    SessionClosedError,
    SessionConflictError,
    TransactionManagedError,
)
from .sql import MoFilter, naming_values
from .sql import raw as raw_query
from .unitofwork import DELETED, GONE, PENDING, PERSISTENT, TRANSIENT, UnitOfWork

if TYPE_CHECKING:
    from .dialects import PoolStatus
    from .dialects.base import BatchResult
    from .records import DbMother

log = logging.getLogger(__name__)
#: what looks like a read: all a read-only session may send (the server refuses a write
#: hidden behind it: a data-modifying WITH, a function called by a SELECT); any other
#: statement marks a session written, and one that sent only these is asked at commit
READS = re.compile(r"\s*(SELECT|WITH|SHOW|VALUES|EXPLAIN|TABLE)\b", re.IGNORECASE)
Statement = tuple[str, list[dict[str, Any]], bool]


def _rows(cursor: Any) -> list[dict[str, Any]]:
    return cursor.fetchall() if cursor.description else []


def _shown(sql: str, limit: int = 200) -> str:
    """A statement for an error message: on one line, cut only when very long."""
    text = " ".join(sql.split())
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _raw_values(params: Any) -> Mapping[str, Any]:
    """The named values of a raw query (MoFilter dict keys are columns) for error messages."""
    if isinstance(params, MoFilter):
        values = dict(params.params)
        for kind, value, _table in params.parts:
            if kind == "dict":
                values.update(value)
        return values
    return params if isinstance(params, Mapping) else {}


class Executor:
    """Runs SQL for records and raw queries; sessions and the shared connection are executors."""

    database: Database
    name: str
    #: whether writes are refused (read-only sessions)
    readonly = False

    def _check_writable(self, what: str) -> None:
        """Refuse ``what`` (a write) in a read-only session, before anything is sent."""
        if self.readonly:
            raise ReadOnlySessionError(f"session {self.name!r} is read-only: refusing {what}")

    def _check_read(self, sql: str) -> None:
        if self.readonly and not READS.match(sql):
            words = sql.split(None, 1)
            self._check_writable(f"the statement {(words[0] if words else sql).upper()!r} "
                                 "(only SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN)")

    def _run(self, sql: str, params: Any, fetch: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    def _run_many(self, sql: str, seq: Sequence[Any], returning: bool) -> list[Any]:
        raise NotImplementedError

    def _raw(self, sql: str, params: Any) -> tuple[str, Any]:
        """A raw query's text and parameters; a MoFilter adds its conditions (keys checked)."""
        if not isinstance(params, MoFilter):
            return sql, params
        return raw_query(self.database.dialect, self.database.schema, sql, params)

    def _query(self, sql: str, params: Any, fetch: Callable[[Any], Any]) -> Any:
        """Run a raw query; a driver error about a value names its parameter (or column)."""
        text, bound = self._raw(sql, params)
        with naming_values(_raw_values(params)):
            return self._run(text, bound, fetch)

    # -- Mother's raw query helpers ---------------------------------------------------------
    def oc_query(self, sql: str, params: Any = None) -> None:
        """Run a statement, no result."""
        self._query(sql, params, fetch=lambda cursor: None)

    def mr_query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Run a query, all rows as dicts."""
        return self._query(sql, params, fetch=_rows)

    def or_query(self, sql: str, params: Any = None) -> dict[str, Any]:
        """Run a query that must return exactly one row; that row as a dict."""
        return self._one_row(sql, params, "or_query")

    def ov_query(self, sql: str, params: Any = None) -> Any:
        """Run a query that must return exactly one row of one column; that value."""
        row = self._one_row(sql, params, "ov_query")
        if len(row) != 1:
            raise NotUniqueError(f"ov_query {_shown(sql)} (columns {', '.join(map(str, row))})",
                                 len(row), "column")
        return next(iter(row.values()))

    def _one_row(self, sql: str, params: Any, helper: str) -> dict[str, Any]:
        rows = self.mr_query(sql, params)
        if len(rows) != 1:
            raise NotUniqueError(f"{helper} {_shown(sql)}", len(rows))
        return rows[0]

    def mq_query(self, sql: str, seq: Sequence[Any]) -> None:
        """Run a statement once per parameter set (executemany), no result."""
        self._run_many(sql, list(seq), False)

    def mg_query(self, sql: str, seq: Sequence[Any]) -> list[dict[str, Any]]:
        """Run a statement once per parameter set; the rows of every run, concatenated."""
        return self._run_many(sql, list(seq), True)


class Session(Executor):
    """An isolated, named unit of work on one pooled connection, always inside a transaction.

    ``commit()`` commits and keeps the session; ``rollback()`` undoes;
    ``endSession()`` commits and gives the connection back. With ``pg_conn``
    the caller's connection is used: it is committed at the end, never closed.

    ``readonly`` refuses every write before anything is sent (and the
    database refuses the writes it cannot see: ``READ ONLY`` transactions on
    PostgreSQL, ``PRAGMA query_only`` on SQLite); a read-only session never
    flushes by itself. ``isolation_level`` overrides the database's setting
    for the session's transactions. ``hooks=False`` leaves the database's
    session hooks to the caller, which runs them once it has joined the session
    to a transaction itself (as ``mother.tm.current_session`` does).
    """

    def __init__(self, name: str | None = None, pg_conn: Any = None, *,
                 database: str | Database = "default", autoflush: bool | None = None,
                 readonly: bool = False, isolation_level: str | None = None,
                 hooks: bool = True) -> None:
        self.database = resolve(database)
        settings = self.database.settings
        self.name = name or f"{settings.session_name}-{random.randint(1, 2**31)}"
        self.readonly = bool(readonly)
        #: the isolation level of the session's transactions (None: the database's)
        self.isolation_level = as_isolation_level("isolation_level", isolation_level)
        wanted = settings.autoflush if autoflush is None else autoflush
        self.autoflush = wanted and not self.readonly  # nothing to flush in a read-only one
        self._conn = pg_conn
        self._owned = pg_conn is None
        self._closed = False
        self._lost: BaseException | None = None
        self._fresh = False
        #: the error of a flush that failed half-way: only a rollback may follow
        self._failed: BaseException | None = None
        self._savepoints = 0
        self._flushing = False
        #: set by mother.tm while the session is joined to a transaction
        self.manager: Any = None
        #: whether the current transaction may have written (read-only sessions skip PREPARE)
        self.wrote = False
        self.statements = 0
        self.batches = 0
        self.uow = UnitOfWork(self)
        if pg_conn is not None:
            self.database.dialect.set_session_name(pg_conn, self.name)
        events.session_opened(self.database.name, self.name)
        if hooks:
            for hook in self.database.session_hooks:
                hook(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Session {self.name!r} on {self.database.name!r} ({state})>"

    # -- connection ----------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError(f"session {self.name!r} has ended")

    def _check_lost(self) -> None:
        if self._lost is not None:
            raise ConnectionLostError(
                f"session {self.name!r} lost its connection ({self._lost}); its transaction "
                "is gone: call rollback() to go on with a new connection")

    def connection(self) -> Any:
        """The session's connection, taken from the pool on first use."""
        self._check_open()
        self._check_lost()
        if self._failed is not None:
            raise FlushError(
                f"session {self.name!r}: an earlier flush failed ({self._failed}); its "
                "transaction may hold part of it: call rollback() (or leave begin_nested()) first")
        if self._conn is None:
            self._conn = self.database.getconn()
            self._fresh = True
        return self._conn

    def _attempt(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)``; a connection found dead before anything ran on it
        (its server went away while it sat in the pool) is replaced once, nothing lost.

        Work whose closing COMMIT may have run is never sent again: its
        :class:`~mother.dialects.base.EndLost` goes to :meth:`_settle`.
        """
        conn = self.connection()
        fresh, self._fresh = self._fresh, False
        try:
            return work(conn)
        except Exception as error:
            cause = error.cause if isinstance(error, EndLost) else error
            self._guard(cause)
            unsent = not isinstance(error, EndLost) or error.ran is False
            if fresh and unsent and self._lost is cause:
                log.info("session %s: replacing a dead pooled connection", self.name)
                self._lost = None
                return self._attempt(work)
            if isinstance(error, EndLost):
                raise
            for translate in self.database.error_translators:
                translated = translate(error)
                if translated is not None:
                    raise translated from error
            raise

    def _guard(self, error: BaseException) -> None:
        """After a driver error: if the connection is gone, remember it and give it back."""
        conn = self._conn
        if conn is not None and self.database.dialect.is_broken(conn):
            self._lost = error
            self._conn = None
            if self._owned:
                with contextlib.suppress(Exception):
                    self.database.putconn(conn)
            log.warning("session %s lost its connection: %s", self.name, error)

    def _begin(self, conn: Any) -> None:
        """Open the session's transaction (with its options) where none is open."""
        self.database.dialect.begin(conn, self.name, self.isolation_level, self.readonly)

    def _run(self, sql: str, params: Any, fetch: Callable[[Any], Any]) -> Any:
        self._check_open()
        self._check_read(sql)
        if self.autoflush and not self._flushing and self.uow.has_pending():
            self.flush()
        dialect = self.database.dialect

        def work(conn: Any) -> Any:
            self._begin(conn)
            return fetch(dialect.execute(conn, sql, params))

        result = self._attempt(work)
        self.statements += 1
        self.batches += 1
        if not self.wrote and not READS.match(sql):
            self.wrote = True
        return result

    def _run_many(self, sql: str, seq: Sequence[Any], returning: bool) -> list[Any]:
        if not seq:
            return []
        self._check_open()
        self._check_read(sql)
        if self.autoflush and not self._flushing and self.uow.has_pending():
            self.flush()
        results = self._batch([(sql, list(seq), returning)])
        return results[0].rows

    def _batch(self, statements: list[Statement], commit: bool = False,
               must_change: Collection[int] = ()) -> list[BatchResult]:
        """Send several executemany statements together (one round trip where the driver
        can); see :meth:`~mother.dialects.base.Dialect.run_batch` for ``must_change``."""
        dialect = self.database.dialect

        def work(conn: Any) -> list[BatchResult]:
            self._begin(conn)
            return dialect.run_batch(conn, statements, commit, must_change)

        try:
            results = self._attempt(work)
        except EndLost as lost:
            self._settle(lost)  # raises unless the server says it committed
            results = lost.results or []
        self.statements += sum(len(seq) for _, seq, _ in statements)
        self.batches += 1
        if statements:
            self.wrote = True
        return results

    # -- unit of work --------------------------------------------------------------------
    @property
    def new(self) -> set[DbMother]:
        """Objects waiting to be inserted."""
        return set(self.uow.new.values())

    @property
    def dirty(self) -> set[DbMother]:
        """Loaded objects with changed columns."""
        return set(self.uow.dirty.values())

    @property
    def deleted(self) -> set[DbMother]:
        """Objects waiting to be deleted."""
        return set(self.uow.deleted.values())

    def __contains__(self, obj: object) -> bool:
        """Whether the session tracks ``obj``: exactly the objects ``iter(session)`` gives."""
        return getattr(obj, "_mo_session", None) is self and self.uow.tracks(obj)

    def __iter__(self) -> Iterator[DbMother]:
        return self.uow.objects()

    def flush(self) -> None:
        """Write every pending insert, update and delete now, in one batch."""
        self._flush(commit=False)

    def _flush(self, commit: bool) -> bool:
        """Flush; with ``commit`` the COMMIT rides in the same batch. True if it committed."""
        self._check_open()
        if self._flushing or not self.uow.has_pending():
            return False
        self._check_writable("to flush its changes (detach() or rollback() them)")
        self._flushing = True
        try:
            self.uow.flush(commit)
        finally:
            self._flushing = False
        return commit

    def persist(self, obj: DbMother) -> DbMother:
        """Queue ``obj`` for insertion at the next flush (or track it if it is already stored)."""
        self._check_open()
        self._check_writable(f"persist() of a {obj.table_name} record")
        self.uow.own(obj)
        self.uow.touch(obj)
        if obj._mo_state in (TRANSIENT, GONE):
            obj._mo_state = PENDING
        self.uow.sync(obj)
        return obj

    add = persist

    def delete(self, obj: DbMother) -> None:
        """Queue the deletion of ``obj`` at the next flush (a pending one is simply dropped)."""
        self._check_open()
        self._check_writable(f"delete() of a {obj.table_name} record")
        self.uow.own(obj)
        self.uow.touch(obj)
        if obj._mo_state == PENDING:
            obj._mo_state = TRANSIENT
        elif obj._mo_state in (PERSISTENT, TRANSIENT):
            obj._mo_state = DELETED
        self.uow.sync(obj)

    def get(self, cls: Any, pk: Any, lock: str | None = None) -> DbMother | None:
        """The object of the row with primary key ``pk``: no SQL if the session holds it.

        With ``lock`` (``"update"``, ``"update nowait"``, ``"update skip locked"``,
        ``"share"``…, see ``mother.sql.lock_clause``) the row is always read
        again, locked, and the object held for it takes the values read (except its
        unflushed changes).
        """
        from .records import builder_for

        builder = builder_for(cls, self.database)
        table = self.database.schema.table(builder.table_name)
        keys = table.primary_key
        if isinstance(pk, Mapping):
            missing = [name for name in keys if name not in pk]
            if missing:
                raise PrimaryKeyError(f"get({table.name}, {pk!r}): the primary key needs "
                                      f"{list(keys)}, missing {missing}")
            values = tuple(pk[name] for name in keys)
        else:
            values = tuple(pk) if isinstance(pk, (tuple, list)) else (pk,)
        if len(values) != len(keys):
            raise PrimaryKeyError(f"get({table.name}, {pk!r}): the primary key is {list(keys)}, "
                                  f"{len(keys)} value(s), got {len(values)}")
        found = self.uow.identity.get(table.name, values)
        if found is not None and lock is None:
            return found if found._mo_state == PERSISTENT else None
        rows = builder.load_rows(self, dict(zip(keys, values)), lock=lock)
        if not rows:
            return None
        if found is not None:
            dirty = found._mo_dirty or ()
            found._mo_store.update({k: v for k, v in rows[0].items() if k not in dirty})
            return found if found._mo_state == PERSISTENT else None
        return builder.from_row(self, rows[0])

    def refresh(self, obj: DbMother) -> DbMother:
        """Read ``obj``'s row again, dropping its unflushed changes."""
        self._check_open()
        if obj._mo_session is not self:
            raise SessionConflictError(f"{obj!r} does not live in session {self.name!r}")
        if obj._mo_state not in (PERSISTENT, DELETED) or obj._mo_key is None:
            raise PrimaryKeyError(f"cannot refresh {obj!r}: it is not stored in the database")
        self.uow.touch(obj)
        obj._mo_dirty = None
        self.uow.sync(obj)
        obj.load(list(obj._mo_table().columns))
        return obj

    def merge(self, obj: DbMother) -> DbMother:
        """Copy a detached (or foreign) object's state into this session's instance."""
        self._check_open()
        key = obj._mo_key or obj._mo_primary_key()
        mine = self.uow.identity.get(obj.table_name, key) if key else None
        if mine is None and key:
            mine = self.get(type(obj), key)
        if mine is None:
            mine = type(obj)(dict(obj._mo_store), session=self)
            return self.persist(mine)
        self.uow.touch(mine)
        changes = {name: value for name, value in obj._mo_store.items()
                   if name not in obj._mo_table().primary_key
                   and mine._mo_store.get(name, _MISSING) != value}
        if changes:
            mine.setFields(changes)
        return mine

    def detach(self, obj: DbMother) -> None:
        """Stop tracking ``obj``; its unflushed changes are not written."""
        if getattr(obj, "_mo_session", None) is self:
            self.uow.forget(obj)

    expunge = detach

    @contextlib.contextmanager
    def begin_nested(self) -> Iterator[Session]:
        """Run a block under a SAVEPOINT: an error rolls back its rows and its objects.

        Blocks nest. If the connection itself was lost, the savepoint is gone with the
        transaction: the error propagates and ``rollback()`` restores everything.
        """
        name = self.savepoint()
        try:
            yield self
            self.flush()
        except BaseException:
            if self._lost is None and not self._closed:
                self.rollback_savepoint(name)
            raise
        self.release_savepoint(name)

    def savepoint(self) -> str:
        """Set a SAVEPOINT (pending changes flushed first); returns its name."""
        self.flush()
        self._savepoints += 1
        name = f"mother_sp_{self._savepoints}"
        conn = self.connection()
        self._begin(conn)
        self.database.dialect.savepoint(conn, name)
        self.uow.push()
        self.wrote = True
        return name

    def release_savepoint(self, name: str) -> None:
        """Keep the work done since ``name``; it becomes part of the enclosing level."""
        self.database.dialect.release_savepoint(self.connection(), name)
        self.uow.release()

    def rollback_savepoint(self, name: str) -> None:
        """Roll the database back to ``name`` and restore the objects changed since."""
        self._check_open()
        self._failed = None  # a flush that failed after the savepoint is undone with it
        try:
            self.database.dialect.rollback_savepoint(self.connection(), name)
        except Exception as error:
            self._guard(error)
            raise
        self.uow.restore()

    # -- outcome -----------------------------------------------------------------------
    def _check_unmanaged(self, what: str) -> None:
        if self.manager is not None:
            raise TransactionManagedError(
                f"session {self.name!r} is joined to a transaction: call transaction.commit() "
                f"or transaction.abort() instead of {what}()")

    def commit(self) -> None:
        """Flush and commit; the session stays usable."""
        self._check_unmanaged("commit")
        self._commit()

    def _commit(self, statement: tuple[str, dict[str, Any]] | None = None) -> None:
        """Flush and COMMIT; ``statement`` (mother.tm's decision) rides with the COMMIT."""
        self._check_open()
        self._check_lost()  # never report a lost transaction as committed
        conn = self._conn
        if statement is not None:
            self.flush()
            sql, params = statement
            self._batch([(sql, [params], False)], commit=True)
        elif self._flush(commit=True):
            pass  # the COMMIT went out in the flush's batch
        elif conn is not None:
            try:
                self.database.dialect.commit(conn)
            except EndLost as lost:
                self._guard(lost.cause)
                self._settle(lost)
            except Exception as error:
                self._guard(error)
                raise
        self.uow.commit()
        self.wrote = False

    def _commit_if_read(self) -> bool:
        """COMMIT if the database says the transaction wrote nothing; else False (and the
        session now counts as written)."""
        self._check_open()
        self._check_lost()
        conn = self._conn
        if conn is not None:
            try:
                if not self.database.dialect.commit_if_read_only(conn):
                    self.wrote = True
                    return False
            except Exception as error:
                self._guard(error)
                raise
        self.uow.commit()
        return True

    def _settle(self, lost: EndLost) -> None:
        """The connection broke after a COMMIT was sent: return if the transaction
        committed (or wrote nothing), raise otherwise; never send it again."""
        self._lost = None  # the transaction is over either way
        if lost.ran is False:
            raise ConnectionLostError(
                f"session {self.name!r} lost its connection before its COMMIT ran: "
                f"nothing was committed ({lost.cause})") from lost.cause
        if lost.wrote is False:
            return  # nothing written: nothing to lose
        status = self.database.dialect.outcome(lost.xid) if lost.xid is not None else None
        if status == "committed":
            log.warning("session %s: the reply to COMMIT was lost; the server says "
                        "transaction %s committed", self.name, lost.xid)
            return
        if status == "aborted":
            raise ConnectionLostError(
                f"session {self.name!r} lost its connection during COMMIT; the server says "
                f"transaction {lost.xid} was rolled back ({lost.cause})") from lost.cause
        raise CommitOutcomeUnknownError(
            f"session {self.name!r} lost its connection after sending COMMIT and the server "
            f"could not tell the outcome (transaction id {lost.xid}, status {status}); "
            "nothing was sent again", self.name, lost.xid, status) from lost.cause

    def mark_written(self) -> None:
        """Declare that the current transaction wrote (the vote then never takes it for a
        read); dbmother also asks the server, so this is rarely needed."""
        self._check_open()
        self.wrote = True

    def rollback(self) -> None:
        """Roll back the transaction and restore the objects it changed."""
        self._check_unmanaged("rollback")
        self._rollback()

    def _rollback(self) -> None:
        self._check_open()
        conn, self._lost, self._failed = self._conn, None, None
        if conn is not None:
            try:
                self.database.dialect.rollback(conn)
            except Exception as error:
                self._guard(error)
        self.uow.rollback_all()
        self.wrote = False

    def endSession(self) -> None:
        """Commit and give the connection back; the session cannot be used afterwards."""
        self._check_unmanaged("endSession")
        try:
            self._commit()
        except BaseException:
            self._close(rollback=True)
            raise
        self._close()

    def close(self) -> None:
        """Roll back whatever is not committed and end the session."""
        self._check_unmanaged("close")
        self._close(rollback=True)

    def _close(self, rollback: bool = False, outcome: str | None = None) -> None:
        """End the session (``outcome``, for its events: how its transaction ended,
        when the caller knows better than ``rollback``)."""
        if self._closed:
            return
        conn, self._conn = self._conn, None
        if rollback:
            self.uow.rollback_all()
        self._closed = True
        if conn is not None:
            if rollback:
                with contextlib.suppress(Exception):
                    self.database.dialect.rollback(conn)
            if self._owned:
                self.database.putconn(conn)
        if events.listeners:
            events.session_event(self.database.name, self.name, "ended", outcome or (
                "closed" if conn is None else "rolled back" if rollback else "committed"))

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        if self._closed or self.manager is not None:
            return
        if kind is None:
            self.endSession()
        else:
            self._close(rollback=True)

    # Mother's names for the transaction of a session: it always has one.
    def beginTrans(self) -> None:
        """A session is always in a transaction: nothing to do."""
        self._check_open()


_MISSING = object()


class SharedConnection(Executor):
    """Mother's "persistent" connection, shared by every record without a session.

    Outside ``beginTrans()`` each statement commits by itself. ``beginTrans()``
    takes a lock that the thread holds until the outermost ``commit()`` or any
    ``rollback()``: another thread's statements wait, so the work of two
    threads never interleaves in one transaction.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.name = f"{database.settings.session_name}-shared"
        self._conn: Any = None
        self._lock = threading.RLock()
        self._level = 0

    @property
    def closed(self) -> bool:
        return False

    def _connection(self) -> Any:
        if self._conn is None or self.database.dialect.is_broken(self._conn):
            self._conn = self.database.dialect.connect()
            self.database.dialect.set_session_name(self._conn, self.name)
        return self._conn

    def _in(self, work: Callable[[Any], Any]) -> Any:
        dialect = self.database.dialect
        with self._lock:
            conn = self._connection()
            try:
                dialect.begin(conn)
                result = work(conn)
                if self._level == 0:
                    dialect.commit(conn)
                return result
            except Exception:
                with contextlib.suppress(Exception):
                    dialect.rollback(conn)
                # like rollback(): a failed statement ends the whole nested transaction
                for _ in range(self._level):
                    self._lock.release()
                self._level = 0
                raise

    def _run(self, sql: str, params: Any, fetch: Callable[[Any], Any]) -> Any:
        return self._in(lambda conn: fetch(self.database.dialect.execute(conn, sql, params)))

    def _run_many(self, sql: str, seq: Sequence[Any], returning: bool) -> list[Any]:
        if not seq:
            return []
        return self._in(lambda conn: self.database.dialect.run_batch(
            conn, [(sql, list(seq), returning)], False)[0].rows)

    def beginTrans(self) -> None:
        """Open (or nest into) a transaction; this thread owns the connection until it ends."""
        self._lock.acquire()
        self._level += 1

    def commit(self) -> None:
        """Commit when the outermost ``beginTrans()`` ends; inner levels only count down."""
        with self._lock:
            if self._level == 0:
                log.warning("commit() without beginTrans() on the shared connection")
                return
            if self._level == 1 and self._conn is not None:
                self.database.dialect.commit(self._conn)
            self._level -= 1
            self._lock.release()

    def rollback(self) -> None:
        """Roll back everything since the outermost ``beginTrans()``."""
        with self._lock:
            if self._level == 0:
                log.warning("rollback() without beginTrans() on the shared connection")
                return
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self.database.dialect.rollback(self._conn)
            for _ in range(self._level):
                self._lock.release()
            self._level = 0

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None


def MotherSession(name: str | None = None, pg_conn: Any = None, *,
                  database: str | Database = "default", autoflush: bool | None = None,
                  readonly: bool = False, isolation_level: str | None = None) -> Session:
    """Open a session (Mother's name): ``MotherSession()``, work, then ``endSession()``.

    ``readonly=True`` refuses writes; ``isolation_level`` is the session's own."""
    return Session(name, pg_conn, database=database, autoflush=autoflush, readonly=readonly,
                   isolation_level=isolation_level)


def MotherPoolStatus(database: str = "default") -> PoolStatus:
    """The pool's numbers: type, size, idle, in use, waiting, min, max."""
    return resolve(database).status()


def MotherPoolStratus(database: str = "default") -> str:
    """The pool's numbers as readable text."""
    status = resolve(database).status()
    rows = [("Pool Type", status.pool_type), ("Connections Established", status.size),
            ("Connections Available", status.available), ("Connections Employed", status.in_use),
            ("Requests Waiting", status.waiting), ("Minimum Connections", status.minimum),
            ("Maximum Connections", "unlimited" if status.maximum is None else status.maximum)]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"    {label.ljust(width)} ~ {value}" for label, value in rows)
