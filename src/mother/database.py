"""Named databases: settings, dialect, pool and cached schema.

The registry of databases is the only global state of dbmother.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from . import events
from .config import Settings, make_settings
from .dialects import Dialect, Pool, PoolStatus, dialect_for
from .errors import ConfigError, StaleRecordError
from .replicas import Replicas, replicas_for
from .schema import Schema

log = logging.getLogger(__name__)

#: what a decorated commit phase returns
R = TypeVar("R")


class Database:
    """One configured database: what every session of it shares."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.dialect: Dialect = dialect_for(settings, name)
        #: the streaming replicas read-only sessions run on (None: no ``replicas`` setting)
        self.replicas: Replicas | None = replicas_for(settings, name, self.dialect)
        self._lock = threading.RLock()
        self._pool: Pool | None = None
        self._schema: Schema | None = None
        #: what the layers above keep per database, by type (the shared connection…)
        self.extensions: dict[type, Any] = {}
        #: called by :meth:`close` before the pool closes (to close what they keep)
        self.on_close: list[Callable[[], None]] = []
        self._twophase: bool | None = None
        #: record classes made by getMotherBuilder(), by table name
        self.builders: dict[str, type] = {}
        #: called with every new session (``mother.tm.register`` joins it to the transaction)
        self.session_hooks: list[Callable[[Any], None]] = []
        #: the one way an adapter translates errors: each is called as ``translator(error,
        #: where)`` for an error of a session's statement (``where`` is ``"statement"``) or
        #: of a commit phase of its data manager (``"tpc_begin"``, ``"tpc_vote"``); the
        #: first that returns an exception has it raised from the error (see
        #: :meth:`translate`). ``mother.zope`` makes transient ones retryable.
        self.error_translators: list[Callable[[BaseException, str], BaseException | None]] = []
        #: gives the session of records created without one (``mother.tm.register``),
        #: or None to use the shared connection
        self.implicit_session: Callable[[], Any] | None = None

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

    def is_transient(self, error: BaseException) -> bool:
        """Whether retrying the whole transaction may succeed: a :class:`StaleRecordError`,
        or what the dialect calls transient (PostgreSQL's SQLSTATE class 40: serialization
        failures and deadlocks; SQLite's "database is locked").

        The one answer dbmother gives: the data manager's ``should_retry``,
        ``mother.pyramid`` and ``mother.zope`` all ask here.
        """
        return isinstance(error, StaleRecordError) or self.dialect.is_transient(error)

    def translate(self, error: BaseException, where: str) -> BaseException | None:
        """What the first of :attr:`error_translators` that answers makes of ``error``
        raised at ``where`` (None: it is raised unchanged)."""
        for translator in self.error_translators:
            translated = translator(error, where)
            if translated is not None:
                return translated
        return None

    def close(self) -> None:
        """Close what the layers above keep (the shared connection), then the pool."""
        with self._lock:
            closers, self.on_close = self.on_close, []
            self.extensions.clear()
            for close in closers:
                close()
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            if self.replicas is not None:
                self.replicas.close()
            closer = getattr(self.dialect, "close", None)
            if closer is not None:
                closer()


_registry: dict[str, Database] = {}
_registry_lock = threading.Lock()


def check_settings(
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    name: str = "default",
    **settings: Any,
) -> Settings:
    """The settings :func:`~mother.init_mother` would use, checked as it checks them (the DSN's
    form too, by its dialect) without configuring anything or connecting: for adapters
    that read settings at startup or from a form."""
    checked = make_settings(config, name, **settings)
    replicas_for(checked, name, dialect_for(checked, name))
    return checked


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


def is_transient(error: BaseException, among: Iterable[Database] | None = None) -> bool:
    """Whether any of the databases (default: every configured one) calls ``error``
    transient (:meth:`Database.is_transient`): for code that does not know which
    database raised it, such as a retry tween or a view decorator."""
    if isinstance(error, StaleRecordError):
        return True
    return any(database.is_transient(error)
               for database in (databases() if among is None else among))


def translating(phase: Callable[[Any, Any], R]) -> Callable[[Any, Any], R]:
    """Decorate a commit phase ``phase(self, txn)`` of a data manager (an object with a
    ``database``): an error it raises is raised as what that database's translators make
    of it (:meth:`Database.translate`, ``where`` being the phase's name), from it."""
    @functools.wraps(phase)
    def run(self: Any, txn: Any) -> R:
        try:
            return phase(self, txn)
        except Exception as error:
            translated = self.database.translate(error, phase.__name__)
            if translated is None:
                raise
            raise translated from error
    return run


def resolve(database: str | Database) -> Database:
    return database if isinstance(database, Database) else get_database(database)
