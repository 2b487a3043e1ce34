"""SQLite through the standard :mod:`sqlite3` module.

* ``sqlite:///relative/file.db`` and ``sqlite:////absolute/file.db`` are files
  in WAL mode; ``sqlite://`` is a private in-memory database shared by the
  pool's connections (the ``memdb`` VFS, so normal locking applies).
* Writers are serialized by SQLite: a transaction starts with
  ``BEGIN IMMEDIATE`` and waits up to ``busy_timeout`` for the write lock, so
  two sessions never deadlock on a lock upgrade.
* Every transaction is serializable: writers hold the database's write lock
  until they end and readers see one snapshot (WAL), so each
  ``isolation_level`` is already met and none changes anything.
* A read-only transaction starts with a plain (deferred) ``BEGIN``, which
  takes no write lock, on a connection set to ``PRAGMA query_only`` (reset
  when the connection goes back to the pool).
* There are no row locks: a locking read (``lock="update"``) is a plain
  SELECT, the write lock the transaction holds from its start already keeps
  every other writer out.
* Foreign keys are enforced on every connection.
* Identifiers are quoted with backticks. SQLite reads a double-quoted name
  that is no column as a string literal (its "DQS" misfeature), so
  ``"no_such_column" = 'no_such_column'`` would be true; a backticked name is
  always an identifier, and an unknown one is an error. Where the driver can
  (``sqlite3.Connection.setconfig``, Python 3.12+), the double-quoted string
  fallback is also switched off on every connection, for programmer-written SQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import sqlite3
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Sequence
from typing import Any

from .. import events
from ..errors import ConfigError
from ..pool import SimplePool
from ..schema import Column, ForeignKey, Schema, Table
from .base import Dialect, Pool, Suspect, fits, is_int

MIN_VERSION = (3, 37, 0)
_counter = itertools.count()


class _Connection(sqlite3.Connection):
    """A connection that remembers how many rows it had changed when its transaction began,
    and the database and session its calls are reported for (:mod:`mother.events`)."""

    changes_at_begin = 0
    mo_database = ""
    mo_session: str | None = None


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row)}


def _changed(cursor: sqlite3.Cursor) -> int | None:
    """The rows a call changed; None for a statement that returns rows (they are counted
    only once fetched)."""
    return None if cursor.description is not None else events.rows_of(cursor)


def _rowid_alias(row: dict[str, Any], info: list[dict[str, Any]]) -> bool:
    """Whether the column is the single INTEGER primary key (SQLite numbers it)."""
    return (row["pk"] == 1 and (row["type"] or "").upper() == "INTEGER"
            and sum(1 for other in info if other["pk"]) == 1)


class SQLiteDialect(Dialect):
    name = "sqlite"
    serial_type = "INTEGER"
    concurrent_writes = False
    connection_errors = (sqlite3.ProgrammingError,)

    def __init__(self, settings: Any, database: str) -> None:
        super().__init__(settings, database)
        if sqlite3.sqlite_version_info < MIN_VERSION:
            raise ConfigError("dsn", settings.dsn,
                              f"SQLite {sqlite3.sqlite_version} is too old; dbmother needs "
                              f"{'.'.join(map(str, MIN_VERSION))} or later (RETURNING, memdb)")
        path = settings.dsn[len("sqlite://"):]
        if path in ("", "/", "/:memory:"):
            self.target = f"file:/mother-{uuid.uuid4().hex}-{next(_counter)}?vfs=memdb"
            self.memory = True
        elif path.startswith("/"):
            # as in SQLAlchemy: sqlite:///relative/file.db, sqlite:////absolute/file.db
            self.target = "file:" + urllib.parse.quote(os.path.abspath(path[1:]))
            self.memory = False
        else:
            raise ConfigError("dsn", settings.dsn, "expected sqlite:///path/to/file.db or sqlite://")
        self._anchor: sqlite3.Connection | None = None
        self._anchor_lock = threading.Lock()

    @staticmethod
    def quote(identifier: str) -> str:
        """Quote an identifier with backticks (embedded ones doubled): never a string literal."""
        return "`" + identifier.replace("`", "``") + "`"

    def placeholder(self, name: str) -> str:
        return ":" + name

    def connect(self) -> sqlite3.Connection:
        with self._anchor_lock:
            if self.memory and self._anchor is None:
                # keeps the in-memory database alive while the pool's connections come and go
                self._anchor = self._open()
        return self._open()

    def _open(self) -> sqlite3.Connection:
        target = self.target
        if not (self.memory or self.settings.create):
            path = urllib.parse.unquote(target[len("file:"):])
            if not os.path.exists(path):
                raise ConfigError("dsn", self.settings.dsn,
                                  f"no SQLite database file {path}: check the path, or set "
                                  "create = true to make a new one (mother: --create)")
            target += "?mode=rw"  # and never made between the check and the open
        conn = sqlite3.connect(target, uri=True, isolation_level=None,
                               check_same_thread=False, timeout=self.settings.busy_timeout,
                               factory=_Connection)
        conn.row_factory = _dict_row
        conn.mo_database = self.database
        if sys.version_info >= (3, 12):  # Connection.setconfig: no double-quoted string literals
            conn.setconfig(sqlite3.SQLITE_DBCONFIG_DQS_DML, False)
            conn.setconfig(sqlite3.SQLITE_DBCONFIG_DQS_DDL, False)
        self._call(conn, "PRAGMA foreign_keys = ON")
        if not self.memory:
            self._call(conn, "PRAGMA journal_mode = WAL")
            self._call(conn, "PRAGMA synchronous = NORMAL")
        return conn

    @staticmethod
    def _call(conn: _Connection, sql: str, params: Any = None,
              many: bool = False) -> sqlite3.Cursor:
        """One call into sqlite3, reported as a round trip when somebody listens."""
        run = conn.executemany if many else conn.execute
        values = params if params is not None else ()
        if not events.listeners:
            return run(sql, values)
        return events.sent(conn.mo_database, conn.mo_session, sql, params, run, sql, values,
                           rows=_changed)

    def make_pool(self) -> Pool:
        return SimplePool(self.settings, self.connect, self._reset, self._close)

    def _reset(self, conn: _Connection) -> bool:
        try:
            self.rollback(conn)
            self._call(conn, "PRAGMA query_only = OFF")  # a read-only session may have set it
            return True
        except sqlite3.Error:
            return False

    @staticmethod
    def _close(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def close(self) -> None:
        with self._anchor_lock:
            if self._anchor is not None:
                self._close(self._anchor)
                self._anchor = None

    def set_session_name(self, conn: _Connection, name: str) -> None:
        conn.mo_session = name  # only for events: SQLite has no administrators to show it

    def forget_session(self, conn: _Connection) -> None:
        conn.mo_session = None

    def begin(self, conn: _Connection, name: str | None = None,
              isolation_level: str | None = None, readonly: bool = False) -> None:
        if conn.in_transaction:
            return
        if name is not None:
            conn.mo_session = name
        if readonly:
            self._call(conn, "PRAGMA query_only = ON")
            self._call(conn, "BEGIN")
        else:
            self._call(conn, "BEGIN IMMEDIATE")
        conn.changes_at_begin = conn.total_changes

    def lock_clause(self, clause: str) -> str:
        return ""

    def in_transaction(self, conn: sqlite3.Connection) -> bool:
        return conn.in_transaction

    def is_broken(self, conn: sqlite3.Connection) -> bool:
        try:
            conn.total_changes  # noqa: B018 - raises ProgrammingError once closed
        except sqlite3.ProgrammingError:
            return True
        return False

    def commit(self, conn: _Connection) -> None:
        if conn.in_transaction:
            self._call(conn, "COMMIT")

    def wrote_nothing(self, conn: _Connection) -> bool:
        # total_changes counts every row written, by triggers too
        return not conn.in_transaction or conn.total_changes == conn.changes_at_begin

    def rollback(self, conn: _Connection) -> None:
        if conn.in_transaction:
            self._call(conn, "ROLLBACK")

    def execute(self, conn: _Connection, sql: str, params: Any = None) -> sqlite3.Cursor:
        if events.listeners:
            return self._call(conn, sql, params)
        return conn.execute(sql, params if params is not None else ())

    def executemany(self, conn: _Connection, sql: str, seq: Sequence[Any]) -> None:
        self._call(conn, sql, seq, many=True)

    def execute_script(self, conn: _Connection, script: str) -> None:
        # executescript() would COMMIT first: run the statements one by one instead
        statement = ""
        for piece in script.split(";"):
            statement += piece + ";"
            if sqlite3.complete_statement(statement):  # not a ';' inside a string or trigger
                self._call(conn, statement)
                statement = ""

    def introspect(self, conn: _Connection) -> Schema:
        names = [row["name"] for row in self._call(
            conn, "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]
        tables = []
        for name in names:
            info = self._call(conn, "SELECT * FROM pragma_table_info(?)", (name,)).fetchall()
            columns = {
                row["name"]: Column(row["name"], row["type"] or "", not row["notnull"],
                                    row["dflt_value"] is not None or _rowid_alias(row, info))
                for row in info
            }
            pk = tuple(row["name"] for row in sorted(info, key=lambda r: r["pk"]) if row["pk"])
            tables.append(Table(name, columns, pk, []))
        by_name = {table.name: table for table in tables}
        for table in tables:
            rows = self._call(conn, "SELECT * FROM pragma_foreign_key_list(?)",
                              (table.name,)).fetchall()
            for _, grouped in itertools.groupby(sorted(rows, key=lambda r: (r["id"], r["seq"])),
                                                key=lambda r: r["id"]):
                group = list(grouped)
                ref = by_name.get(group[0]["table"])
                if ref is None:
                    continue
                local = tuple(row["from"] for row in group)
                remote = tuple(row["to"] for row in group)
                if None in remote:
                    remote = ref.primary_key
                table.foreign_keys.append(ForeignKey(table.name, local, ref.name, remote))
        return Schema(tables, self.database)

    def schema_fingerprint(self, conn: _Connection) -> str:
        # SQLite counts the changes of its schema in the file's header
        [row] = self._call(conn, "PRAGMA schema_version").fetchall()
        return str(row["schema_version"])

    def server_version(self, conn: sqlite3.Connection) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def location(self) -> dict[str, str | int]:
        """The file's path (``:memory:`` for a private in-memory database)."""
        if self.memory:
            return {"db.namespace": ":memory:"}
        return {"db.namespace": urllib.parse.unquote(self.target[len("file:"):])}

    def stable_id(self) -> str | None:
        # a file has one real path for every process of this machine; memory has no id
        if self.memory:
            return None
        path = os.path.realpath(urllib.parse.unquote(self.target[len("file:"):]))
        return hashlib.sha1(path.encode()).hexdigest()[:8]

    def lock_timeout(self, conn: _Connection, seconds: float) -> None:
        self._call(conn, f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    def is_lock_timeout(self, error: BaseException) -> bool:
        return self.is_transient(error)  # "database is locked" after busy_timeout

    def suspects(self, error: BaseException, state: str | None, message: str
                 ) -> Suspect | bool:
        if isinstance(error, OverflowError):  # sqlite3: an int beyond SQLite's INTEGER
            return lambda value, kind: is_int(value) and not fits(value, 64)
        return super().suspects(error, state, message)

    def has_table(self, conn: _Connection, name: str) -> bool:
        sql = "SELECT count(*) AS found FROM sqlite_master WHERE type = 'table' AND name = ?"
        return bool(self.execute(conn, sql, (name,)).fetchone()["found"])

    def is_missing_table(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.OperationalError) and "no such table" in str(error)

    def is_missing_column(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.OperationalError) and "no such column" in str(error)

    def is_transient(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.OperationalError) and "database is locked" in str(error)
