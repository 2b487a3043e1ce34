"""What every dialect provides: everything that differs between databases lives behind it."""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

from ..config import Settings
from ..errors import ArgumentError, MotherError
from ..schema import Schema

#: one statement of a batch: SQL text, its parameter sets, whether it returns rows
Statement = tuple[str, Sequence[Any], bool]
#: what the work done while a statement runs gives (:meth:`Dialect.execute_while`)
T = TypeVar("T")
V = TypeVar("V")


#: whether a value, given its column's type (None: not known), is the one a data error is
#: about: True (proven: it cannot be sent), None (it may be), False (it is not)
Suspect = Callable[[Any, "str | None"], "bool | None"]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def fits(value: int, bits: int) -> bool:
    """Whether ``value`` fits a signed integer of ``bits`` bits."""
    return -(1 << (bits - 1)) <= value < 1 << (bits - 1)


class ByConnection(dict[int, V], Generic[V]):
    """A dialect's own state per live connection, keyed by ``id(conn)``.

    Found with ``get(id(conn))``, a plain dict's lookup, where a
    ``WeakKeyDictionary``'s is a Python call; an entry goes when its connection
    is freed (before its id can be reused).
    """

    def attach(self, conn: Any, value: V) -> V:
        """Keep ``value`` for ``conn`` until ``conn`` is freed; ``value`` back."""
        key = id(conn)
        self[key] = value
        weakref.finalize(conn, self.pop, key, None).atexit = False
        return value


class BatchResult(NamedTuple):
    """What one statement of :meth:`Dialect.run_batch` gave back."""

    #: the rows every run returned, concatenated (one per parameter set for
    #: ``INSERT … RETURNING``)
    rows: list[Any]
    #: per parameter set, in order: the rows it changed (or returned)
    counts: list[int]

    # read as a cursor (what a query's fetch is given when it rode in a batch)
    def fetchall(self) -> list[Any]:
        return self.rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    @property
    def rowcount(self) -> int:
        return sum(self.counts)

    @property
    def description(self) -> tuple[str, ...] | None:
        """The columns of the rows (None without rows: a batch keeps no result's shape)."""
        return tuple(self.rows[0]) if self.rows else None


class RowNotChangedError(MotherError):
    """A statement of a batch that had to change a row per parameter set changed none
    for one of them; nothing of the batch was committed."""

    def __init__(self, statement: int, index: int) -> None:
        super().__init__(f"statement {statement} of the batch changed no row for its "
                         f"parameter set {index}")
        self.statement = statement
        self.index = index


@dataclasses.dataclass(frozen=True)
class PoolStatus:
    """A snapshot of a pool (``MotherPoolStatus()``)."""

    pool_type: str
    size: int
    available: int
    in_use: int
    waiting: int
    minimum: int
    maximum: int | None

    def describe(self) -> str:
        limit = "no limit" if self.maximum is None else f"max {self.maximum}"
        return (f"{self.pool_type} pool: {self.size} connections ({self.in_use} in use, "
                f"{self.available} idle), {self.waiting} waiting; min {self.minimum}, {limit}")


