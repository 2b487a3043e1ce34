"""Records: one object per row, with Mother's flags and methods.

``class ClsStars(DbMother): table_name = "stars"`` is all a record class needs;
columns and keys come from the live schema.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

from . import sql, unitofwork
from .database import Database, get_database
from .errors import (
    ArgumentError,
    DeletedRecordError,
    MotherError,
    NotLoadedError,
    NotUniqueError,
    ParanoidError,
    PrimaryKeyError,
    SessionClosedError,
    StaleRecordError,
)
from .executor import STREAM_SIZE, Executor, RowStream, Transactional, executor_for, shared
from .schema import Table
from .sql import SQL_DEFAULT, InvalidLockError
from .unitofwork import DELETED, GONE, PENDING, PERSISTENT, TRANSIENT, Owner, UnitOfWork

log = logging.getLogger(__name__)

MO_NOA, MO_DEL, MO_UP, MO_SAVE, MO_LOAD = 0, 1, 2, 3, 4
MO_BEFORE, MO_AFTER = 0, 1
FLAG_NAMES = {MO_NOA: "MO_NOA", MO_DEL: "MO_DEL", MO_UP: "MO_UP", MO_SAVE: "MO_SAVE",
              MO_LOAD: "MO_LOAD"}


class DbMother:
    """A record of ``table_name``. ``DbMother(store=None, flag=MO_NOA, session=None)``.

    The flag acts at once: ``MO_SAVE`` inserts, ``MO_LOAD`` loads the one row
    matching the store, ``MO_UP`` updates by primary key, ``MO_DEL`` deletes
    the matching rows, ``MO_NOA`` does nothing. ``lock`` (with ``MO_LOAD``
    only) makes the load a locking read, see :meth:`load`.

    In a session that defers writes (the default with autoflush) an insert, and
    the update or delete of a loaded row, ride with the session's next round trip
    instead of going alone; reading an inserted record's values sends its INSERT
    first. ``defer_writes = False`` on a class sends its writes at once.
    """

    # the primary key is not kept apart: _mo_key reads it from the store
    __slots__ = ("_mo_store", "_mo_session", "_mo_dirty", "_mo_state", "__dict__",
                 "__weakref__")

    _mo_store: dict[str, Any]
    _mo_session: Owner | None
    #: the columns changed since the row was last written or loaded (None: none)
    _mo_dirty: set[str] | None
    #: TRANSIENT, PENDING, PERSISTENT, DELETED or GONE (mother.unitofwork)
    _mo_state: int

    table_name: ClassVar[str]
    #: the configured database of records created without a session
    mother_database: ClassVar[str] = "default"
    #: refuse updates and deletes without a full primary key
    paranoid: ClassVar[bool] = False
    #: let the session send this class's immediate writes with its next round trip
    #: (False: each is sent at once, alone)
    defer_writes: ClassVar[bool] = True

    def __new__(cls, store: Mapping[str, Any] | None = None, flag: int = MO_NOA,
                session: Owner | None = None, *args: Any, lock: str | None = None,
                **kwargs: Any) -> DbMother:
        cls._mo_check_arguments(store, session)
        if lock is not None and flag != MO_LOAD:
            raise InvalidLockError(f"lock={lock!r} needs flag MO_LOAD (a locking read)")
        if flag == MO_LOAD and store:
            session = session if session is not None else cls._mo_implicit()
            if session is not None and not session.closed:
                existing = cls._mo_probe(session, store)
                if existing is not None:
                    if lock is not None:
                        existing.load(lock=lock)
                    return existing
        return super().__new__(cls)

    def __init__(self, store: Mapping[str, Any] | None = None, flag: int = MO_NOA,
                 session: Owner | None = None, *, lock: str | None = None) -> None:
        if hasattr(self, "_mo_store"):
            return  # the identity map gave back an object this session already holds
        if session is None:
            session = self._mo_implicit()
        self._mo_session = session
        self._mo_state = TRANSIENT
        self._mo_store = {}
        self._mo_dirty = None
        self._mo_init_store(dict(store or {}))
        if lock is not None:
            self.load(lock=lock)
        else:
            self._mo_act(flag)

    # -- plumbing ------------------------------------------------------------------------
    @classmethod
    def _mo_check_arguments(cls, store: Any, session: Any) -> None:
        """Refuse, naming it, what a record cannot be made from."""
        if not isinstance(getattr(cls, "table_name", None), str):
            raise ArgumentError(f"record class {cls.__name__} has no table_name: write "
                                f"table_name = 'the_table' in its body")
        if session is not None and not isinstance(session, Transactional):
            raise ArgumentError(
                f"{cls.__name__}(session={session!r}): session must be a Session "
                "(MotherSession()) or None; a record of another database sets "
                "mother_database = 'name' on its class")
        if store is not None and type(store) is not dict and not isinstance(store, Mapping):
            raise ArgumentError(f"{cls.__name__}(store={store!r}): the store must be a mapping "
                                f"of column names to values, not {type(store).__name__}")

    @classmethod
    def _mo_implicit(cls) -> Owner | None:
        """The transaction's session for records created without one (``mother.tm.register``)."""
        database = get_database(cls.mother_database)
        provider = database.implicit_session
        return provider() if provider is not None else None

    def _mo_database(self) -> Database:
        session = self._mo_session
        return session.database if session is not None else get_database(self.mother_database)

    def _mo_table(self) -> Table:
        session = self._mo_session
        schema = (session.database if session is not None else get_database(
            self.mother_database)).schema
        # schema.table() only to raise UnknownTableError
        return schema.tables.get(self.table_name) or schema.table(self.table_name)

    def _mo_executor(self) -> Executor:
        session = self._mo_session
        if session is not None:
            if session.closed:
                self._mo_check_open()
            assert isinstance(session, Executor), "a session is an executor"
            return session
        return executor_for(self._mo_database())

    def _mo_check_open(self) -> None:
        """A record of an ended session refuses changes and queries (its values stay readable)."""
        session = self._mo_session
        if session is not None and session.closed:
            raise SessionClosedError(
                f"{self!r} lives in session {session.name!r}, which has ended: load the row "
                "again in an open session (or session.merge(record))")

    def _mo_uow(self) -> UnitOfWork[DbMother] | None:
        session = self._mo_session
        return session.uow if session is not None else None

    def _mo_init_store(self, store: dict[str, Any]) -> None:
        """Check and keep the initial values (MotherCaster cleans them here first)."""
        table = self._mo_table()
        table.check_fields(store)
        self._mo_store = store
        moved = {name for name in store if name not in table.primary_key}
        self._mo_dirty = moved or None

    def _mo_act(self, flag: int) -> None:
        if flag == MO_NOA:
            return
        if flag == MO_SAVE:
            self.insert()
        elif flag == MO_LOAD:
            self.load()
        elif flag == MO_UP:
            self.update()
        elif flag == MO_DEL:
            self.delete()
        else:
            raise MotherError(f"unknown flag {flag!r}: use MO_NOA, MO_SAVE, MO_LOAD, MO_UP "
                              "or MO_DEL")

    def _mo_primary_key(self, table: Table | None = None) -> tuple[Any, ...] | None:
        if table is None:  # _mo_table(), inlined: this runs for every key read
            session = self._mo_session
            schema = (session.database if session is not None else get_database(
                self.mother_database)).schema
            table = schema.tables.get(self.table_name) or schema.table(self.table_name)
        keys = table.primary_key
        store = self._mo_store
        if len(keys) == 1:  # most tables: no generator to run
            value = store.get(keys[0])
            return None if value is None or value is SQL_DEFAULT else (value,)
        key = tuple([store.get(name) for name in keys])
        if not keys or any(value is None or value is SQL_DEFAULT for value in key):
            return None
        return key

    _mo_key = property(_mo_primary_key, doc="The primary key, from the store: None until "
                       "every key column holds a value.")

    def _mo_touch(self) -> UnitOfWork[DbMother] | None:
        session = self._mo_session
        if session is None:
            return None
        if session.closed:
            self._mo_check_open()
        uow: UnitOfWork[DbMother] = session.uow
        uow.touch(self)
        return uow

    def _mo_deferring(self, what: str) -> UnitOfWork[Any] | None:
        """The unit of work that takes this record's immediate ``what`` for the session's
        next round trip, or None: sent now (no session, or it or the class opted out)."""
        session = self._mo_session
        if session is None or not self.defer_writes or not session.defer_writes:
            return None
        if session.closed:
            self._mo_check_open()
        if self.table_name in session.database.schema.cycles:
            return None  # a flush cannot order it: sent alone, as asked
        if session.readonly:
            session.check_writable(f"{what} of a {self.table_name} record")
        return session.uow

    def _mo_send_owed(self) -> None:
        """Send this record's deferred INSERT now: its key or values are being read."""
        if self._mo_state == PENDING:
            session = self._mo_session
            if session is not None and session.uow.owes_insert(self):
                session.flush()

    def _mo_is_paranoid(self) -> bool:
        return self.paranoid or self._mo_database().settings.paranoid

    def _mo_where(self, table: Table, what: str, exclude: Iterable[str] = ()) -> dict[str, Any]:
        """The filter of an update or delete: the primary key, else (not paranoid) the store."""
        key = self._mo_primary_key(table)
        if key is not None:
            return dict(zip(table.primary_key, key))
        if table.primary_key and self._mo_is_paranoid():
            raise ParanoidError(f"paranoid: refusing to {what} {table.name} without its "
                                f"primary key {list(table.primary_key)}")
        skip = set(exclude)
        where = {name: value for name, value in self._mo_store.items()
                 if name not in skip and value is not SQL_DEFAULT}
        if not where:
            raise PrimaryKeyError(f"cannot {what} {table.name}: no primary key and no other "
                                  "value to find the row by")
        return where

    @classmethod
    def _mo_probe(cls, session: Owner, store: Mapping[str, Any]) -> DbMother | None:
        """For ``MO_LOAD``: the object this session already holds for the matching row."""
        table = session.database.schema.table(cls.table_name)
        table.check_fields(store)
        keys = table.primary_key
        if not keys:
            return None
        if session.uow.owes_inserts_into(table.name):
            session.flush()  # a deferred insert may be the very row: map it first
        if all(store.get(name) is not None for name in keys):
            return session.uow.identity.get(table.name, tuple(store[name] for name in keys))
        if not session.uow.identity.holds(table.name):
            return None
        rows = cls.load_rows(session, dict(store), fields=keys)
        if len(rows) != 1:
            raise NotUniqueError(f"load {table.name}", len(rows))
        return session.uow.identity.get(table.name, tuple(rows[0][name] for name in keys))

    # -- building from rows (used by sessions and record sets) -----------------------------
    @classmethod
    def load_rows(cls, executor: Executor | Owner, filter: Any, fields: Iterable[str] | None = None,
                  order: Any = None, distinct: bool = False, lock: str | None = None
                  ) -> list[dict[str, Any]]:
        """Rows of this table matching ``filter`` (dict, MoFilter or trusted string),
        locked as ``lock`` says (a locking read is refused in a read-only session)."""
        if lock is not None:
            executor.check_writable(f"a locking read (lock={lock!r}) of {cls.table_name}")
        table = executor.database.schema.table(cls.table_name)
        text, params = sql.select(executor.database.dialect, table, fields, filter, order,
                                  distinct, lock)
        rows: list[dict[str, Any]] = executor.run(text, params, lambda cursor: cursor.fetchall())
        return rows

    @classmethod
    def from_row(cls, session: Owner | None, row: Mapping[str, Any]) -> DbMother:
        """The object for a loaded row: the one the session holds already, else a new one."""
        return next(cls.from_rows(session, (row,)))

    @classmethod
    def from_rows(cls, session: Owner | None,
                  rows: Iterable[Mapping[str, Any]]) -> Iterator[DbMother]:
        """The objects for loaded rows, in their order (see :meth:`from_row`).

        The table, its key and the identity map are looked up once for all rows, and a
        class that keeps DbMother's construction (no ``__new__``, ``__init__`` or
        ``_mo_init_store`` of its own, as MotherCaster has) gets its objects made
        without the checks a store given by hand needs: the columns are checked on the
        first row.
        """
        if session is None:
            session = cls._mo_implicit()
        database = session.database if session is not None else get_database(cls.mother_database)
        table = database.schema.table(cls.table_name)
        keys = table.primary_key
        uow = session.uow if session is not None else None
        identity = uow.identity if uow is not None and keys else None
        plain = (cls.__new__ is DbMother.__new__ and cls.__init__ is DbMother.__init__
                 and cls._mo_init_store is DbMother._mo_init_store)
        checked = not plain
        for row in rows:
            key = unitofwork.row_key(row, keys)
            if identity is not None and key is not None:
                found: DbMother | None = identity.get(table.name, key)
                if found is not None:
                    for name, value in row.items():
                        found._mo_store.setdefault(name, value)
                    yield found
                    continue
            if not plain:
                obj = cls(row, MO_NOA, session)  # the store is a copy of the row
                owner = obj._mo_session
                yield unitofwork.loaded(obj, owner.uow if owner is not None else None, ())
                continue
            if not checked:
                table.check_fields(row)
                checked = True
            obj = object.__new__(cls)
            obj._mo_session = session
            yield unitofwork.fresh(obj, uow, dict(row), key)

    # -- Mother's record methods -------------------------------------------------------------
    @property
    def session(self) -> Owner | None:
        """The session the record lives in (None: the shared connection)."""
        return self._mo_session

    def insert(self) -> None:
        """INSERT the store; the new primary key comes back into the store.

        Sent now, or, in a session that defers writes, with its next round trip
        (reading the record's key or values sends it at once).
        """
        table = self._mo_table()
        if self._mo_state == PENDING:
            # a second insert() of an immediate one still owed: the first goes now, and
            # this one after it, as both would have at once (another row, or the key's
            # violation)
            self._mo_send_owed()
        if self._mo_state in (TRANSIENT, PENDING, GONE):
            uow = self._mo_deferring("insert")
            if uow is not None:
                uow.defer(self, "insert")
                return
        uow = self._mo_touch()
        if uow is not None and self._mo_state == PENDING:
            uow.new.pop(id(self), None)  # written now rather than at the flush
        dialect = self._mo_database().dialect
        text, params = sql.insert(dialect, table, self._mo_store)
        try:
            with sql.naming_values(self._mo_store, dialect, table):
                row = self._mo_executor().run(text, params, lambda cursor: cursor.fetchone())
        except BaseException:
            if uow is not None:
                uow.sync(self)
            raise
        unitofwork.inserted(self, uow, row if table.primary_key else None)

    def update(self, updict: Mapping[str, Any] | None = None) -> None:
        """UPDATE the changed columns now (``updict`` is set first); never the primary key."""
        if self._mo_state == DELETED:
            raise DeletedRecordError(
                f"update of {self!r}: this session deletes its row (the DELETE is pending); "
                "nothing was changed")
        if updict:
            self.setFields(updict)
        session = self._mo_session
        if self._mo_state == PENDING and session is not None:
            if not session.uow.owes_insert(self):
                session.flush()
            return  # else the deferred INSERT carries the new values
        dirty = self._mo_dirty
        if not dirty:
            log.debug("%s: nothing to update", self.table_name)
            return
        table = self._mo_table()
        if self._mo_loaded(table):
            uow = self._mo_deferring("update")
            if uow is not None:
                uow.defer(self, "update")
                return
        values = {name: self._mo_store[name] for name in sorted(dirty)}
        loaded = self._mo_loaded(table)
        where = self._mo_where(table, "update", exclude=dirty)
        dialect = self._mo_database().dialect
        text, params = sql.update(dialect, table, values, where)
        uow = self._mo_touch()
        unitofwork.cleaned(self, uow)
        try:
            with sql.naming_values({**values, **where}, dialect, table):
                self._mo_change(text, params, loaded, "update")
        except BaseException:
            unitofwork.cleaned(self, uow, dirty)
            raise

    def delete(self) -> None:
        """DELETE the row (by primary key; without one, by every stored value): now, or for
        a loaded row in a session that defers writes, with its next round trip."""
        self._mo_send_owed()  # a row asked to be inserted is inserted before it is deleted
        table = self._mo_table()
        uow = self._mo_touch()
        if uow is not None and self._mo_state == PENDING:
            uow.delete(self)  # only queued: simply dropped
            return
        if uow is not None and self._mo_state == DELETED and id(self) in uow.owed:
            return  # its deferred DELETE is queued: another, at once, would change nothing
        if not self._mo_store:
            raise PrimaryKeyError(f"refusing to delete from {table.name} with an empty store")
        loaded = self._mo_loaded(table)
        if loaded and self._mo_state == PERSISTENT:
            deferring = self._mo_deferring("delete")
            if deferring is not None:
                deferring.defer(self, "delete")
                return
        where = self._mo_where(table, "delete")
        dialect = self._mo_database().dialect
        text, params = sql.delete(dialect, table, where)
        with sql.naming_values(where, dialect, table):
            self._mo_change(text, params, loaded, "delete")
        unitofwork.deleted(self, uow)

    def _mo_loaded(self, table: Table) -> bool:
        """Whether the record stands for a row it was loaded from (or stored as), by key."""
        return self._mo_state in (PERSISTENT, DELETED) and self._mo_primary_key(table) is not None

    def _mo_change(self, text: str, params: Any, loaded: bool, what: str) -> None:
        """Run an UPDATE or DELETE now; for a loaded row, matching none is stale."""
        count = self._mo_executor().run(text, params, lambda cursor: cursor.rowcount)
        if loaded and count == 0:
            key = self._mo_primary_key()
            assert key is not None, "a loaded record has its primary key (_mo_loaded)"
            raise StaleRecordError(self.table_name, key, what)

    def load(self, fields: Iterable[str] | None = None, lock: str | None = None
             ) -> dict[str, Any]:
        """SELECT the one row matching every stored value; returns the whole store.

        ``lock`` (``"update"``, ``"update nowait"``, ``"update skip locked"``,
        ``"share"``…) makes it a locking read of every column (or of ``fields``),
        which always goes to the database.
        """
        if self._mo_state == PENDING:
            self._mo_send_owed()
        table = self._mo_table()
        if not self._mo_store:
            raise PrimaryKeyError(f"cannot load {table.name} with an empty store")
        if fields is not None:
            wanted = list(fields)
            table.check_fields(wanted)
        elif lock is not None:
            wanted = list(table.columns)
        else:
            wanted = [name for name in table.columns if name not in self._mo_store]
        if not wanted:
            return self.getFields()
        select = list(dict.fromkeys([*table.primary_key, *wanted]))
        where = {name: value for name, value in self._mo_store.items()
                 if value is not SQL_DEFAULT}
        key = self._mo_primary_key(table)
        if self._mo_state in (PERSISTENT, DELETED) and key is not None:
            where = dict(zip(table.primary_key, key))
        with sql.naming_values(where, self._mo_database().dialect, table):
            rows = type(self).load_rows(self._mo_executor(), where, select, lock=lock)
        if len(rows) != 1:
            raise NotUniqueError(f"load {table.name} {where}", len(rows))
        unitofwork.loaded(self, self._mo_touch(), rows[0])
        return self.getFields()

    def getField(self, name: str, autoload: bool = False) -> Any:
        """The value of column ``name`` (loaded from the database first with ``autoload``);
        a deferred insert of the record is sent first."""
        if self._mo_state == PENDING:
            self._mo_send_owed()
        store = self._mo_store
        if name in store:
            return store[name]
        self._mo_table().column(name)
        if autoload:
            self.load([name])
            return store[name]
        raise NotLoadedError(f"{self.table_name}.{name} is not loaded (use autoload=True)")

    def getFields(self, fields: Iterable[str] | None = None,
                  autoload: bool = False) -> dict[str, Any]:
        """A copy of the store, or of the named columns (a deferred insert is sent first)."""
        if self._mo_state == PENDING:
            self._mo_send_owed()
        if fields is None:
            return dict(self._mo_store)
        names = list(fields)
        self._mo_table().check_fields(names)
        missing = [name for name in names if name not in self._mo_store]
        if missing and autoload:
            self.load(missing)
        return {name: self.getField(name) for name in names}

    def setField(self, name: str, value: Any) -> None:
        """Change a column; the session writes it at the next flush (or call ``update()``)."""
        table = self._mo_table()
        if type(name) is not str or name not in table.columns:
            table.column(name)  # UnknownFieldError for a name that is not a column
        keyed = name in table.primary_key
        if keyed and self._mo_state == PENDING:
            self._mo_send_owed()  # the key of a row asked to be inserted is fixed
        if keyed and self._mo_state not in (TRANSIENT, PENDING):
            raise PrimaryKeyError(f"refusing to change primary key {table.name}.{name}")
        store = self._mo_store
        if name in store and store[name] is value:
            return
        uow = self._mo_touch()
        store[name] = value
        if not keyed:
            unitofwork.changed(self, uow, name)

    def setFields(self, mapping: Mapping[str, Any]) -> None:
        """``setField`` for each item (all names are checked first)."""
        self._mo_table().check_fields(mapping)
        for name, value in mapping.items():
            self.setField(name, value)

    # -- transactions and raw queries, as in Mother ------------------------------------------
    def beginTrans(self) -> None:
        """Shared connection: open a (nested) transaction. Ignored in a session."""
        if self._mo_session is None:
            shared(self._mo_database()).beginTrans()

    def commit(self) -> None:
        """Shared connection: commit (the outermost level only). Ignored in a session."""
        if self._mo_session is None:
            shared(self._mo_database()).commit()

    def rollback(self) -> None:
        """Shared connection: roll back every level. Ignored in a session."""
        if self._mo_session is None:
            shared(self._mo_database()).rollback()

    def oc_query(self, text: Any, params: Any = None) -> None:
        return self._mo_executor().oc_query(text, params)

    def ov_query(self, text: Any, params: Any = None) -> Any:
        return self._mo_executor().ov_query(text, params)

    def or_query(self, text: Any, params: Any = None) -> dict[str, Any]:
        return self._mo_executor().or_query(text, params)

    def mr_query(self, text: Any, params: Any = None) -> list[dict[str, Any]]:
        return self._mo_executor().mr_query(text, params)

    def stream_query(self, text: Any, params: Any = None,
                     size: int = STREAM_SIZE) -> RowStream:
        return self._mo_executor().stream_query(text, params, size)

    def mq_query(self, text: Any, seq: Any) -> None:
        return self._mo_executor().mq_query(text, seq)

    def mg_query(self, text: Any, seq: Any) -> list[dict[str, Any]]:
        return self._mo_executor().mg_query(text, seq)

    def __str__(self) -> str:
        dirty = self._mo_dirty or ()
        lines = [f"Table |{self.table_name}|"]
        for name in self._mo_table().columns:
            value = self._mo_store.get(name, "Unset")
            lines.append(f"  {name} {'*' if name in dirty else '~'} {value}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        try:
            shown = self._mo_key or self._mo_store
        except MotherError:  # its database is gone: no schema to read the key by
            shown = self._mo_store
        return f"<{type(self).__name__} {self.table_name} {shown}>"


class MotherFly(DbMother):
    """A record class made at run time for a table (``getMotherBuilder``)."""


def getMotherBuilder(table: str, database: str | Database = "default") -> type[DbMother]:
    """A record class for ``table``, without writing one."""
    db = database if isinstance(database, Database) else get_database(database)
    builders = db.builders
    builder = builders.get(table)
    if builder is None:
        db.schema.table(table)  # UnknownTableError for a table that does not exist
        name = "".join(part.capitalize() for part in table.split("_")) or "Table"
        builder = type(f"MotherFly{name}", (MotherFly,),
                       {"table_name": table, "mother_database": db.name, "__slots__": ()})
        builders[table] = builder
    return builder


def getMotherObj(table: str, store: Mapping[str, Any] | None = None, flag: int = MO_NOA,
                 session: Owner | None = None) -> DbMother:
    """A record of ``table`` without a class: ``getMotherBuilder(table)(store, flag, session)``."""
    database = session.database if session is not None else get_database()
    return getMotherBuilder(table, database)(store, flag, session)


def builder_for(thing: Any, database: str | Database = "default") -> type[DbMother]:
    """A record class from a class, a record or a table name."""
    if isinstance(thing, str):
        return getMotherBuilder(thing, database)
    if isinstance(thing, DbMother):
        return type(thing)
    if isinstance(thing, type) and issubclass(thing, DbMother):
        return thing
    raise ArgumentError(f"expected a DbMother class, a record or a table name, not {thing!r}")
