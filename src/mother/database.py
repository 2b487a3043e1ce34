"""Named databases: settings, dialect, pool, cached schema and the shared connection.

The registry of databases is the only global state of dbmother.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import events
from .config import Settings, make_settings
from .dialects import Dialect, Pool, PoolStatus, dialect_for
from .errors import ConfigError
from .schema import Schema

if TYPE_CHECKING:
    from .session import Executor, Session, SharedConnection

log = logging.getLogger(__name__)


class Database:
    """One configured database: what every session of it shares."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.dialect: Dialect = dialect_for(settings, name)
        self._lock = threading.RLock()
        self._pool: Pool | None = None
        self._schema: Schema | None = None
        self._shared: SharedConnection | None = None
        self._twophase: bool | None = None
        #: record classes made by getMotherBuilder(), by table name
        self.builders: dict[str, type] = {}
        #: called with every new session (``mother.tm.register`` joins it to the transaction)
        self.session_hooks: list[Callable[[Session], None]] = []
        #: may turn a driver error raised by a session's statement into another
        #: exception (raised from it); ``mother.zope`` makes transient ones retryable
        self.error_translators: list[Callable[[BaseException], BaseException | None]] = []
        #: gives the executor of records created without a session (``mother.tm.register``)
        self.implicit_session: Callable[[], Session | None] | None = None

    def __repr__(self) -> str:
        return f"<Database {self.name!r} {self.dialect.name}>"

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = self.dialect.make_pool()
        return self._pool

    def getconn(self) -> Any:
        """A connection from the pool (reported as ``checkout``, after ``connect`` when
        the pool opened one for it)."""
        events.follow_logger()
        if not events.listeners:
            return self.pool.getconn()
        size = self.pool.status().size
        conn = self.pool.getconn()
        status = self.pool.status()
        if status.size > size:
            events.pool_event(self.name, "connect", status)
        events.pool_event(self.name, "checkout", status)
        return conn

    def putconn(self, conn: Any) -> None:
        """Give a connection back (reported as ``checkin``, then ``discard`` when the
        pool closed it)."""
        self.dialect.forget_session(conn)
        if not events.listeners:
            self.pool.putconn(conn)
            return
        size = self.pool.status().size
        self.pool.putconn(conn)
        status = self.pool.status()
        events.pool_event(self.name, "checkin", status)
        if status.size < size:
            events.pool_event(self.name, "discard", status)

    def status(self) -> PoolStatus:
        return self.pool.status()

    @property
    def schema(self) -> Schema:
        """The schema, read from the live database on first use and cached."""
        if self._schema is None:
            with self._lock:
                if self._schema is None:
                    self._schema = self._introspect()
            self.builders.clear()
        return self._schema

    def refresh_schema(self) -> Schema:
        """Read the schema again (after DDL)."""
        with self._lock:
            self._schema = self._introspect()
            self.builders.clear()
        return self._schema

    def _introspect(self) -> Schema:
        conn = self.getconn()
        try:
            schema = self.dialect.introspect(conn)
        finally:
            self.putconn(conn)
        log.debug("schema of %s: %d tables", self.name, len(schema.tables))
        return schema

    @property
    def twophase(self) -> bool:
        """Whether sessions of this database prepare their transactions (two-phase commit)."""
        if self._twophase is None:
            if self.settings.twophase and not self.dialect.can_prepare:
                raise ConfigError("twophase", True, f"database {self.name!r} is "
                                  f"{self.dialect.name}, which cannot prepare transactions")
            if self.settings.twophase is False or not self.dialect.can_prepare:
                # known without connecting: nothing can fail before a session has joined
                self._twophase = False
            else:
                conn = self.getconn()
                try:
                    able = self.dialect.supports_twophase(conn)
                finally:
                    self.putconn(conn)
                if self.settings.twophase and not able:
                    raise ConfigError("twophase", True, f"database {self.name!r} cannot prepare "
                                      "transactions (max_prepared_transactions = 0?)")
                self._twophase = able
        return self._twophase

    @property
    def shared(self) -> SharedConnection:
        """The shared ("persistent") connection used by records without a session."""
        if not self.settings.persistent_one:
            raise ConfigError("persistent_one", False,
                              "the shared connection is off: pass a session")
        events.follow_logger()
        if self._shared is None:
            with self._lock:
                if self._shared is None:
                    from .session import SharedConnection

                    self._shared = SharedConnection(self)
        return self._shared

    def executor(self) -> Executor:
        """Where a record without a session runs: the transaction's session, else the shared one."""
        if self.implicit_session is not None:
            session = self.implicit_session()
            if session is not None:
                return session
        return self.shared

    def close(self) -> None:
        """Close the shared connection and the pool."""
        with self._lock:
            if self._shared is not None:
                self._shared.close()
                self._shared = None
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            closer = getattr(self.dialect, "close", None)
            if closer is not None:
                closer()


_registry: dict[str, Database] = {}
_registry_lock = threading.Lock()


def init_mother(
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    name: str = "default",
    **settings: Any,
) -> Database:
    """Configure the database ``name`` from an INI file or mapping plus keyword settings.

    Calling it again for the same name replaces that database (closing its pool).
    """
    database = Database(name, make_settings(config, name, **settings))
    with _registry_lock:
        old = _registry.get(name)
        _registry[name] = database
    if old is not None:
        old.close()
    return database


def get_database(name: str = "default") -> Database:
    """The database configured under ``name``."""
    try:
        return _registry[name]
    except KeyError:
        raise ConfigError("database", name, "not configured: call init_mother() first") from None


def databases() -> list[Database]:
    """Every configured database."""
    with _registry_lock:
        return list(_registry.values())


def close_all() -> None:
    """Close every database and forget them."""
    with _registry_lock:
        dbs = list(_registry.values())
        _registry.clear()
    for database in dbs:
        database.close()


def resolve(database: str | Database) -> Database:
    return database if isinstance(database, Database) else get_database(database)
