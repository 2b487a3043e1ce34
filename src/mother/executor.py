"""Running SQL, the layer below sessions: raw queries, statements on a connection that
is always inside a transaction (losing and replacing it), and the shared connection.

Nothing here knows records or the unit of work: :class:`~mother.session.Session`
adds them on top of :class:`Transactional`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

from . import events
from .database import Database, inherited
from .dialects.base import BatchResult, EndLost, T
from .errors import (
    ArgumentError,
    CommitOutcomeUnknownError,
    ConfigError,
    ConnectionLostError,
    FlushError,
    NotUniqueError,
    ReadOnlySessionError,
    RolledBackError,
    SessionClosedError,
)
from .filters import MoFilter
from .replicas import Replica, WalPosition
from .sql import naming_values
from .sql import raw as raw_query
from .sqltext import shown

log = logging.getLogger(__name__)
#: what looks like a read: all a read-only session may send (the server refuses a write
#: hidden behind it: a data-modifying WITH, a function called by a SELECT); any other
#: statement marks a session written, and one that sent only these is asked at commit
READS = re.compile(r"\s*(SELECT|WITH|SHOW|VALUES|EXPLAIN|TABLE)\b", re.IGNORECASE)
#: one statement of a batch: ``(sql, parameter sets, whether it returns rows)``
Statement = tuple[str, list[dict[str, Any]], bool]
#: rows per chunk of a stream when nobody says (``stream_query``, ``stream=True``)
STREAM_SIZE = 1000


def stream_size(size: Any) -> int:
    """A stream's chunk size checked: a positive int (True: :data:`STREAM_SIZE`)."""
    if size is True:
        return STREAM_SIZE
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ArgumentError(f"stream size {size!r}: expected a positive number of rows "
                            "per chunk (or True)")
    return size