class EndLost(Exception):
    """The connection broke after a closing command (``COMMIT``, ``PREPARE TRANSACTION``…)
    was sent: what is known of its outcome.

    ``ran`` is False when it certainly did not run, None when it may have. ``xid``
    is the transaction's id, when the server gave it before the closing command
    (ask :meth:`Dialect.outcome`); ``wrote`` is False when the server said the
    transaction wrote nothing (then its outcome does not matter). ``results``
    are the statements' results, when they all arrived before the break.
    """

    def __init__(self, cause: BaseException, ran: bool | None, xid: int | None = None,
                 wrote: bool | None = None, results: list[Any] | None = None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.ran = ran
        self.xid = xid
        self.wrote = wrote
        self.results = results


class Pool(Protocol):
    """A connection pool as the :class:`~mother.database.Database` uses it."""

    def getconn(self, timeout: float | None = None) -> Any:
        """A connection, waiting up to ``timeout`` (default: ``pool_timeout``) for one."""
    def putconn(self, conn: Any) -> None: ...
    def status(self) -> PoolStatus: ...
    def close(self) -> None: ...


class LazyPool:
    """A dialect's pool, made on first use (by whichever thread gets there first)."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._pool: Pool | None = None
        self._lock = threading.Lock()

    @property
    def made(self) -> bool:
        """Whether the pool is open (made, and not closed or forgotten since)."""
        return self._pool is not None

    def get(self) -> Pool:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = self._dialect.make_pool()
        return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def forget(self) -> list[Pool]:
        """In a forked child: forget the parent's pool, unclosed (the next use makes the
        child's own); what was forgotten, for the caller to keep referenced."""
        self._lock = threading.Lock()  # another thread of the parent may have held it
        pool, self._pool = self._pool, None
        return [] if pool is None else [pool]


class Dialect:
    """Base class of the dialects: the operations that differ between databases.

    Subclasses set the class attributes and implement the ``NotImplemented``
    methods; the SQL that is the same everywhere is written once here.
    """

    name: ClassVar[str]
    #: whether two sessions may write at the same time (SQLite serializes writers)
    concurrent_writes: ClassVar[bool]
    #: the column type of an auto-numbered integer key (for the tutorial schema)
    serial_type: ClassVar[str]
    #: whether :meth:`copy` can load rows (PostgreSQL's ``COPY … FROM STDIN``), their keys
    #: taken ahead (:meth:`next_keys`)
    can_copy: ClassVar[bool] = False
    #: whether one UPDATE can take many rows' values as arrays (:meth:`update_from_arrays`)
    can_update_arrays: ClassVar[bool] = False
    #: whether :meth:`run_batch` sends its statements in one round trip (a query may
    #: then ride with the flush it triggers)
    pipelines: ClassVar[bool] = False
    #: exceptions that mean "the connection is gone"
    connection_errors: ClassVar[tuple[type[BaseException], ...]]
    #: whether the database can prepare transactions at all (False: no need to ask it)
    can_prepare: ClassVar[bool] = False
    #: whether the database has streaming replicas (the ``replicas`` setting)
    can_replicate: ClassVar[bool] = False

    def __init__(self, settings: Settings, database: str) -> None:
        self.settings = settings
        self.database = database

    # -- quoting and placeholders --------------------------------------------------
    @staticmethod
    def quote(identifier: str) -> str:
        """Quote an identifier in double quotes, embedded ones doubled (SQLite uses backticks)."""
        return '"' + identifier.replace('"', '""') + '"'

    def placeholder(self, name: str) -> str:
        raise NotImplementedError

    def trusted(self, text: str) -> str:
        """A programmer-written SQL fragment made safe to combine with bound parameters."""
        return text

    def render(self, query: Any, connection: Callable[[], Any]) -> str:
        """A raw query's SQL text: a str as it is; ``connection()`` gives the connection a
        dialect renders a composed query with (PostgreSQL: :mod:`psycopg.sql`)."""
        if isinstance(query, str):
            return query
        kind = type(query)
        hint = (": psycopg.sql composes PostgreSQL's quoting and placeholders; pass the SQL "
                "text here" if kind.__module__.startswith("psycopg") else "")
        raise ArgumentError(f"a query on {self.name} is SQL text (str), not "
                            f"{kind.__module__}.{kind.__qualname__}{hint}")

    # -- connections -----------------------------------------------------------------
    def make_pool(self) -> Pool:
        raise NotImplementedError

    def connect(self) -> Any:
        """A new connection outside any pool (the shared connection, ``mother check``)."""
        raise NotImplementedError

    def set_session_name(self, conn: Any, name: str) -> None:
        """Show the session name to the server's administrators, where it can."""

    def adopt(self, conn: Any, name: str) -> Any:
        """Take a caller's own connection (``MotherSession(pg_conn=conn)``) for a session:
        name it, and put it in the mode the session's transactions need. What it returns
        goes to :meth:`give_back` when the session ends."""
        self.set_session_name(conn, name)
        return None

    def give_back(self, conn: Any, kept: Any) -> None:
        """The session that :meth:`adopt` took ``conn`` for has ended (its transaction
        committed or rolled back): leave the connection as the caller had it."""

    def forget_session(self, conn: Any) -> None:
        """``conn`` goes back to its pool: its round trips are no longer reported as the
        session's (the session's name labels them from :meth:`begin` or
        :meth:`set_session_name` on)."""

    def begin(self, conn: Any, name: str | None = None, isolation_level: str | None = None,
              readonly: bool = False) -> None:
        """Open a transaction if the driver does not do it by itself.

        ``name`` is the session's name, shown to the server's administrators
        where the database can (set together with the transaction's start).
        ``isolation_level`` (one of :data:`~mother.config.ISOLATION_LEVELS`;
        None: the ``isolation_level`` setting) and ``readonly`` apply to the
        transaction it opens.
        """

    def lock_clause(self, clause: str) -> str:
        """The text a locking read adds to its SELECT (``clause`` is ``FOR UPDATE`` and
        the like, already checked); empty where the database has no row locks."""
        return " " + clause

    def in_transaction(self, conn: Any) -> bool:
        raise NotImplementedError

    def is_broken(self, conn: Any) -> bool:
        raise NotImplementedError

    # -- statements --------------------------------------------------------------------
    def execute(self, conn: Any, sql: str, params: Any = None) -> Any:
        """Run one statement and return a cursor whose rows are dicts."""
        raise NotImplementedError

    def execute_while(self, conn: Any, sql: str, params: Any,
                      meanwhile: Callable[[], T]) -> tuple[Any, T]:
        """:meth:`execute`, and ``meanwhile()`` (work that does not use the connection)
        run while the server works on the statement where the driver can send it and read
        its result later; here, after it. The cursor and what ``meanwhile`` gave; when
        ``meanwhile`` fails, its error, the statement's result read first."""
        return self.execute(conn, sql, params), meanwhile()

    def run_batch(self, conn: Any, statements: Sequence[Statement], commit: bool = False,
                  must_change: Collection[int] = (), gid: str | None = None
                  ) -> list[BatchResult]:
        """Run executemany statements in order (then COMMIT if asked, or with ``gid``
        ``PREPARE TRANSACTION`` where :attr:`can_prepare`), in one round trip where the
        driver can; per statement, its rows and its counts.

        Every parameter set of the statements whose index is in ``must_change``
        must change a row: when one changes none, :class:`RowNotChangedError` is
        raised and nothing is committed or prepared (the transaction must be rolled
        back).
        """
        if gid is not None:
            raise NotImplementedError(f"{self.name} cannot prepare transactions")
        results = []
        for number, (sql, seq, returning) in enumerate(statements):
            rows: list[Any] = []
            counts = []
            for index, params in enumerate(seq):
                cursor = self.execute(conn, sql, params)
                if returning:
                    found = cursor.fetchall()
                    rows.extend(found)
                    counts.append(len(found))
                else:
                    counts.append(cursor.rowcount)
                if counts[-1] == 0 and number in must_change:
                    raise RowNotChangedError(number, index)
            results.append(BatchResult(rows, counts))
        if commit:
            self.commit(conn)
        return results

    def session_name(self, conn: Any) -> str | None:
        """The name ``conn`` carries for the server now (PostgreSQL's
        ``application_name``); None where connections carry none."""
        return None

    def start_batch(self, conn: Any, statements: Sequence[Statement], commit: bool = False,
                    must_change: Collection[int] = (), gid: str | None = None
                    ) -> Callable[[], list[BatchResult]]:
        """:meth:`run_batch`, sent now; what it returns gives the results (call it, once,
        whatever happens: the connection may be held until then). A driver that cannot
        leave results waiting runs the whole batch here."""
        results = self.run_batch(conn, statements, commit, must_change, gid)
        return lambda: results

    def executemany(self, conn: Any, sql: str, seq: Sequence[Any]) -> None:
        raise NotImplementedError

    def copy(self, conn: Any, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Load ``rows`` (value tuples) with ``sql`` (a ``COPY … FROM STDIN`` made by
        :func:`mother.sql.copy_in`) in the open transaction, as one statement; the
        rows loaded. Only where :attr:`can_copy`."""
        raise NotImplementedError(f"{self.name} has no COPY")

    def next_keys(self, table: str, column: str, count: int) -> tuple[str, dict[str, Any]]:
        """One statement taking ``count`` new values of the sequence that numbers
        ``column`` of ``table`` (names checked by the caller), and its parameters: one
        row ``{"k": [values]}`` (in no particular order: the caller gives them out),
        ``{"k": None}`` when no sequence numbers the column. Only where :attr:`can_copy`
        (the keys of the rows a COPY loads)."""
        raise NotImplementedError(f"{self.name} hands out no keys ahead")

    def update_from_arrays(self, table: str, columns: Sequence[str], keys: Sequence[str],
                           types: Sequence[str]) -> str | None:
        """One UPDATE of many rows of ``table`` (names checked by the caller):
        ``columns`` set where ``keys`` match, the rows' values given as one array per
        column, parameters ``a0…`` (``columns``, then ``keys``; ``types`` their column
        types), each row's place ``mo_n`` counted from 1 (for the dialect's guard of
        :meth:`run_batch`). None where a column cannot be passed so. Only where
        :attr:`can_update_arrays`."""
        raise NotImplementedError(f"{self.name} has no UPDATE from arrays")

    # -- streaming: a query's rows read a chunk at a time, in the open transaction -------
    def open_stream(self, conn: Any, sql: str, params: Any, size: int) -> Any:
        """Start reading the rows of the query ``sql``, ``size`` at a time; a handle for
        :meth:`fetch_stream` and :meth:`close_stream`. Here: a cursor of the driver's,
        which reads its rows from the database as they are fetched (SQLite)."""
        return self.execute(conn, sql, params)

    def fetch_stream(self, conn: Any, stream: Any, size: int) -> list[Any]:
        """The next (at most) ``size`` rows of a stream, as dicts; empty at its end."""
        rows: list[Any] = stream.fetchmany(size)
        return rows

    def close_stream(self, conn: Any, stream: Any) -> None:
        """Let go of a stream (read to its end or not)."""
        stream.close()

    def execute_script(self, conn: Any, script: str) -> None:
        """Run a script of several statements (no parameters) in the current transaction."""
        raise NotImplementedError

    def commit(self, conn: Any) -> None:
        """COMMIT; a transaction the server rolled back instead raises
        :class:`~mother.errors.RolledBackError`, a lost reply :class:`EndLost`."""
        raise NotImplementedError

    def check_connection(self) -> Any:
        """A connection of its own for the replicas' health checks: autocommit, giving up
        quickly when the server does not answer. Only where :attr:`can_replicate`."""
        raise NotImplementedError

    def standby_state(self, conn: Any) -> tuple[bool, int | None]:
        """On a check connection: whether its server is a hot standby, and the WAL position
        it has replayed (None: none)."""
        raise NotImplementedError

    def flush_position(self, conn: Any) -> int:
        """On a check connection to the primary: the WAL position it has flushed."""
        raise NotImplementedError

    def commit_position(self, conn: Any) -> int | None:
        """The primary's WAL position that the last commit on ``conn`` (``COMMIT``, a batch's,
        ``COMMIT PREPARED``) reached, asked in its round trip where the database has
        replicas; None where it was not asked."""
        return None

    def wrote_nothing(self, conn: Any) -> bool:
        """Whether the transaction wrote nothing, as the database itself says (not the
        statements' text); the transaction stays open, as it was, either way."""
        raise NotImplementedError

    def outcome(self, xid: int) -> str | None:
        """What became of transaction ``xid``, asked on a new connection: ``committed``,
        ``aborted``, ``in progress``, or None when the database cannot tell."""
        return None

    def rollback(self, conn: Any) -> None:
        raise NotImplementedError

    def introspect(self, conn: Any) -> Schema:
        raise NotImplementedError

    def schema_fingerprint(self, conn: Any) -> str:
        """A short text that changes whenever :meth:`introspect` would read another
        schema (a change it would not see may change it too), read in one round trip
        on an idle connection, left idle."""
        raise NotImplementedError

    def server_version(self, conn: Any) -> str:
        raise NotImplementedError

    # -- transactions ---------------------------------------------------------------------
    def savepoint(self, conn: Any, name: str) -> None:
        self.begin(conn)
        self.execute(conn, f"SAVEPOINT {self.quote(name)}")

    def release_savepoint(self, conn: Any, name: str) -> None:
        self.execute(conn, f"RELEASE SAVEPOINT {self.quote(name)}")

    def rollback_savepoint(self, conn: Any, name: str) -> None:
        self.execute(conn, f"ROLLBACK TO SAVEPOINT {self.quote(name)}")

    def supports_twophase(self, conn: Any) -> bool:
        return False

    def finish_prepared(self, conn: Any, gid: str, commit: bool) -> bool:
        """COMMIT (or ROLLBACK) PREPARED ``gid`` on ``conn`` (a new connection when None);
        False when no such transaction is prepared (another process finished it)."""
        raise NotImplementedError(f"{self.name} cannot prepare transactions")

    def prepared_transactions(self, conn: Any) -> list[tuple[str, float]]:
        """The transactions prepared in this database: ``(gid, age in seconds)``."""
        return []

    def location(self) -> dict[str, str | int]:
        """Where this database is, for observers (OpenTelemetry's ``db.namespace``,
        ``server.address``, ``server.port``): what the settings say, nothing asked."""
        return {}

    def stable_id(self) -> str | None:
        """An id of this database that every process reaching it computes alike without
        asking it (None: the id recorded in its commit log is used)."""
        return None

    def lock_timeout(self, conn: Any, seconds: float) -> None:
        """Let ``conn`` wait at most ``seconds`` for a lock in the transactions it begins
        from now on (called outside a transaction, on a connection of recovery's own)."""

    def is_lock_timeout(self, error: BaseException) -> bool:
        """Whether ``error`` says a lock could not be had in time."""
        return False

    def suspects(self, error: BaseException, state: str | None, message: str
                 ) -> Suspect | bool:
        """How to tell which value sent a data error is about (``state``, its SQLSTATE,
        None for the driver's own refusal; ``message``, its first line): a
        :data:`Suspect` test; True when it is a data error of no kind known here (any
        value may be it); False when it refused no value (:func:`mother.sql.rejected`)."""
        if state is None and isinstance(error, UnicodeEncodeError):
            return lambda value, kind: isinstance(value, str) and value == error.object
        return state is not None

    def has_table(self, conn: Any, name: str) -> bool:
        """Whether table ``name`` exists where an unqualified ``name`` would find it (a
        read, in the current transaction: no privilege beyond reading the catalog)."""
        raise NotImplementedError

    def is_missing_table(self, error: BaseException) -> bool:
        """Whether ``error`` says the table a statement named does not exist."""
        return False

    def is_missing_column(self, error: BaseException) -> bool:
        """Whether ``error`` says a column a statement named does not exist."""
        return False

    def is_busy(self, error: BaseException) -> bool:
        """Whether ``error`` says another connection is finishing that prepared
        transaction right now (recovery leaves it for its next run)."""
        return False

    def is_transient(self, error: BaseException) -> bool:
        """True when retrying the whole transaction may succeed."""
        return False
