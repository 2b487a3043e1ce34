"""What every dialect provides: everything that differs between databases lives behind it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from ..config import Settings
from ..schema import Schema


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


class Pool(Protocol):
    """A connection pool as the :class:`~mother.database.Database` uses it."""

    def getconn(self) -> Any: ...
    def putconn(self, conn: Any) -> None: ...
    def status(self) -> PoolStatus: ...
    def close(self) -> None: ...


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
    #: whether a multi-row ``INSERT … VALUES … RETURNING`` returns rows in VALUES order
    #: (MotherMany then inserts in chunks instead of one statement per row)
    ordered_returning: ClassVar[bool] = False
    #: exceptions that mean "the connection is gone"
    connection_errors: ClassVar[tuple[type[BaseException], ...]]

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

    # -- connections -----------------------------------------------------------------
    def make_pool(self) -> Pool:
        raise NotImplementedError

    def connect(self) -> Any:
        """A new connection outside any pool (the shared connection, ``mother check``)."""
        raise NotImplementedError

    def set_session_name(self, conn: Any, name: str) -> None:
        """Show the session name to the server's administrators, where it can."""

    def begin(self, conn: Any, name: str | None = None) -> None:
        """Open a transaction if the driver does not do it by itself.

        ``name`` is the session's name, shown to the server's administrators
        where the database can (set together with the transaction's start).
        """

    def in_transaction(self, conn: Any) -> bool:
        raise NotImplementedError

    def is_broken(self, conn: Any) -> bool:
        raise NotImplementedError

    # -- statements --------------------------------------------------------------------
    def execute(self, conn: Any, sql: str, params: Any = None) -> Any:
        """Run one statement and return a cursor whose rows are dicts."""
        raise NotImplementedError

    def run_batch(self, conn: Any, statements: Sequence[tuple[str, Sequence[Any], bool]],
                  commit: bool = False) -> list[list[Any]]:
        """Run executemany statements in order (then COMMIT if asked), in one round trip
        where the driver can; per statement, the rows every run returned, concatenated
        (one per parameter set for ``INSERT … RETURNING``)."""
        results = []
        for sql, seq, returning in statements:
            if returning:
                rows: list[Any] = []
                for params in seq:
                    rows.extend(self.execute(conn, sql, params).fetchall())
                results.append(rows)
            else:
                self.executemany(conn, sql, seq)
                results.append([])
        if commit:
            self.commit(conn)
        return results

    def executemany(self, conn: Any, sql: str, seq: Sequence[Any]) -> None:
        raise NotImplementedError

    def execute_script(self, conn: Any, script: str) -> None:
        """Run a script of several statements (no parameters) in the current transaction."""
        raise NotImplementedError

    def commit(self, conn: Any) -> None:
        raise NotImplementedError

    def rollback(self, conn: Any) -> None:
        raise NotImplementedError

    def introspect(self, conn: Any) -> Schema:
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

    def prepare(self, jobs: Sequence[tuple[Any, str, Sequence[tuple[str, Any]]]]
                ) -> list[Exception | None]:
        """PREPARE TRANSACTION on several connections: each job ``(conn, gid, statements)``
        runs its statements and prepares as ``gid``, all at once where the driver can.
        Per job, None or its error."""
        raise NotImplementedError(f"{self.name} cannot prepare transactions")

    def finish_prepared(self, conn: Any, gid: str, commit: bool) -> None:
        raise NotImplementedError(f"{self.name} cannot prepare transactions")

    def prepared_transactions(self, conn: Any) -> list[str]:
        """Global ids of the transactions prepared in this database."""
        return []

    def is_transient(self, error: BaseException) -> bool:
        """True when retrying the whole transaction may succeed."""
        return False
