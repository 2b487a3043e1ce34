"""PostgreSQL through psycopg 3 and psycopg_pool.

Mother's pool policies map onto :class:`psycopg_pool.ConnectionPool`:
``limited`` keeps between ``pool_min`` and ``pool_max`` connections and makes
a caller wait up to ``pool_timeout``; ``elastic`` does the same but closes
connections above ``pool_min`` after ``pool_idle`` seconds without use;
``growing`` has no upper bound.  psycopg_pool rolls back a connection returned
inside a transaction, discards a broken one, and checks each connection before
handing it out (replacing one whose server process went away).
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import functools
import re
import select
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import psycopg
import psycopg_pool
from psycopg import errors as pgerrors
from psycopg import sql as pgsql
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from .. import events
from ..errors import ArgumentError, ConfigError, PoolTimeoutError
from ..schema import Column, ForeignKey, Schema, Table
from . import _psycopg as fence
from . import pgwire
from .base import (
    BatchResult,
    ByConnection,
    Dialect,
    EndLost,
    PoolStatus,
    RowNotChangedError,
    Statement,
    Suspect,
    T,
    fits,
    is_int,
)

#: the connections this dialect makes and pools: their rows are dicts (``dict_row``)
PgConnection = psycopg.Connection[DictRow]

UNBOUNDED = 2**31 - 1
#: an UPDATE or DELETE (parameters named) that fails when it changes no row: the
#: text of the failed cast names the statement and parameter set
GUARD = ("WITH mo_changed AS (", " RETURNING 1) SELECT CAST(CASE WHEN COUNT(*) = 0 "
         "THEN %(mo_unchanged)s ELSE CAST(COUNT(*) AS TEXT) END AS BIGINT) AS mo_count "
         "FROM mo_changed")
#: the same for a group UPDATE (:meth:`PostgresDialect.update_from_arrays`, its one
#: parameter set holding ``mo_rows``): the first of its rows it did not change is named
#: by its place
GROUP_GUARD = ("WITH mo_changed AS (", " RETURNING mo_v.mo_n) SELECT CAST(CASE WHEN COUNT(*) = "
               "%(mo_rows)s THEN CAST(COUNT(*) AS TEXT) ELSE %(mo_unchanged)s || (SELECT "
               "pg_catalog.min(g) - 1 FROM pg_catalog.generate_series(1, %(mo_rows)s) AS g "
               "WHERE NOT EXISTS (SELECT FROM mo_changed WHERE mo_n = g)) END AS BIGINT) "
               "AS mo_count FROM mo_changed")
#: the keys of :meth:`PostgresDialect.next_keys`: the table is named as SQL text (quoted:
#: its case kept), the column literally
NEXT_KEYS = ("WITH s AS MATERIALIZED (SELECT pg_catalog.pg_get_serial_sequence(%(mo_table)s, "
             "%(mo_column)s)::regclass AS seq) SELECT pg_catalog.array_agg(pg_catalog.nextval("
             "s.seq)) AS k FROM s, pg_catalog.generate_series(1, %(mo_count)s) "
             "WHERE s.seq IS NOT NULL")
#: a replica's state, and the position it replayed, as a number (health checks)
STANDBY_SQL = ("SELECT pg_catalog.pg_is_in_recovery(), "
               "(pg_catalog.pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8")
#: the primary's flushed position, as a number
FLUSHED_SQL = "SELECT (pg_catalog.pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8"
#: seconds a health check waits for a server to answer its connection
CHECK_TIMEOUT = 2
UNCHANGED = "mother-unchanged:"
UNCHANGED_RE = re.compile(re.escape(UNCHANGED) + r"(\d+):(\d+)")

TABLES_SQL = """
SELECT c.oid, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND pg_catalog.pg_table_is_visible(c.oid)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
"""
COLUMNS_SQL = """
SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       NOT a.attnotnull AS nullable, (a.atthasdef OR a.attidentity <> '') AS has_default
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
KEYS_SQL = """
SELECT con.conrelid, con.contype, con.confrelid,
  ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, pos)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
        ORDER BY k.pos) AS cols,
  ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, pos)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
        ORDER BY k.pos) AS ref_cols
FROM pg_catalog.pg_constraint con
WHERE con.conrelid = ANY(%s) AND con.contype IN ('p', 'f')
ORDER BY con.conname
"""