class RowStream:
    """The rows of a query, read from the database ``size`` at a time while you iterate,
    inside the session's transaction (see :meth:`Executor.stream_query`).

    Iterate it once. At its end (or when a loop left early lets the iterator go) the
    cursor is closed; ``close()``, or ``with``, closes it at once.
    """

    def __init__(self, executor: Transactional, handle: Any, size: int) -> None:
        self.executor = executor
        self.size = size
        self._handle: Any = handle
        self._used = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._used:
            raise ArgumentError("a stream can be iterated only once: run the query again")
        self._used = True
        return self._rows()

    def _rows(self) -> Iterator[dict[str, Any]]:
        try:
            while self._handle is not None:
                chunk = self.executor.fetch_stream(self._handle, self.size)
                yield from chunk
                if len(chunk) < self.size:
                    break
        finally:
            self.close()

    def close(self) -> None:
        """Close the cursor (nothing when it is closed already or its transaction ended)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            self.executor.close_stream(handle)

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rows(cursor: Any) -> list[dict[str, Any]]:
    return cursor.fetchall() if cursor.description else []


def _raw_values(params: Any) -> Mapping[str, Any]:
    """The named values of a raw query (MoFilter dict keys are columns) for error messages."""
    if isinstance(params, MoFilter):
        values = dict(params.params)
        for kind, value, _table in params.parts:
            if kind == "dict":
                values.update(value)
        return values
    return params if isinstance(params, Mapping) else {}


def _generated(database: Database, carried: str | None) -> str | None:
    """``carried`` (a connection's name for the server) if an unnamed session of
    ``database`` made it, ``<session_name>-<int>``; else None. Not behind a pooler:
    there the name is set in every transaction anyway."""
    if carried is None or database.settings.pooler is not None:
        return None
    prefix, _, number = carried.rpartition("-")
    return carried if prefix == database.settings.session_name and number.isdigit() else None


class Executor:
    """Runs SQL for records and raw queries; sessions and the shared connection are executors.

    :meth:`run` and :meth:`run_many` are what the layers above (records, record
    sets) call; Mother's raw query helpers are built on them.
    """

    database: Database
    name: str
    #: whether writes are refused (read-only sessions)
    readonly = False

    def check_writable(self, what: str) -> None:
        """Refuse ``what`` (a write) in a read-only session, before anything is sent."""
        if self.readonly:
            raise ReadOnlySessionError(f"session {self.name!r} is read-only: refusing {what}; "
                                       "write in a session opened without readonly=True")

    def check_read(self, sql: str) -> None:
        """In a read-only session, refuse a statement that does not look like a read."""
        if self.readonly and not READS.match(sql):
            words = sql.split(None, 1)
            self.check_writable(f"the statement {(words[0] if words else sql).upper()!r} "
                                "(only SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN)")

    def run(self, sql: str, params: Any, fetch: Callable[[Any], Any]) -> Any:
        """Run one statement; ``fetch(cursor)`` gives the result."""
        raise NotImplementedError

    def run_while(self, sql: str, params: Any, fetch: Callable[[Any], Any],
                  meanwhile: Callable[[], T]) -> tuple[Any, T]:
        """:meth:`run`, with ``meanwhile()`` (work that sends nothing) run while the server
        works on the statement (the dialect's ``execute_while``): what
        ``fetch`` gave and what ``meanwhile`` gave."""
        raise NotImplementedError

    def run_many(self, sql: str, seq: Sequence[Any], returning: bool) -> list[Any]:
        """Run one statement per parameter set; with ``returning``, the rows of every run."""
        raise NotImplementedError

    def run_copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Load ``rows`` (value tuples) with a ``COPY … FROM STDIN`` (the dialect's
        ``copy``), as one statement; the rows loaded. ``rows`` must give every row each
        time it is iterated (a list; not an iterator): a connection found dead is
        replaced and the rows sent again."""
        raise NotImplementedError

    def run_stream(self, sql: str, params: Any, size: int) -> RowStream:
        """Start a query whose rows are read ``size`` at a time
        (:class:`~mother.executor.RowStream`)."""
        raise ArgumentError(f"{self.name}: streaming a query needs a session (its "
                            "transaction holds the cursor): pass session=MotherSession()")

    def connection(self) -> Any:
        """The connection statements run on."""
        raise NotImplementedError

    def text(self, sql: Any) -> str:
        """A raw query's SQL text: a str as it is, a composed query (:mod:`psycopg.sql`)
        rendered by the dialect with this executor's connection."""
        if isinstance(sql, str):
            return sql
        return self.database.dialect.render(sql, self.connection)

    def _query(self, sql: Any, params: Any, fetch: Callable[[Any], Any]) -> Any:
        """Run a raw query (a MoFilter adds its conditions, keys checked); a driver error
        about a value names its parameter (or column)."""
        sql = self.text(sql)
        text, bound = sql, params
        if isinstance(params, MoFilter):
            text, bound = raw_query(self.database.dialect, self.database.schema, sql, params)
        with naming_values(_raw_values(params), self.database.dialect):
            return self.run(text, bound, fetch)

    # -- Mother's raw query helpers ---------------------------------------------------------
    def oc_query(self, sql: Any, params: Any = None) -> None:
        """Run a statement, no result."""
        self._query(sql, params, fetch=lambda cursor: None)

    def mr_query(self, sql: Any, params: Any = None) -> list[dict[str, Any]]:
        """Run a query, all rows as dicts."""
        rows: list[dict[str, Any]] = self._query(sql, params, fetch=_rows)
        return rows

    def stream_query(self, sql: Any, params: Any = None, size: int = STREAM_SIZE) -> RowStream:
        """Run a query whose rows (dicts) are read ``size`` at a time as you iterate, in
        constant memory, inside the session's transaction (pending changes are flushed
        first, so it sees them): a server-side cursor on PostgreSQL, the driver's cursor
        on SQLite. Only in a session (not on the shared connection)."""
        size = stream_size(size)
        text, bound = self.text(sql), params
        if isinstance(params, MoFilter):
            text, bound = raw_query(self.database.dialect, self.database.schema, text, params)
        with naming_values(_raw_values(params), self.database.dialect):
            return self.run_stream(text, bound, size)

    def or_query(self, sql: Any, params: Any = None) -> dict[str, Any]:
        """Run a query that must return exactly one row; that row as a dict."""
        return self._one_row(sql, params, "or_query")

    def ov_query(self, sql: Any, params: Any = None) -> Any:
        """Run a query that must return exactly one row of one column; that value."""
        sql = self.text(sql)
        row = self._one_row(sql, params, "ov_query")
        if len(row) != 1:
            raise NotUniqueError(f"ov_query {shown(sql)} (columns {', '.join(map(str, row))})",
                                 len(row), "column")
        return next(iter(row.values()))

    def _one_row(self, sql: Any, params: Any, helper: str) -> dict[str, Any]:
        sql = self.text(sql)
        rows = self.mr_query(sql, params)
        if len(rows) != 1:
            raise NotUniqueError(f"{helper} {shown(sql)}", len(rows))
        return rows[0]

    def mq_query(self, sql: Any, seq: Sequence[Any]) -> None:
        """Run a statement once per parameter set (executemany), no result."""
        self.run_many(self.text(sql), list(seq), False)

    def mg_query(self, sql: Any, seq: Sequence[Any]) -> list[dict[str, Any]]:
        """Run a statement once per parameter set; the rows of every run, concatenated."""
        return self.run_many(self.text(sql), list(seq), True)


class Transactional(Executor):
    """Statements on one connection that is always inside a transaction.

    The connection comes from the pool on first use (or is the caller's
    ``pg_conn``: committed, never closed, at the end). A connection found dead
    before anything ran on it is replaced once; a connection lost later is
    remembered, and only a rollback may follow. A COMMIT whose reply was lost is
    never sent again: the server is asked what became of it.
    """

    def __init__(self, database: Database, name: str | None, pg_conn: Any = None, *,
                 readonly: bool = False, isolation_level: str | None = None,
                 replica: Replica | None = None) -> None:
        self.database = database
        self._name = name
        self.readonly = bool(readonly)
        #: the replica the session runs on (None: the primary); only for read-only ones
        self.replica = replica if self.readonly and pg_conn is None else None
        #: the primary's WAL position that the last commit reached (None: not known, no
        #: ``replicas`` setting, or the transaction wrote nothing): a read-only session
        #: made with ``after=`` it sees what this one committed
        self.commit_position: WalPosition | None = None
        #: the isolation level of the transactions (None: the database's)
        self.isolation_level = isolation_level
        self._conn = pg_conn
        self._owned = pg_conn is None
        self._closed = False
        self._lost: BaseException | None = None
        self._fresh = False
        #: the error of a batch that failed half-way: only a rollback may follow
        self._failed: BaseException | None = None
        #: whether a commit is under way: its round trips (its flush rides with its
        #: COMMIT) raise their errors untranslated, for its caller to translate once
        self._committing = False
        #: whether the current transaction may have written (read-only sessions skip PREPARE)
        self.wrote = False
        #: statements and round trips sent so far (a batch of statements is one)
        self.statements = 0
        self.batches = 0
        #: what the dialect keeps of a caller's connection, to leave it as it was
        self._kept = (database.dialect.adopt(pg_conn, self.name) if pg_conn is not None
                      else None)

    @property
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        """Refuse any use after the end."""
        if self._closed:
            raise SessionClosedError(f"session {self.name!r} has ended")

    def check_lost(self) -> None:
        """Refuse to go on in a transaction whose connection is gone."""
        if self._lost is not None:
            raise ConnectionLostError(
                f"session {self.name!r} lost its connection ({self._lost}); its transaction "
                "is gone: call rollback() to go on with a new connection")

    def connection(self) -> Any:
        """The connection, taken from the pool on first use."""
        conn = self._conn
        if conn is not None and not self._closed and self._lost is None and self._failed is None:
            return conn  # the common case: in use already, nothing to refuse
        self.check_open()
        self.check_lost()
        if self._failed is not None:
            raise FlushError(
                f"session {self.name!r}: an earlier flush failed ({self._failed}); its "
                "transaction may hold part of it: call rollback() (or leave begin_nested()) first")
        if self._conn is None:
            self._conn = self._getconn()
            self._fresh = True
            if self.replica is None:  # on the primary: a replica may lack the migration yet
                self.database.check_schema(self._conn)
        return self._conn

    def _getconn(self) -> Any:
        """A connection of the replica, else of the database's pool: a session whose replica
        gives none in time runs on the primary (and the replica is checked at once)."""
        if self.replica is not None:
            try:
                return self.replica.getconn()
            except Exception as error:
                replicas = self.database.replicas
                assert replicas is not None
                self.replica.failed(error, time.monotonic(), replicas.settings.replica_check)
                self.replica = None
        return self.database.getconn()

    def _putconn(self, conn: Any) -> None:
        if self.replica is not None:
            self.replica.putconn(conn)
        else:
            self.database.putconn(conn)

    def _committed(self, conn: Any) -> None:
        """After a commit on ``conn``: remember the position it reached, where it was asked."""
        position = self.database.committed(conn)
        if position is not None:
            self.commit_position = position

    def failed(self, error: BaseException) -> None:
        """A batch failed half-way (its transaction may hold part of it): from now on only
        a rollback may follow. A lost connection says so already."""
        if self._lost is None:
            self._failed = error

    def _attempt(self, work: Callable[[Any], Any], statement: bool = True) -> Any:
        """Run ``work(connection)``; a connection found dead before anything ran on it
        (its server went away while it sat in the pool) is replaced once, nothing lost.

        Work whose closing COMMIT may have run is never sent again: its
        :class:`~mother.dialects.base.EndLost` goes to :meth:`settle`.
        """
        conn = self.connection()
        fresh, self._fresh = self._fresh, False
        try:
            return work(conn)
        except Exception as error:
            cause = self._after(error)
            unsent = not isinstance(error, EndLost) or error.ran is False
            if fresh and unsent and self._lost is cause:
                log.info("session %s: replacing a dead pooled connection", self.name)
                self._lost = None
                return self._attempt(work, statement)
            self._raise(error, statement)

    def _after(self, error: Exception) -> BaseException:
        """After a round trip failed: is the connection gone, has the schema changed? The
        driver's error (an EndLost's cause)."""
        cause = error.cause if isinstance(error, EndLost) else error
        self.guard(cause)
        self.database.schema_suspect(cause)
        return cause

    def _raise(self, error: Exception, statement: bool = True) -> NoReturn:
        """Raise a failed round trip's error, as the database's translators say at
        ``"statement"`` (an :class:`~mother.dialects.base.EndLost` as it is, for
        :meth:`settle`); not ``statement``, or during a commit: as it is, for the
        caller's phase to translate (a ``PREPARE``'s round trip in the data manager's
        vote, a flush riding with a COMMIT)."""
        if statement and not self._committing and not isinstance(error, EndLost):
            translated = self.database.translate(error, "statement")
            if translated is not None:
                raise translated from error
        raise error

    def guard(self, error: BaseException) -> None:
        """After a driver error: if the connection is gone, remember it and give it back."""
        conn = self._conn
        if conn is not None and self.database.dialect.is_broken(conn):
            self._lost = error
            self._conn = None
            if self._owned:
                with contextlib.suppress(Exception):
                    self._putconn(conn)
            log.warning("session %s lost its connection: %s", self.name, error)

    @property
    def name(self) -> str:
        """The session's name; without one given, ``<session_name>-<random int>``, drawn
        when first needed: by then a session that is opening its first transaction
        takes the name its connection carries from an earlier such session (so the
        server is not sent a new ``application_name`` in every transaction)."""
        name = self._name
        if name is None:
            # getrandbits(31) + 1: randint(1, 2**31)'s numbers, without its checks
            number = random.getrandbits(31) + 1
            name = self._name = f"{self.database.settings.session_name}-{number}"
        return name

    @name.setter
    def name(self, name: str) -> None:
        self._name = name

    def _begin(self, conn: Any) -> None:
        """Open the transaction (with its options) where none is open."""
        database = self.database
        if self._name is None:
            self._name = _generated(database, database.dialect.session_name(conn))
        database.dialect.begin(conn, self.name, self.isolation_level, self.readonly)

    def _run_one(self, sql: str, work: Callable[[Any], T]) -> T:
        """``work(conn)``, in the transaction (opened first where none is), counted as one
        statement, ``sql``, in one round trip."""
        def opened(conn: Any) -> T:
            self._begin(conn)
            return work(conn)

        result: T = self._attempt(opened)
        self.statements += 1
        self.batches += 1
        if not self.wrote and not READS.match(sql):
            self.wrote = True
        return result

    def run(self, sql: str, params: Any, fetch: Callable[[Any], Any]) -> Any:
        if self._closed:
            self.check_open()
        if self.readonly:
            self.check_read(sql)
        dialect = self.database.dialect
        return self._run_one(sql, lambda conn: fetch(dialect.execute(conn, sql, params)))

    def run_while(self, sql: str, params: Any, fetch: Callable[[Any], Any],
                  meanwhile: Callable[[], T]) -> tuple[Any, T]:
        self.check_open()
        self.check_read(sql)
        dialect = self.database.dialect

        def work(conn: Any) -> tuple[Any, T]:
            cursor, done = dialect.execute_while(conn, sql, params, meanwhile)
            return fetch(cursor), done

        return self._run_one(sql, work)

    def run_many(self, sql: str, seq: Sequence[Any], returning: bool) -> list[Any]:
        if not seq:
            return []
        self.check_open()
        self.check_read(sql)
        return self.batch([(sql, list(seq), returning)])[0].rows

    def run_copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        self.check_open()
        self.check_writable(f"a COPY into a table ({shown(sql)})")
        dialect = self.database.dialect
        return self._run_one(sql, lambda conn: dialect.copy(conn, sql, rows))  # a write

    def run_stream(self, sql: str, params: Any, size: int) -> RowStream:
        self.check_open()
        self.check_read(sql)
        dialect = self.database.dialect
        handle = self._run_one(sql, lambda conn: dialect.open_stream(conn, sql, params, size))
        return RowStream(self, handle, size)

    def fetch_stream(self, handle: Any, size: int) -> list[dict[str, Any]]:
        """The next chunk of a stream this session opened (a round trip on PostgreSQL)."""
        dialect = self.database.dialect
        rows: list[dict[str, Any]] = self._attempt(
            lambda conn: dialect.fetch_stream(conn, handle, size))
        self.batches += 1
        return rows

    def close_stream(self, handle: Any) -> None:
        """Close a stream's cursor, unless the session has ended or lost its connection."""
        if self._closed or self._conn is None or self._lost or self._failed:
            return
        self._attempt(lambda conn: self.database.dialect.close_stream(conn, handle))

    def batch(self, statements: list[Statement], commit: bool = False,
              must_change: Collection[int] = (), gid: str | None = None) -> list[BatchResult]:
        """Send several executemany statements together (one round trip where the driver
        can), with ``commit`` a COMMIT after them, with ``gid`` a ``PREPARE
        TRANSACTION``; see :meth:`~mother.dialects.base.Dialect.run_batch` for
        ``must_change``. A PREPARE whose reply was lost raises its
        :class:`~mother.dialects.base.EndLost` (the caller looks for the branch)."""
        dialect = self.database.dialect

        def work(conn: Any) -> list[BatchResult]:
            self._begin(conn)
            return dialect.run_batch(conn, statements, commit, must_change, gid=gid)

        # a PREPARE's round trip is the vote's: its phase translates its errors
        return self._batched(statements, commit, gid,
                             lambda: self._attempt(work, statement=gid is None))

    def start_batch(self, statements: list[Statement], commit: bool = False,
                    must_change: Collection[int] = (), gid: str | None = None
                    ) -> Callable[[], list[BatchResult]]:
        """:meth:`batch`, sent now: what it returns waits for the results (call it, once,
        whatever happens), so that several sessions' batches can be on their servers at
        once. A connection found dead is not replaced here, as :meth:`batch` replaces a
        pooled one that died unused: use it where the transaction ran already."""
        conn = self.connection()
        self._fresh = False
        try:
            self._begin(conn)
            receive = self.database.dialect.start_batch(conn, statements, commit, must_change,
                                                        gid=gid)
        except Exception as error:
            self._after(error)
            self._raise(error, gid is None)

        def results() -> list[BatchResult]:
            try:
                return receive()
            except Exception as error:
                self._after(error)
                self._raise(error, gid is None)

        return lambda: self._batched(statements, commit, gid, results)

    def _batched(self, statements: list[Statement], commit: bool, gid: str | None,
                 results_of: Callable[[], list[BatchResult]]) -> list[BatchResult]:
        """A batch's results (from ``results_of``), its COMMIT settled and counted."""
        results: list[BatchResult]
        try:
            results = results_of()
            if commit:
                self._committed(self._conn)
        except EndLost as lost:
            if gid is not None:
                raise
            self.settle(lost)  # raises unless the server says it committed
            results = lost.results or []
        self.statements += sum(len(seq) for _, seq, _ in statements)
        self.batches += 1
        if statements:
            self.wrote = True
        return results

    @property
    def connected(self) -> bool:
        """Whether the transaction already ran on the session's connection."""
        return self._conn is not None and not self._fresh

    # -- savepoints -------------------------------------------------------------------------
    def send_savepoint(self, name: str) -> None:
        """SAVEPOINT ``name`` (the transaction now counts as written: work may follow)."""
        conn = self.connection()
        self._begin(conn)
        self.database.dialect.savepoint(conn, name)
        self.wrote = True

    def send_release(self, name: str) -> None:
        """RELEASE SAVEPOINT ``name``."""
        self.database.dialect.release_savepoint(self.connection(), name)

    def send_rollback_to(self, name: str) -> None:
        """ROLLBACK TO SAVEPOINT ``name``; a batch that failed after it is undone with it."""
        self.check_open()
        self._failed = None
        try:
            self.database.dialect.rollback_savepoint(self.connection(), name)
        except Exception as error:
            self.guard(error)
            raise

    # -- the ends of a transaction --------------------------------------------------------
    def send_commit(self) -> None:
        """COMMIT the open transaction, if a connection was ever used."""
        self.check_open()
        self.check_lost()  # never report a lost transaction as committed
        conn = self._conn
        if conn is not None:
            try:
                self.database.dialect.commit(conn)
                self._committed(conn)
            except EndLost as lost:
                self.guard(lost.cause)
                self.settle(lost)
            except Exception as error:
                self.guard(error)
                raise
        self.wrote = False

    def wrote_nothing(self) -> bool:
        """Whether the database says the transaction wrote nothing (if it wrote, it now
        counts as written); the transaction stays open."""
        self.check_open()
        self.check_lost()
        conn = self._conn
        if conn is not None:
            try:
                if not self.database.dialect.wrote_nothing(conn):
                    self.wrote = True
                    return False
            except Exception as error:
                self.guard(error)
                raise
        return True

    def settle(self, lost: EndLost) -> None:
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

    def send_rollback(self) -> None:
        """ROLLBACK the open transaction; a lost connection is forgotten (its transaction
        is gone with it)."""
        self.check_open()
        conn, self._lost, self._failed = self._conn, None, None
        if conn is not None:
            try:
                self.database.dialect.rollback(conn)
            except Exception as error:
                self.guard(error)
        self.wrote = False

    def finish_prepared(self, gid: str, commit: bool, anew: bool = False) -> bool:
        """COMMIT (or ROLLBACK) PREPARED ``gid`` on this connection (with ``anew``, or when
        it has none, on a new one, closed after); False if it was not prepared any more."""
        dialect = self.database.dialect
        own = anew or self._conn is None
        conn = dialect.connect() if own else self._conn
        try:
            done = dialect.finish_prepared(conn, gid, commit)
            if done and commit:
                self._committed(conn)
        finally:
            if own:
                conn.close()
        return done

    def release(self, rollback: bool = False, outcome: str | None = None) -> None:
        """End: the connection goes back to the pool (rolled back first with ``rollback``);
        ``outcome`` says how the transaction ended, for the events, when the caller knows
        better than ``rollback``."""
        if self._closed:
            return
        conn, self._conn = self._conn, None
        self._closed = True
        if conn is not None:
            if rollback:
                with contextlib.suppress(Exception):
                    self.database.dialect.rollback(conn)
            if self._owned:
                self._putconn(conn)
            else:
                self.database.dialect.give_back(conn, self._kept)
        if events.listeners:
            events.session_event(self.database.name, self.name, "ended", outcome or (
                "closed" if conn is None else "rolled back" if rollback else "committed"))


class SharedConnection(Executor):
    """Mother's "persistent" connection, shared by every record without a session.

    Outside ``beginTrans()`` each statement commits by itself. ``beginTrans()``
    takes a lock that the thread holds until the outermost ``commit()`` or any
    ``rollback()``: another thread's statements wait, so the work of two
    threads never interleaves in one transaction. A transaction that a failure
    (or an inner ``rollback()``) ended before its caller did stays owed by its
    thread: until each of its levels is ended by ``commit()`` (which raises
    :class:`~mother.RolledBackError`) or ``rollback()``, the thread's statements raise
    instead of committing by themselves, outside the transaction they were
    written for.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.name = f"{database.settings.session_name}-shared"
        self._conn: Any = None
        self._lock = threading.RLock()
        self._level = 0
        #: per thread, the levels of its rolled-back transaction it has not ended yet
        self._owed: dict[int, int] = {}
        #: per thread, why its transaction was rolled back
        self._why: dict[int, BaseException | None] = {}

    @property
    def closed(self) -> bool:
        return False

    def connection(self) -> Any:
        with self._lock:
            return self._connection()

    def _connection(self) -> Any:
        if self._conn is None or self.database.dialect.is_broken(self._conn):
            self._conn = self.database.dialect.connect()
            self.database.dialect.set_session_name(self._conn, self.name)
        return self._conn

    def _check_owed(self, what: str) -> None:
        """Refuse ``what`` in a thread whose transaction was rolled back under it."""
        thread = threading.get_ident()
        if self._owed.get(thread):
            why = self._why.get(thread)
            raise RolledBackError(
                f"{what} on the shared connection refused: this thread's transaction "
                f"(beginTrans) was rolled back ({why or 'by an inner rollback()'}); end it "
                "with rollback() (or commit(), which raises) at each level first") from why

    def _in(self, work: Callable[[Any], Any]) -> Any:
        dialect = self.database.dialect
        with self._lock:
            self._check_owed("a statement")
            conn = self._connection()
            if self._level == 0:
                self.database.check_schema(conn)
            try:
                dialect.begin(conn)
                result = work(conn)
                if self._level == 0:
                    dialect.commit(conn)
                    self.database.committed(conn)
                return result
            except Exception as error:
                self.database.schema_suspect(error)
                # a failed statement ends the whole nested transaction; its levels stay
                # owed by the thread
                self._abandon(owed=self._level, why=error)
                raise

    def run(self, sql: str, params: Any, fetch: Callable[[Any], Any]) -> Any:
        return self._in(lambda conn: fetch(self.database.dialect.execute(conn, sql, params)))

    def run_while(self, sql: str, params: Any, fetch: Callable[[Any], Any],
                  meanwhile: Callable[[], T]) -> tuple[Any, T]:
        def work(conn: Any) -> tuple[Any, T]:
            cursor, done = self.database.dialect.execute_while(conn, sql, params, meanwhile)
            return fetch(cursor), done

        result: tuple[Any, T] = self._in(work)
        return result

    def run_many(self, sql: str, seq: Sequence[Any], returning: bool) -> list[Any]:
        if not seq:
            return []
        rows: list[Any] = self._in(lambda conn: self.database.dialect.run_batch(
            conn, [(sql, list(seq), returning)], False)[0].rows)
        return rows

    def run_copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        loaded: int = self._in(lambda conn: self.database.dialect.copy(conn, sql, rows))
        return loaded

    def beginTrans(self) -> None:
        """Open (or nest into) a transaction; this thread owns the connection until it ends."""
        self._lock.acquire()
        try:
            self._check_owed("beginTrans()")
        except BaseException:
            self._lock.release()
            raise
        self._level += 1

    def _end_owed(self) -> bool:
        """End one owed level of this thread's rolled-back transaction, if it has one."""
        thread = threading.get_ident()
        owed = self._owed.get(thread, 0)
        if not owed:
            return False
        if owed > 1:
            self._owed[thread] = owed - 1
        else:
            del self._owed[thread]
            self._why.pop(thread, None)
        return True

    def commit(self) -> None:
        """Commit when the outermost ``beginTrans()`` ends; inner levels only count down.
        A COMMIT that fails (a deferred constraint, a lost connection) ends the whole
        nested transaction, rolled back, as a failed statement does, and raises. The
        commit of a transaction already rolled back (by a failed statement, or an inner
        ``rollback()``) raises :class:`~mother.RolledBackError`."""
        with self._lock:
            if self._level == 0:
                thread = threading.get_ident()
                why = self._why.get(thread)
                if self._end_owed():
                    raise RolledBackError(
                        "commit() on the shared connection: this thread's transaction "
                        f"(beginTrans) had been rolled back ({why or 'by an inner rollback()'})"
                        "; nothing was committed") from why
                log.warning("commit() without beginTrans() on the shared connection")
                return
            if self._level == 1 and self._conn is not None:
                try:
                    self.database.dialect.commit(self._conn)
                except Exception:
                    self._abandon()
                    raise
                self.database.committed(self._conn)
            self._level -= 1
            self._lock.release()

    def rollback(self) -> None:
        """Roll back everything since the outermost ``beginTrans()``."""
        with self._lock:
            if self._level == 0:
                if not self._end_owed():
                    log.warning("rollback() without beginTrans() on the shared connection")
                return
            self._abandon(owed=self._level - 1)  # the outer levels are still to end

    def _abandon(self, owed: int = 0, why: BaseException | None = None) -> None:
        """Roll back and end every level: the thread holds the lock once per level, and
        lets go of it (other threads may use the connection again); ``owed`` of them
        stay to be ended by the thread's ``commit()`` or ``rollback()`` calls."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self.database.dialect.rollback(self._conn)
        if owed:
            thread = threading.get_ident()
            self._owed[thread] = owed
            self._why[thread] = why
        for _ in range(self._level):
            self._lock.release()
        self._level = 0

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None

    def forget_connection(self) -> None:
        """In a forked child: drop the parent's connection unclosed (and any
        ``beginTrans()`` of the parent's threads); the next statement opens a new one."""
        self._lock = threading.RLock()
        self._level = 0
        self._owed, self._why = {}, {}
        if self._conn is not None:
            inherited.append(self._conn)
            self._conn = None


_shared_lock = threading.Lock()
#: every shared connection made, so that a forked child can forget their connections
_made: weakref.WeakSet[SharedConnection] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child opens its own shared connections: the parent's are forgotten,
    never closed (:data:`mother.database.inherited`)."""
    global _shared_lock
    _shared_lock = threading.Lock()
    for found in _made:
        found.forget_connection()


os.register_at_fork(after_in_child=_after_fork_in_child)


def shared(database: Database) -> SharedConnection:
    """The shared ("persistent") connection of ``database``, made on first use."""
    if not database.settings.persistent_one:
        raise ConfigError("persistent_one", False, "the shared connection is off: pass a session")
    events.follow_logger()
    found = database.extensions.get(SharedConnection)
    if found is None:
        with _shared_lock:
            found = database.extensions.get(SharedConnection)
            if found is None:
                found = database.extensions[SharedConnection] = SharedConnection(database)
                database.on_close.append(found.close)
                _made.add(found)
    return found


def executor_for(database: Database) -> Executor:
    """Where a record without a session runs: the transaction's session, else the shared one."""
    if database.implicit_session is not None:
        session: Executor | None = database.implicit_session()
        if session is not None:
            return session
    return shared(database)
