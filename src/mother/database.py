"""Named databases: settings, dialect, pool and cached schema.

The registry of databases is the only global state of dbmother.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, overload

from . import events
from .config import Settings, make_settings
from .dialects import Dialect, Pool, PoolStatus, dialect_for
from .dialects.base import LazyPool
from .errors import ConfigError, StaleRecordError, add_note
from .replicas import Replicas, WalPosition, replicas_for
from .schema import Schema

log = logging.getLogger(__name__)

#: what a decorated commit phase returns
R = TypeVar("R")


class _ReadOnFirstUse:
    """:attr:`Database.schema`: read from the live database on first use; from then on the
    cached :class:`~mother.schema.Schema` is an attribute of the database's own (set by
    each reading), so that reading it, dozens of times per unit of work, costs no call."""

    @overload
    def __get__(self, database: None, owner: type | None = None) -> _ReadOnFirstUse: ...
    @overload
    def __get__(self, database: Database, owner: type | None = None) -> Schema: ...

    def __get__(self, database: Database | None, owner: type | None = None
                ) -> Schema | _ReadOnFirstUse:
        if database is None:  # the class's attribute (documentation tools)
            return self
        with database._lock:
            if database._schema is None:
                database._introspect()
        assert database._schema is not None
        return database._schema


class Database:
    """One configured database: what every session of it shares."""

    #: the schema, read from the live database on first use and cached
    schema = _ReadOnFirstUse()

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.dialect: Dialect = dialect_for(settings, name)
        #: the streaming replicas read-only sessions run on (None: no ``replicas`` setting)
        self.replicas: Replicas | None = replicas_for(settings, name, self.dialect)
        self._lock = threading.RLock()
        self._pool = LazyPool(self.dialect)
        self._schema: Schema | None = None
        #: the catalog's fingerprint when the cached schema was read (``schema_check``)
        self.schema_fingerprint: str | None = None
        #: ``time.time()`` when the cached schema was read
        self.schema_read_at: float | None = None
        #: ``time.monotonic()`` after which a session compares the fingerprint again
        self._schema_check_at = 0.0
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
        return self._pool.get()

    def getconn(self) -> Any:
        """A connection from the pool (reported as ``checkout``, after ``connect`` when
        the pool opened one for it)."""
        events.follow_logger()
        pool = self.pool
        return events.checkout(self.name, pool, pool.getconn)

    def putconn(self, conn: Any) -> None:
        """Give a connection back (reported as ``checkin``, then ``discard`` when the
        pool closed it)."""
        self.dialect.forget_session(conn)
        events.checkin(self.name, self.pool, conn)

    def status(self) -> PoolStatus:
        return self.pool.status()

    def refresh_schema(self) -> Schema:
        """Read the schema again (after DDL)."""
        with self._lock:
            return self._introspect()

    def _introspect(self, conn: Any = None) -> Schema:
        """Read the schema (on ``conn``, else on a pooled connection) and cache it; with
        ``schema_check`` on, the catalog's fingerprint first, so that a migration landing
        in between makes the next check read it again."""
        own = conn is None
        if own:
            conn = self.getconn()
        try:
            check = self.settings.schema_check
            fingerprint = self.dialect.schema_fingerprint(conn) if check else None
            schema = self.dialect.introspect(conn)
        finally:
            if own:
                self.putconn(conn)
        with self._lock:
            self._schema, self.schema_fingerprint = schema, fingerprint
            vars(self)["schema"] = schema  # read without a call from now on (_ReadOnFirstUse)
            self.schema_read_at = time.time()
            self._schema_check_at = time.monotonic() + (check or 0.0)
            self.builders.clear()
        log.debug("schema of %s: %d tables", self.name, len(schema.tables))
        return schema

    def schema_check_due(self) -> bool:
        """Whether the next session should compare the catalog's fingerprint (``schema_check``)."""
        return (self.settings.schema_check is not None and self._schema is not None
                and time.monotonic() >= self._schema_check_at)

    def check_schema(self, conn: Any) -> bool:
        """With ``schema_check`` on and the check due, compare the catalog's fingerprint
        on ``conn`` (idle, just taken from the pool) with the cached schema's and read the
        schema again on it when they differ. One round trip at most every
        ``schema_check`` seconds per process; whether the schema was read again."""
        if not self.schema_check_due():
            return False  # the common case: no lock, no round trip
        check = self.settings.schema_check
        assert check is not None
        with self._lock:  # one thread checks; the others go on with the cache meanwhile
            if time.monotonic() < self._schema_check_at:
                return False
            self._schema_check_at = time.monotonic() + check
        try:
            if self.dialect.schema_fingerprint(conn) == self.schema_fingerprint:
                return False
            log.info("schema of %s changed in the database: reading it again", self.name)
            self._introspect(conn)
        except Exception as error:  # the session's own work meets a real failure next
            log.warning("schema check of %s failed (%s): tried again in %s s", self.name,
                        error, check, exc_info=True)
            if not self.dialect.is_broken(conn):
                with contextlib.suppress(Exception):  # the session starts outside one
                    self.dialect.rollback(conn)
            return False
        return True

    def schema_suspect(self, error: BaseException) -> None:
        """A statement failed on a missing column or table: the cache may be older than
        a migration. Say so in ``error`` (a note) and check at the next session."""
        dialect = self.dialect
        if not (dialect.is_missing_column(error) or dialect.is_missing_table(error)):
            return
        age = "" if self.schema_read_at is None else \
            f" {time.time() - self.schema_read_at:.0f} s ago"
        if self.settings.schema_check is None:
            todo = (f"call get_database({self.name!r}).refresh_schema() in every process, "
                    "or set schema_check so that each notices a migration by itself")
        else:
            self._schema_check_at = 0.0  # check again at once
            todo = ("schema_check is on: this process compares the catalog again at its next "
                    "session and reads the schema again if it changed")
        add_note(error, f"database {self.name!r}: dbmother read its schema{age}; if a "
                        f"migration dropped or renamed this column or table since, {todo}")

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

    def committed(self, conn: Any) -> WalPosition | None:
        """After a commit on ``conn`` (of this database's primary): the WAL position it
        reached, where it was asked (a session keeps it as ``commit_position``), also
        remembered for measuring the replicas' lag."""
        position = self.dialect.commit_position(conn)
        if position is None:
            return None
        if self.replicas is not None:
            self.replicas.saw(position)
        return WalPosition(position)

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

    def forget_connections(self) -> None:
        """In a forked child: forget the parent's pools (the replicas' too) and check
        connections without closing them (closing would end the parent's connections on
        the server; they are kept referenced, never used), so that the child opens its
        own on first use. Settings, the schema cache and every hook stay."""
        self._lock = threading.RLock()  # another thread of the parent may have held it
        inherited.extend(self._pool.forget())
        if self.replicas is not None:
            inherited.extend(self.replicas.forget_connections())

    def close(self) -> None:
        """Close what the layers above keep (the shared connection), then the pool."""
        with self._lock:
            closers, self.on_close = self.on_close, []
            self.extensions.clear()
            for close in closers:
                close()
            self._pool.close()
            if self.replicas is not None:
                self.replicas.close()
            closer = getattr(self.dialect, "close", None)
            if closer is not None:
                closer()