#: what introspection reads, hashed: tables, columns (name, type, null, default) and
#: keys; any ALTER TABLE, CREATE or DROP of a visible table changes it
FINGERPRINT_SQL = f"""
WITH tables AS ({TABLES_SQL})
SELECT md5(concat_ws('/',
  (SELECT string_agg(concat_ws(' ', t.oid, t.relname), ',' ORDER BY t.oid) FROM tables t),
  (SELECT string_agg(concat_ws(' ', a.attrelid, a.attnum, a.attname, a.atttypid, a.atttypmod,
                               a.attnotnull, a.atthasdef, a.attidentity), ','
                     ORDER BY a.attrelid, a.attnum)
   FROM pg_catalog.pg_attribute a JOIN tables t ON t.oid = a.attrelid
   WHERE a.attnum > 0 AND NOT a.attisdropped),
  (SELECT string_agg(concat_ws(' ', con.oid, con.conname, con.conrelid, con.contype,
                               con.confrelid, con.conkey, con.confkey), ',' ORDER BY con.oid)
   FROM pg_catalog.pg_constraint con JOIN tables t ON t.oid = con.conrelid
   WHERE con.contype IN ('p', 'f')))) AS fingerprint
"""


@dataclasses.dataclass
class _Cursors:
    """The server-side cursors of one connection's streams: which names the current
    transaction uses (a transaction's cursors end with it)."""

    #: transactions begun on the connection so far
    generation: int = 0
    #: the transaction (generation) that ``open`` belongs to
    of: int = 0
    open: set[int] = dataclasses.field(default_factory=set)

    def take(self) -> int:
        if self.of != self.generation:
            self.open.clear()
            self.of = self.generation
        number = next(n for n in range(len(self.open) + 1) if n not in self.open)
        self.open.add(number)
        return number


@dataclasses.dataclass(frozen=True)
class _Stream:
    """A stream's server-side cursor: its number, name and transaction."""

    number: int
    name: str
    generation: int