_registry: dict[str, Database] = {}
_registry_lock = threading.Lock()
#: what a forked child inherited from its parent and must neither use nor close
inherited: list[Any] = []


def _after_fork_in_child() -> None:
    """A pre-fork server's worker starts with no connection of its parent's: each
    configured database opens its own pool on first use."""
    global _registry_lock
    _registry_lock = threading.Lock()
    for database in _registry.values():
        database.forget_connections()


os.register_at_fork(after_in_child=_after_fork_in_child)


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


@contextlib.contextmanager
def translated(database: Database, where: str) -> Iterator[None]:
    """An error raised inside is raised as what ``database``'s translators make of it
    (:meth:`Database.translate`) at ``where``, from it; unchanged when none answers."""
    try:
        yield
    except Exception as error:
        translation = database.translate(error, where)
        if translation is None:
            raise
        raise translation from error


def translating(phase: Callable[[Any, Any], R]) -> Callable[[Any, Any], R]:
    """Decorate a commit phase ``phase(self, txn)`` of a data manager (an object with a
    ``database``): an error it raises is :func:`translated` at the phase's name."""
    where = phase.__name__

    @functools.wraps(phase)
    def run(self: Any, txn: Any) -> R:
        # translated(), without a generator's context manager around every phase
        try:
            return phase(self, txn)
        except Exception as error:
            translation = self.database.translate(error, where)
            if translation is None:
                raise
            raise translation from error
    return run


def resolve(database: str | Database) -> Database:
    return database if isinstance(database, Database) else get_database(database)