def _check_idle_connection(conn: PgConnection) -> None:
    """Check a connection before lending it, without a round trip when it looks healthy.

    An idle connection has nothing to read: a readable socket means the server
    sent something unasked (a FATAL message after ``pg_terminate_backend``, end
    of file, a notification), and only then is the connection really checked.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("connection closed")
    if select.select([conn.fileno()], [], [], 0)[0]:
        psycopg_pool.ConnectionPool.check_connection(conn)


#: the bits of PostgreSQL's integer types, by the name its catalog (and its
#: "… out of range" error) gives them
_INT_BITS = {"smallint": 16, "integer": 32, "bigint": 64}
#: a type's name (from the catalog) whose values never raise a given data error unless they
#: are of that error's own type; any other (a domain, say) may
_FAMILIAR = re.compile(r"(smallint|integer|bigint|numeric|real|double precision|text|"
                       r"character|boolean|date|time|timestamp|interval|jsonb?|bytea|uuid)\b")
_OUT_OF_RANGE = re.compile(r"(smallint|integer|bigint) out of range")
_TOO_LONG = re.compile(r"value too long for type (.+)\((\d+)\)")
_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")


def _familiar(kind: str | None) -> bool:
    return kind is not None and _FAMILIAR.match(kind) is not None


def _overflows(value: Any, precision: int, scale: int) -> bool | None:
    """Whether ``value`` is beyond ``numeric(precision, scale)`` (None: cannot say)."""
    try:
        rounded = round(decimal.Decimal(value), scale)
        return abs(rounded) >= decimal.Decimal(10) ** (precision - scale)
    except (ArithmeticError, ValueError):
        return None


class _PsycopgPool:
    """psycopg_pool behind the :class:`~mother.dialects.base.Pool` protocol."""

    def __init__(self, pool: psycopg_pool.ConnectionPool[PgConnection], pool_type: str,
                 bounded: bool) -> None:
        self.pool = pool
        self.pool_type = pool_type
        self.bounded = bounded
        # counted here: psycopg_pool's statistics also count connections still being opened
        self._in_use = 0
        self._lock = threading.Lock()

    def getconn(self, timeout: float | None = None) -> PgConnection:
        try:
            conn = self.pool.getconn(timeout)
        except psycopg_pool.PoolTimeout as error:
            stats = self.pool.get_stats()
            size = stats.get("pool_size", 0)
            hint = ("could not open any connection: check the dsn and that the server runs"
                    if size == 0 else "end sessions sooner or raise pool_max")
            raise PoolTimeoutError(
                f"no connection available within {timeout or self.pool.timeout} s "
                f"({size} open, {self._in_use} in use, pool_max={self.pool.max_size}); "
                f"{hint}") from error
        except psycopg_pool.PoolClosed as error:
            raise PoolTimeoutError("the pool is closed") from error
        with self._lock:
            self._in_use += 1
        return conn

    def putconn(self, conn: PgConnection) -> None:
        with self._lock:
            self._in_use -= 1
        self.pool.putconn(conn)

    def status(self) -> PoolStatus:
        stats = self.pool.get_stats()
        in_use = self._in_use
        size = max(stats.get("pool_size", 0), in_use)
        return PoolStatus(
            pool_type=self.pool_type, size=size, available=size - in_use, in_use=in_use,
            waiting=stats.get("requests_waiting", 0), minimum=self.pool.min_size,
            maximum=self.pool.max_size if self.bounded else None)

    def close(self) -> None:
        self.pool.close()


class PostgresDialect(Dialect):
    name = "postgresql"
    serial_type = "SERIAL"
    can_copy = True
    can_update_arrays = True
    pipelines = True
    concurrent_writes = True
    connection_errors = (psycopg.OperationalError, psycopg.InterfaceError)
    can_prepare = True
    can_replicate = True

    def __init__(self, settings: Any, database: str) -> None:
        super().__init__(settings, database)
        try:
            psycopg.conninfo.conninfo_to_dict(settings.dsn)
        except psycopg.ProgrammingError as error:
            raise ConfigError("dsn", settings.dsn, f"not a PostgreSQL DSN: {error}") from None
        self._streams: ByConnection[_Cursors] = ByConnection()
        #: a commit asks the WAL position it reached (read-your-writes on the replicas)
        self._position = bool(settings.replicas)

    def placeholder(self, name: str) -> str:
        return f"%({name})s"

    def next_keys(self, table: str, column: str, count: int) -> tuple[str, dict[str, Any]]:
        """``nextval`` ``count`` times on the sequence of ``pg_get_serial_sequence`` (a
        serial or identity column), looked up once (``MATERIALIZED``), not once per key."""
        return NEXT_KEYS, {"mo_table": self.quote(table), "mo_column": column,
                           "mo_count": count}

    def update_from_arrays(self, table: str, columns: Sequence[str], keys: Sequence[str],
                           types: Sequence[str]) -> str | None:
        """``UPDATE … FROM ROWS FROM (unnest(a0), …) WITH ORDINALITY AS mo_v(a0, …, mo_n)``,
        each array cast to its column's type; None when a column is itself an array
        (unnest would flatten it)."""
        if any(kind.endswith("]") for kind in types):
            return None
        def name(identifier: str) -> str:  # quoted, its % doubled (parameters are bound)
            return self.trusted(self.quote(identifier))

        target = name(table)
        arrays = ", ".join(f"pg_catalog.unnest(%(a{i})s::{self.trusted(kind)}[])"
                           for i, kind in enumerate(types))
        names = ", ".join(f"a{i}" for i in range(len(types)))
        sets = ", ".join(f"{name(col)} = mo_v.a{i}" for i, col in enumerate(columns))
        where = " AND ".join(f"{target}.{name(key)} = mo_v.a{len(columns) + i}"
                             for i, key in enumerate(keys))
        return (f"UPDATE {target} SET {sets} FROM ROWS FROM ({arrays}) "
                f"WITH ORDINALITY AS mo_v({names}, mo_n) WHERE {where}")

    def _cursors(self, conn: PgConnection) -> _Cursors:
        found = self._streams.get(id(conn))
        return found if found is not None else self._streams.attach(conn, _Cursors())

    def trusted(self, text: str) -> str:
        # statements always carry bound parameters, so a literal % must be doubled
        return text.replace("%", "%%")

    def render(self, query: Any, connection: Callable[[], Any]) -> str:
        """A :mod:`psycopg.sql` query (``Composed``, ``SQL``) rendered with the connection
        (its encoding, its quoting); SQL text as it is."""
        if isinstance(query, pgsql.Composable):
            return query.as_string(connection())
        return super().render(query, connection)

    def connect(self) -> PgConnection:
        conn = psycopg.connect(self.settings.dsn, row_factory=dict_row)
        self._configure(conn)
        return conn

    def _configure(self, conn: PgConnection) -> None:
        pgwire.set_prepare_threshold(conn, self.settings.prepare_threshold)
        pgwire.label(conn, database=self.database)

    def _dicts(self, conn: psycopg.Connection[Any], sql: str, params: Any = None
               ) -> psycopg.Cursor[DictRow]:
        """Run ``sql`` through psycopg with rows as dicts, whatever row factory the
        connection has (a caller's own connection may have another), reported. Never
        prepared by psycopg: on a caller's connection, whose psycopg preparation is on,
        a rollback would then send ``DEALLOCATE ALL``, dropping pgwire's statements."""
        cursor = conn.cursor(row_factory=dict_row)
        self._sent(conn, sql, params, functools.partial(cursor.execute, prepare=False),
                   sql, params)
        return cursor

    def _sent(self, conn: psycopg.Connection[Any], sql: str, params: Any, call: Any,
              *args: Any) -> Any:
        """``call(*args)``, a round trip of psycopg's own on ``conn``, reported as sending
        ``sql`` (:func:`mother.events.sent`)."""
        if not events.listeners:
            return call(*args)
        return events.sent(*pgwire.labels(conn), sql, params, call, *args)

    def make_pool(self) -> _PsycopgPool:
        settings = self.settings
        growing = settings.pool_type == "growing"
        pool = psycopg_pool.ConnectionPool(
            settings.dsn,
            min_size=settings.pool_min,
            max_size=UNBOUNDED if growing else settings.pool_max,
            timeout=settings.pool_timeout,
            max_idle=settings.pool_idle if settings.pool_type == "elastic" else 600.0,
            connection_class=PgConnection,
            kwargs={"row_factory": dict_row},
            configure=self._configure,
            # a connection whose server went away is replaced before it is handed out
            check=_check_idle_connection,
            name=f"mother-{self.database}",
            open=True,
        )
        return _PsycopgPool(pool, settings.pool_type, bounded=not growing)

    def location(self) -> dict[str, str | int]:
        """The DSN's database, host and port (libpq's defaults where it names none)."""
        info = psycopg.conninfo.conninfo_to_dict(self.settings.dsn)
        found: dict[str, str | int] = {}
        name = info.get("dbname") or info.get("user")
        if name:
            found["db.namespace"] = str(name)
        host = str(info.get("host") or info.get("hostaddr") or "").split(",")[0]
        if host:
            found["server.address"] = host
        port = str(info.get("port") or "").split(",")[0]
        if port.isdigit() and port != "5432":
            found["server.port"] = int(port)
        return found

    def forget_session(self, conn: PgConnection) -> None:
        pgwire.label(conn, session=None)

    def adopt(self, conn: PgConnection, name: str) -> bool:
        """A caller's connection in autocommit mode is switched out of it for the session
        (its statements must share the session's transaction, and its rollback undo
        them); :meth:`give_back` switches it back. Returns whether it was on."""
        autocommit = conn.autocommit
        if autocommit:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                raise ArgumentError(
                    "MotherSession(pg_conn=...): the connection is in autocommit mode inside "
                    "a transaction it began itself (BEGIN); commit or roll it back first")
            conn.autocommit = False
        self.set_session_name(conn, name)
        return autocommit

    def give_back(self, conn: PgConnection, kept: bool) -> None:
        if kept and not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
            conn.autocommit = True

    def set_session_name(self, conn: PgConnection, name: str) -> None:
        pgwire.label(conn, session=name)
        if self.settings.pooler is not None:
            # the name rides with every BEGIN (SET LOCAL); nothing is prepared on a
            # caller's connection either, not even by psycopg
            pgwire.set_prepare_threshold(conn, None)
            return
        if pgwire.application_name(conn) == name[:63]:
            return  # the server reports the current name: no round trip needed
        status = conn.info.transaction_status
        if status == TransactionStatus.IDLE:
            # outside a transaction, so the setting survives a later rollback
            conn.autocommit = True
            try:
                sql = "SELECT pg_catalog.set_config('application_name', %s, false)"
                self._sent(conn, sql, (name[:63],), conn.execute, sql, (name[:63],))
            finally:
                conn.autocommit = False

    def begin(self, conn: PgConnection, name: str | None = None,
              isolation_level: str | None = None, readonly: bool = False) -> None:
        """Queue ``BEGIN [ISOLATION LEVEL …] [READ ONLY]`` (and ``SET application_name``):
        it rides with the next statement."""
        if conn.pgconn.transaction_status != TransactionStatus.IDLE:
            return  # in a transaction already (pgwire.begin would do nothing either)
        self._cursors(conn).generation += 1  # the cursors of earlier ones are gone
        pgwire.begin(conn, name, isolation_level or self.settings.isolation_level, readonly,
                     local=self.settings.pooler is not None)

    def session_name(self, conn: PgConnection) -> str | None:
        return pgwire.application_name(conn)

    def in_transaction(self, conn: PgConnection) -> bool:
        return conn.info.transaction_status != TransactionStatus.IDLE

    def is_broken(self, conn: PgConnection) -> bool:
        return conn.closed or conn.broken

    def commit(self, conn: PgConnection) -> None:
        pgwire.discard_begin(conn)  # nothing ran: nothing to commit
        if conn.info.transaction_status != TransactionStatus.IDLE:
            pgwire.run(conn, [], end=b"COMMIT", probe=True, position=self._asks_position(conn))

    def _asks_position(self, conn: PgConnection) -> bool:
        """Whether a commit on ``conn`` asks its WAL position: where the database has
        replicas, on the primary (a hot standby, as the server reports since PostgreSQL
        14, has none to give: a read-only session's connection to a replica)."""
        return self._position and conn.info.parameter_status("in_hot_standby") != "on"

    def check_connection(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.settings.dsn, autocommit=True,
                               connect_timeout=CHECK_TIMEOUT,
                               application_name="mother-replica-check")
        pgwire.label(conn, database=self.database)
        return conn

    def standby_state(self, conn: psycopg.Connection[Any]) -> tuple[bool, int | None]:
        standby, replayed = self._row(conn, STANDBY_SQL)
        return bool(standby), None if replayed is None else int(replayed)

    def flush_position(self, conn: psycopg.Connection[Any]) -> int:
        return int(self._row(conn, FLUSHED_SQL)[0])

    def _row(self, conn: psycopg.Connection[Any], sql: str) -> tuple[Any, ...]:
        """The one row of ``sql`` (no parameters), as a tuple, reported."""
        row = self._sent(conn, sql, None, lambda: conn.execute(sql, prepare=False).fetchone())
        assert row is not None
        return tuple(row)

    def commit_position(self, conn: PgConnection) -> int | None:
        return pgwire.take_position(conn)

    def wrote_nothing(self, conn: PgConnection) -> bool:
        return pgwire.unwritten(conn)

    def outcome(self, xid: int) -> str | None:
        sql = "SELECT pg_catalog.pg_xact_status(%s::text::xid8)"
        try:
            with psycopg.connect(self.settings.dsn, connect_timeout=5) as conn:
                pgwire.label(conn, database=self.database)
                row = self._sent(conn, sql, (str(xid),), conn.execute, sql,
                                 (str(xid),)).fetchone()
        except psycopg.Error:
            return None
        return row[0] if row else None

    def rollback(self, conn: PgConnection) -> None:
        pgwire.discard_begin(conn)
        if conn.info.transaction_status == TransactionStatus.IDLE:
            return  # nothing to roll back: psycopg would send nothing either
        self._sent(conn, "ROLLBACK", None, conn.rollback)

    def execute(self, conn: PgConnection, sql: str,
                params: Any = None) -> pgwire.Result | psycopg.Cursor[DictRow]:
        if params is None:
            # no parameters: psycopg's simple query, which may hold several statements
            pgwire.open_transaction(conn)
            cursor = self._dicts(conn, sql)
            if cursor.statusmessage in ("DISCARD ALL", "DEALLOCATE ALL"):
                pgwire.forget_prepared(conn)
            return cursor
        return pgwire.run(conn, [(sql, params)])[0]

    def execute_while(self, conn: PgConnection, sql: str, params: Any,
                      meanwhile: Callable[[], T]) -> tuple[Any, T]:
        """The statement sent, ``meanwhile()`` run, then its result read: one round trip
        (:func:`~mother.dialects.pgwire.run_while`; the queued ``BEGIN`` rides with it)."""
        if params is None:  # a simple query: through psycopg, as execute() sends it
            return super().execute_while(conn, sql, params, meanwhile)
        [result], done = pgwire.run_while(conn, [(sql, params)], meanwhile)
        return result, done

    def executemany(self, conn: PgConnection, sql: str, seq: Sequence[Any]) -> None:
        pgwire.run(conn, [(sql, params) for params in seq])

    def copy(self, conn: PgConnection, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """``COPY … FROM STDIN`` through psycopg's :meth:`~psycopg.Cursor.copy`, after the
        queued ``BEGIN``: two round trips, each reported (the ``COPY`` and the server's
        go-ahead; then the rows, the end of the data and the server's reply)."""
        pgwire.open_transaction(conn)
        with conn.cursor() as cursor, contextlib.ExitStack() as started:
            copy = self._sent(conn, sql, None, started.enter_context, cursor.copy(sql))

            def load() -> int:
                with started.pop_all():  # leaving it ends the data and reads the reply
                    fence.write_rows(copy, rows)
                return cursor.rowcount

            if not events.listeners:
                return load()
            return events.sent(*pgwire.labels(conn), f"{sql} (its rows)", None, load,
                               rows=lambda count: count)

    def open_stream(self, conn: PgConnection, sql: str, params: Any,
                    size: int) -> _Stream:
        """``DECLARE`` a server-side cursor (``NO SCROLL``, ``WITHOUT HOLD``: it lives in
        the transaction) for the query; the queued ``BEGIN`` rides with it. Cursors are
        named ``mo_stream_N``, N the lowest number free in the transaction, so that the
        ``FETCH`` statements repeat (and get prepared) instead of piling up."""
        cursors = self._cursors(conn)
        number = cursors.take()
        stream = _Stream(number, self.quote(f"mo_stream_{number}"), cursors.generation)
        if params is None:
            sql = self.trusted(sql)  # a query without parameters: its % signs are literal
        try:
            pgwire.run(conn, [(f"DECLARE {stream.name} NO SCROLL CURSOR FOR {sql}",
                               () if params is None else params)])
        except BaseException:
            cursors.open.discard(number)
            raise
        return stream

    def fetch_stream(self, conn: PgConnection, stream: _Stream,
                     size: int) -> list[Any]:
        return pgwire.run(conn, [(f"FETCH FORWARD {int(size)} FROM {stream.name}", ())])[0].rows

    def close_stream(self, conn: PgConnection, stream: _Stream) -> None:
        """``CLOSE`` the cursor if its transaction is still the open one (and has not
        failed); otherwise it went with its transaction."""
        cursors = self._cursors(conn)
        if cursors.of != stream.generation or stream.number not in cursors.open:
            return
        cursors.open.discard(stream.number)
        if (conn.info.transaction_status == TransactionStatus.INTRANS
                and cursors.generation == stream.generation):
            pgwire.run(conn, [(f"CLOSE {stream.name}", ())])

    def execute_script(self, conn: PgConnection, script: str) -> None:
        # without parameters the server accepts several statements in one query
        pgwire.open_transaction(conn)
        self._sent(conn, script, None, conn.execute, script.encode())

    def run_batch(self, conn: PgConnection, statements: Sequence[Statement],
                  commit: bool = False, must_change: Collection[int] = (),
                  gid: str | None = None) -> list[BatchResult]:
        """One pipeline: every statement (and the COMMIT, or the PREPARE) goes out before
        any result comes back.

        The rows a statement of ``must_change`` changed are known only once the
        closing command has been sent with it: when one rides in the batch, each
        such statement is guarded (:data:`GUARD`) so that the server itself fails
        it, and so skips the closing command, when it changes no row. A group UPDATE
        (its one parameter set holding ``mo_rows``) is always guarded
        (:data:`GROUP_GUARD`): its counts are one per row.
        """
        return self.start_batch(conn, statements, commit, must_change, gid)()

    def start_batch(self, conn: PgConnection, statements: Sequence[Statement],
                    commit: bool = False, must_change: Collection[int] = (),
                    gid: str | None = None) -> Callable[[], list[BatchResult]]:
        end = (b"COMMIT" if commit else
               None if gid is None else b"PREPARE TRANSACTION " + pgwire.literal(conn, gid))
        guarded = end is not None and bool(must_change)
        groups = {number for number in must_change
                  if len(statements[number][1]) == 1 and "mo_rows" in statements[number][1][0]}
        flat: list[tuple[str, Any]] = []
        for number, (sql, seq, _) in enumerate(statements):
            if number in groups:
                flat.append((GROUP_GUARD[0] + sql + GROUP_GUARD[1],
                             {**seq[0], "mo_unchanged": f"{UNCHANGED}{number}:"}))
            elif guarded and number in must_change:
                text = GUARD[0] + sql + GUARD[1]
                flat.extend((text, {**params, "mo_unchanged": f"{UNCHANGED}{number}:{index}"})
                            for index, params in enumerate(seq))
            else:
                flat.extend((sql, params) for params in seq)

        def grouped(results: list[pgwire.Result]) -> list[BatchResult]:
            each, out = iter(results), []
            for number, (_, seq, _) in enumerate(statements):
                if number in groups:
                    out.append(BatchResult([], [1] * next(each).rows[0]["mo_count"]))
                    continue
                mine = [next(each) for _ in seq]
                if guarded and number in must_change:
                    out.append(BatchResult([], [result.rows[0]["mo_count"] for result in mine]))
                    continue
                counts = [result.rowcount for result in mine]
                if number in must_change and 0 in counts:
                    raise RowNotChangedError(number, counts.index(0))
                out.append(BatchResult([row for result in mine for row in result.rows], counts))
            return out

        receive = pgwire.start(conn, flat, end=end, probe=end is not None,
                               position=commit and self._asks_position(conn))

        def results() -> list[BatchResult]:
            try:
                return grouped(receive())
            except pgerrors.InvalidTextRepresentation as error:
                found = (UNCHANGED_RE.search(error.diag.message_primary or "")
                         if guarded or groups else None)
                if found is None:
                    raise
                raise RowNotChangedError(int(found[1]), int(found[2])) from error
            except EndLost as lost:
                if lost.results is not None:
                    lost.results = grouped(lost.results)
                raise

        return results

    def introspect(self, conn: PgConnection) -> Schema:
        names = {row["oid"]: row["relname"]
                 for row in self._dicts(conn, TABLES_SQL)}
        oids = list(names)
        columns: dict[int, dict[str, Column]] = {oid: {} for oid in oids}
        for row in self._dicts(conn, COLUMNS_SQL, (oids,)):
            columns[row["attrelid"]][row["attname"]] = Column(
                row["attname"], row["type"], row["nullable"], row["has_default"])
        keys = self._dicts(conn, KEYS_SQL, (oids,)).fetchall()
        tables = {oid: Table(name, columns[oid], ()) for oid, name in names.items()}
        for row in keys:
            table = tables[row["conrelid"]]
            if row["contype"] == "p":
                table.primary_key = tuple(row["cols"])
            elif row["confrelid"] in names:
                table.foreign_keys.append(ForeignKey(
                    table.name, tuple(row["cols"]), names[row["confrelid"]],
                    tuple(row["ref_cols"])))
        self.rollback(conn)
        return Schema(sorted(tables.values(), key=lambda t: t.name), self.database)

    def schema_fingerprint(self, conn: PgConnection) -> str:
        # one statement in its own implicit transaction: one round trip
        [result] = pgwire.run(conn, [(FINGERPRINT_SQL, ())])
        return str(result.rows[0]["fingerprint"])

    def server_version(self, conn: PgConnection) -> str:
        [row] = self._dicts(conn, "SELECT version()").fetchall()
        return str(row["version"])

    def supports_twophase(self, conn: PgConnection) -> bool:
        [row] = self._dicts(conn, "SHOW max_prepared_transactions").fetchall()
        self.rollback(conn)
        return int(row["max_prepared_transactions"]) > 0

    def finish_prepared(self, conn: PgConnection | None, gid: str, commit: bool) -> bool:
        # after PREPARE the connection is outside any transaction, as COMMIT PREPARED must be
        own = conn is None
        if conn is None:
            conn = self.connect()
        verb = b"COMMIT PREPARED " if commit else b"ROLLBACK PREPARED "
        try:
            pgwire.run(conn, [], end=verb + pgwire.literal(conn, gid),
                       position=commit and self._position)
        except pgerrors.UndefinedObject:
            return False  # finished by another process (recovery)
        finally:
            if own:
                conn.close()
        return True

    def prepared_transactions(self, conn: PgConnection) -> list[tuple[str, float]]:
        # one statement in its own implicit transaction: one round trip
        [result] = pgwire.run(conn, [(
            "SELECT gid, extract(epoch FROM now() - prepared)::float8 AS age "
            "FROM pg_catalog.pg_prepared_xacts "
            "WHERE database = current_database() ORDER BY prepared", ())])
        return [(row["gid"], row["age"]) for row in result.rows]

    def lock_timeout(self, conn: PgConnection, seconds: float) -> None:
        # for each transaction only (SET LOCAL with its BEGIN): a session-wide setting
        # would stay on a pooler's server connection for its next clients
        pgwire.set_local(conn, "lock_timeout", f"{int(seconds * 1000)}ms")

    def is_lock_timeout(self, error: BaseException) -> bool:
        return isinstance(error, pgerrors.LockNotAvailable)

    def suspects(self, error: BaseException, state: str | None, message: str
                 ) -> Suspect | bool:
        if state is None and isinstance(error, psycopg.DataError) and "NUL" in message:
            return lambda value, kind: isinstance(value, str) and "\x00" in value
        if state == "22003" and (match := _OUT_OF_RANGE.fullmatch(message)):
            name, bits = match[1], _INT_BITS[match[1]]

            def out_of_range(value: Any, kind: str | None) -> bool | None:
                if not is_int(value):
                    return False
                if kind in _INT_BITS:
                    return kind == name and not fits(value, bits)
                return None if not _familiar(kind) and not fits(value, bits) else False
            return out_of_range
        if state == "22003" and message == "numeric field overflow":
            def too_large(value: Any, kind: str | None) -> bool | None:
                if not (is_int(value) or isinstance(value, (float, decimal.Decimal))):
                    return False
                numeric = _NUMERIC.fullmatch(kind or "")
                if numeric is not None:
                    return _overflows(value, int(numeric[1]), int(numeric[2]))
                return None if not _familiar(kind) else False
            return too_large
        if state == "22001" and (long := _TOO_LONG.fullmatch(message)):
            length = int(long[2])

            def too_long(value: Any, kind: str | None) -> bool | None:
                if not isinstance(value, str) or len(value) <= length:
                    return False
                if kind == f"{long[1]}({length})":
                    return True
                return None if not _familiar(kind) else False
            return too_long
        return super().suspects(error, state, message)

    def has_table(self, conn: PgConnection, name: str) -> bool:
        sql = "SELECT pg_catalog.to_regclass(%(name)s) IS NOT NULL AS found"
        row = self.execute(conn, sql, {"name": self.quote(name)}).fetchone()
        return bool(row and row["found"])

    def is_missing_table(self, error: BaseException) -> bool:
        return isinstance(error, pgerrors.UndefinedTable)

    def is_missing_column(self, error: BaseException) -> bool:
        return isinstance(error, pgerrors.UndefinedColumn)

    def is_busy(self, error: BaseException) -> bool:
        # "prepared transaction with identifier ... is busy" (SQLSTATE 55000)
        return isinstance(error, pgerrors.ObjectNotInPrerequisiteState)

    def is_transient(self, error: BaseException) -> bool:
        return isinstance(error, (pgerrors.SerializationFailure, pgerrors.DeadlockDetected)) or (
            isinstance(error, psycopg.Error) and (error.sqlstate or "").startswith("40"))
