"""The unit of work of a session: identity map, change tracking, journal and batched flush.

Every change of a record's state is made here (records and sessions call the
functions and methods below)::

    TRANSIENT --persist()--> PENDING --flush--> PERSISTENT --delete()--> DELETED --flush--> GONE
        |                      |                 ^   (setField: dirty; update()/flush: clean)
        |                      +--delete()--> TRANSIENT
        +--insert()/load() (now, MO_SAVE/MO_LOAD)-+   PERSISTENT --delete() now--> GONE
                                             GONE --persist()--> PENDING; --load()--> PERSISTENT

An immediate write (``MO_SAVE``/``insert()``, ``MO_UP``/``update()``,
``MO_DEL``/``delete()`` of a loaded row) in a session that defers writes makes
the same move as ``persist()`` or ``setField()`` or ``session.delete()`` and is
*owed*: it rides with the session's next round trip (a query, a flush, the
COMMIT), and reading an owed insert's values sends it first (:meth:`UnitOfWork.defer`).

A journal keeps, per transaction and per savepoint, the state each touched
object had before it was first changed there; rolling back restores it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from . import bulk, sql
from .database import Database
from .dialects.base import BatchResult, RowNotChangedError, T
from .errors import PrimaryKeyError, SessionConflictError, StaleRecordError, add_note
from .executor import Statement
from .schema import Table
from .sql import SQL_DEFAULT

TRANSIENT, PENDING, PERSISTENT, DELETED, GONE = range(5)
Snapshot = tuple[int, dict[str, Any], Any]
#: the identity map sweeps out dead entries once this many, and half its entries, died
SWEEP_MIN = 1024
#: the state an immediate write deferred (:meth:`UnitOfWork.defer`) puts its record in
_DEFERRED = {"insert": PENDING, "update": PERSISTENT, "delete": DELETED}


class Owner(Protocol):
    """The session records live in, as records and the unit of work see it (a
    :class:`~mother.session.Session`; this module and the records sit below it)."""

    database: Database
    name: str
    readonly: bool
    uow: UnitOfWork[Any]

    @property
    def closed(self) -> bool: ...
    def check_writable(self, what: str) -> None: ...
    def run(self, sql: str, params: Any, fetch: Callable[[Any], Any]) -> Any: ...
    def run_many(self, sql: str, seq: Sequence[Any], returning: bool) -> list[Any]: ...
    def run_while(self, sql: str, params: Any, fetch: Callable[[Any], Any],
                  meanwhile: Callable[[], T]) -> tuple[Any, T]: ...
    def run_copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> int: ...
    def batch(self, statements: list[Statement], commit: bool = False,
              must_change: Collection[int] = (), gid: str | None = None
              ) -> list[BatchResult]: ...
    def start_batch(self, statements: list[Statement], commit: bool = False,
                    must_change: Collection[int] = (), gid: str | None = None
                    ) -> Callable[[], list[BatchResult]]: ...
    def failed(self, error: BaseException) -> None: ...
    def flush(self) -> None: ...

    #: whether immediate writes wait for the next round trip (:meth:`UnitOfWork.defer`)
    defer_writes: bool


class Tracked(Protocol):
    """A record as the unit of work sees it (a :class:`~mother.records.DbMother`)."""

    _mo_state: int
    _mo_store: dict[str, Any]
    _mo_dirty: set[str] | None
    _mo_session: Owner | None

    @property
    def table_name(self) -> str: ...
    @property
    def _mo_key(self) -> tuple[Any, ...] | None: ...


#: the record type a unit of work holds
R = TypeVar("R", bound=Tracked)


def _bare(key: tuple[Any, ...]) -> Any:
    return key[0] if len(key) == 1 else key


class _Deaths:
    """Counts the deaths of an identity map's objects (the callback of its references)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, ref: weakref.ref[Any]) -> None:
        self.count += 1


class IdentityMap(Generic[R]):
    """One object per row: per table, primary key -> a weak reference to the object.

    Keys are given as tuples and kept bare: a one-column key is the value
    itself, the very object the record's store holds, so an entry costs a dict
    slot and a plain ``weakref.ref``, nothing else. A dying object does not
    remove its entry (that would take a reference that knows its key); the one
    shared callback only counts the deaths. Lookups treat a dead entry as
    absent, a new object for the row replaces it, and once half the entries may
    be dead the map sweeps them out: its size stays proportional to the objects
    alive, at a cost amortised over the deaths.
    """

    def __init__(self) -> None:
        self.tables: dict[str, dict[Any, weakref.ref[R]]] = {}
        self.entries = 0
        #: the callback of every reference; it holds no reference to the map, so a map
        #: (and its session) is freed when unused, without a cyclic collection
        self._died = _Deaths()

    @property
    def dead(self) -> int:
        """Entries whose object died since the last sweep (an upper bound)."""
        return self._died.count

    @dead.setter
    def dead(self, count: int) -> None:
        self._died.count = count

    def get(self, table: str, key: Any) -> R | None:
        """The live object of the row ``key`` (a tuple) of ``table``, or None."""
        rows = self.tables.get(table)
        ref = rows.get(_bare(key)) if rows is not None else None
        return ref() if ref is not None else None

    def add(self, table: str, key: Any, obj: R) -> None:
        """Map the row ``key`` of ``table`` to ``obj`` (replacing a dead or other entry)."""
        rows = self.tables.get(table)
        if rows is None:
            rows = self.tables[table] = {}
        key = _bare(key)
        ref = rows.get(key)
        if ref is None:
            self.entries += 1
        elif ref() is obj:
            return
        rows[key] = weakref.ref(obj, self._died)
        dead = self._died.count
        if dead >= SWEEP_MIN and 2 * dead >= self.entries:
            self.sweep()

    def discard(self, table: str, key: Any, obj: R) -> None:
        """Unmap the row ``key`` of ``table`` if it maps to ``obj`` (or to a dead object)."""
        rows = self.tables.get(table)
        key = _bare(key)
        if rows is None:
            return
        ref = rows.get(key)
        if ref is not None and (ref() is obj or ref() is None):
            del rows[key]
            self.entries -= 1

    def holds(self, table: str) -> bool:
        """Whether some live object of ``table`` is mapped."""
        return any(ref() is not None for ref in self.tables.get(table, {}).values())

    def objects(self) -> list[R]:
        return [obj for rows in self.tables.values() for ref in list(rows.values())
                if (obj := ref()) is not None]

    def sweep(self) -> None:
        """Drop the entries of dead objects; the dicts are rebuilt at their new size."""
        self.entries = self.dead = 0
        for table, rows in list(self.tables.items()):
            kept = {key: ref for key, ref in rows.items() if ref() is not None}
            if kept:
                self.tables[table] = kept
            else:
                del self.tables[table]
            self.entries += len(kept)


def snapshot(obj: R) -> Snapshot:
    dirty = obj._mo_dirty
    return (obj._mo_state, dict(obj._mo_store), set(dirty) if dirty else None)


# -- the record state transitions of statements run now (a record's flags and methods) or
# -- in a flush; ``uow`` is the unit of work of the record's session (None without one)
def inserted(obj: R, uow: UnitOfWork[R] | None, row: Any) -> None:
    """The INSERT of ``obj`` ran: defaults are the database's now, the key read back
    (``row``) is stored, nothing is dirty: PERSISTENT."""
    if uow is not None:
        uow.touch(obj)
    store = obj._mo_store
    for name in [name for name, value in store.items() if value is SQL_DEFAULT]:
        del store[name]
    if row:
        store.update(row)
    obj._mo_state = PERSISTENT
    obj._mo_dirty = None
    if uow is not None:
        uow.sync(obj)


def deleted(obj: R, uow: UnitOfWork[R] | None) -> None:
    """The DELETE of ``obj``'s row ran: GONE, and no longer the object of its row."""
    if uow is not None:
        uow.touch(obj)
    obj._mo_state = GONE
    if uow is not None:
        uow.sync(obj)
        key = obj._mo_key
        if key is not None:
            uow.identity.discard(obj.table_name, key, obj)


def loaded(obj: R, uow: UnitOfWork[R] | None, row: Any) -> R:
    """``obj``'s row was read (``row``, its values): stored, clean, PERSISTENT; in a
    session the object already mapped for the row wins (it is returned)."""
    obj._mo_store.update(row)
    obj._mo_dirty = None
    if obj._mo_state in (TRANSIENT, GONE):
        obj._mo_state = PERSISTENT
    return uow.adopt(obj) if uow is not None else obj


def row_key(row: Mapping[str, Any], keys: Sequence[str]) -> tuple[Any, ...] | None:
    """The primary key ``keys`` of a row read from the database (None: the table has no
    key, or the row lacks a value for one of its columns)."""
    if not keys:
        return None
    key = tuple(row.get(name) for name in keys)
    return None if None in key else key


def fresh(obj: R, uow: UnitOfWork[R] | None, store: dict[str, Any],
          key: tuple[Any, ...] | None) -> R:
    """A new ``obj`` for a row just read that no object of ``uow`` holds (``store``, its
    values; ``key``, its primary key): clean, PERSISTENT, mapped under its key."""
    obj._mo_store = store
    obj._mo_dirty = None
    obj._mo_state = PERSISTENT
    if uow is not None and key is not None:
        uow.identity.add(obj.table_name, key, obj)
    return obj


def changed(obj: R, uow: UnitOfWork[R] | None, name: str) -> None:
    """Column ``name`` of ``obj`` was set: dirty (written at the next flush or update)."""
    if obj._mo_dirty is None:
        obj._mo_dirty = {name}
    else:
        obj._mo_dirty.add(name)
    if uow is not None and obj._mo_state == PERSISTENT:
        uow.dirty[id(obj)] = obj


def cleaned(obj: R, uow: UnitOfWork[R] | None, dirty: set[str] | None = None) -> None:
    """``obj``'s changes were written (an UPDATE ran): clean; with ``dirty``, the UPDATE
    failed and those columns are dirty again."""
    obj._mo_dirty = dirty
    if uow is not None:
        uow.sync(obj)


def _values_of(statement: Statement) -> Mapping[str, Any]:
    """The values of a one-run statement's parameters, by name (or place)."""
    params: Any = statement[1][0] if statement[1] else None
    if isinstance(params, Mapping):
        return params
    return {str(place): value for place, value in enumerate(params or ())}


class UnitOfWork(Generic[R]):
    def __init__(self, session: Owner) -> None:
        # weak: the session owns its unit of work, and with no cycle between them both
        # are freed as soon as they are unused, without a cyclic collection
        self._session = weakref.ref(session)
        #: the session's database (a session keeps its database)
        self.database: Database = session.database
        self.identity: IdentityMap[R] = IdentityMap()
        self.new: dict[int, R] = {}
        self.dirty: dict[int, R] = {}
        self.deleted: dict[int, R] = {}
        #: the immediate writes waiting for the next round trip (each also in new, dirty or
        #: deleted); see :meth:`defer`
        self.owed: dict[int, R] = {}
        #: no owed write is placed after this (see :meth:`defer`; a bound: it stays when
        #: some are written); None: not known, since an owed object changed otherwise
        self._owed_bound: tuple[int, int] | None = None
        self._deferring = False
        #: the journal: per transaction and savepoint, each touched object's earlier state;
        #: weak, so an object nobody holds any more is simply forgotten
        self.frames: list[weakref.WeakKeyDictionary[R, Snapshot]] = [
            weakref.WeakKeyDictionary()]

    @property
    def session(self) -> Owner:
        """The session this unit of work belongs to."""
        session = self._session()
        assert session is not None, "a unit of work lives as long as its session"
        return session

    # -- bookkeeping -----------------------------------------------------------------------
    def has_pending(self) -> bool:
        return bool(self.new or self.dirty or self.deleted)

    def touch(self, obj: R) -> None:
        """Remember ``obj`` as it is now, before its first change in the current frame."""
        frame = self.frames[-1]
        if obj not in frame:
            frame[obj] = snapshot(obj)

    def sync(self, obj: R) -> None:
        """Put ``obj`` in the collection its state calls for, and in the identity map."""
        key = id(obj)
        state = obj._mo_state
        new, dirty, deleted, owed = self.new, self.dirty, self.deleted, self.owed
        if state == PENDING:
            new[key] = obj
        else:
            new.pop(key, None)
        if state == PERSISTENT and obj._mo_dirty:
            dirty[key] = obj
        else:
            dirty.pop(key, None)
        if state == DELETED:
            deleted[key] = obj
        else:
            deleted.pop(key, None)
        if owed and not (key in new or key in dirty or key in deleted):
            owed.pop(key, None)  # written, dropped or rolled back: owed no more
        elif key in owed and not self._deferring:
            self._owed_bound = None  # an owed write changed: its place is not known now
        ident = obj._mo_key
        if ident is not None:
            if state in (PERSISTENT, DELETED):
                self.identity.add(obj.table_name, ident, obj)
            else:
                self.identity.discard(obj.table_name, ident, obj)

    def own(self, obj: R) -> None:
        """Bind ``obj`` to this session, refusing objects of another live session."""
        other = obj._mo_session
        if other is not None and other is not self.session and not other.closed:
            raise SessionConflictError(
                f"{obj.table_name} record belongs to session {other.name!r}, not "
                f"{self.session.name!r}: use merge() to copy it")
        obj._mo_session = self.session

    def persist(self, obj: R) -> None:
        """``session.persist(obj)``: a new (or deleted) object is queued for insertion;
        a stored one is simply tracked."""
        self.own(obj)
        self.touch(obj)
        if obj._mo_state in (TRANSIENT, GONE):
            obj._mo_state = PENDING
        self.sync(obj)

    def delete(self, obj: R) -> None:
        """``session.delete(obj)``: queued for deletion; a pending insert is dropped (an owed
        one, asked for by an immediate insert, is sent first)."""
        if self.owes_insert(obj):
            self.session.flush()
        self.own(obj)
        self.touch(obj)
        if obj._mo_state == PENDING:
            obj._mo_state = TRANSIENT
        elif obj._mo_state in (PERSISTENT, TRANSIENT):
            obj._mo_state = DELETED
        self.sync(obj)

    def defer(self, obj: R, what: str) -> None:
        """Queue the immediate ``what`` (``"insert"``, ``"update"`` or ``"delete"``) of ``obj``
        for the session's next round trip instead of sending it alone.

        The flush has its own order (see :meth:`flush`): if it would send this write
        before an owed one asked for earlier, and the order can change what happens
        (:meth:`_overtakes`), the owed writes are flushed first.
        """
        place = self._place(obj, _DEFERRED[what])
        bound = self._owed_bound
        # placed after every owed write (or beside them, not as updates): it overtakes
        # none, and a loop of MO_SAVEs costs no scan of the writes owed before it
        behind = bound is not None and (place > bound or (place == bound and place[0] != 1))
        if self.owed and not behind and any(self._overtakes(obj, place, owed)
                                            for owed in self.owed.values() if owed is not obj):
            self.session.flush()
        if not self.owed:
            bound = place
        elif bound is not None:
            bound = max(bound, place)
        self.touch(obj)
        if what == "insert":
            obj._mo_state = PENDING
        elif what == "delete":
            obj._mo_state = DELETED
        self.owed[id(obj)] = obj
        self._deferring = True
        try:
            self.sync(obj)
        finally:
            self._deferring = False
        self._owed_bound = bound

    def _place(self, obj: R, state: int) -> tuple[int, int]:
        """Where the flush sends a write of ``obj`` in ``state``: inserts parents first,
        then updates, then deletes children first."""
        rank = self.database.schema.rank(obj.table_name)
        if state == PENDING:
            return (0, rank)
        if state == PERSISTENT:
            return (1, 0)
        if state == DELETED:
            return (2, -rank)
        raise KeyError(state)

    def _overtakes(self, obj: R, place: tuple[int, int], owed: R) -> bool:
        """Whether flushing ``obj``'s write (at ``place``) with the earlier ``owed`` one can
        end otherwise than sending them in turn: the flush sends it first (or, for two
        updates of one table, in an order of its own) and both touch the same table, or
        tables one foreign key links where a delete is involved or the owed update
        changes the key's columns."""
        other = self._place(owed, owed._mo_state)
        if place > other or (place == other and (place[0] != 1
                                                 or owed.table_name != obj.table_name)):
            return False
        if owed.table_name == obj.table_name:
            return True
        schema = self.database.schema
        # the columns of the owed row's table each linking foreign key uses
        links = [fk.ref_columns for fk in schema.table(obj.table_name).foreign_keys
                 if fk.ref_table == owed.table_name]
        links += [fk.columns for fk in schema.table(owed.table_name).foreign_keys
                  if fk.ref_table == obj.table_name]
        if place[0] == 2 or other[0] == 2:
            return bool(links)
        dirty = owed._mo_dirty or set()
        return any(dirty.intersection(columns) for columns in links)

    def owes_insert(self, obj: R) -> bool:
        """Whether ``obj``'s immediate INSERT is still waiting for the next round trip."""
        return obj._mo_state == PENDING and id(obj) in self.owed

    def owes_inserts_into(self, table: str) -> bool:
        """Whether an owed INSERT into ``table`` waits (a row the identity map lacks yet)."""
        return any(obj._mo_state == PENDING and obj.table_name == table
                   for obj in self.owed.values())

    def adopt(self, obj: R) -> R:
        """Register a freshly loaded ``obj``; an object already mapped for its row wins."""
        key = obj._mo_key
        if key is not None:
            existing = self.identity.get(obj.table_name, key)
            if existing is not None and existing is not obj:
                for name, value in obj._mo_store.items():
                    existing._mo_store.setdefault(name, value)
                return existing
        obj._mo_state = PERSISTENT
        self.sync(obj)
        return obj

    def tracks(self, obj: R) -> bool:
        """Whether ``obj`` is pending here or is the mapped object of its row."""
        ident = id(obj)
        if ident in self.new or ident in self.dirty or ident in self.deleted:
            return True
        key = obj._mo_key
        return key is not None and self.identity.get(obj.table_name, key) is obj

    def forget(self, obj: R) -> None:
        """Detach ``obj``: no longer tracked, its pending changes dropped from the session."""
        obj._mo_state = TRANSIENT if obj._mo_state == PENDING else obj._mo_state
        for collection in (self.new, self.dirty, self.deleted, self.owed):
            collection.pop(id(obj), None)
        key = obj._mo_key
        if key is not None:
            self.identity.discard(obj.table_name, key, obj)
        for frame in self.frames:
            frame.pop(obj, None)
        obj._mo_session = None

    def objects(self) -> Iterator[R]:
        yield from self.identity.objects()
        yield from list(self.new.values())

    # -- journal -----------------------------------------------------------------------
    def push(self) -> None:
        self.frames.append(weakref.WeakKeyDictionary())

    def release(self) -> None:
        """The innermost frame succeeded: its snapshots move to the enclosing frame."""
        frame = self.frames.pop()
        parent = self.frames[-1]
        for obj, entry in list(frame.items()):
            if obj not in parent:
                parent[obj] = entry

    def restore(self) -> None:
        """The innermost frame failed: every object it touched goes back as it was."""
        frame = self.frames.pop()
        for obj, (state, store, dirty) in list(frame.items()):
            key = obj._mo_key
            obj._mo_state, obj._mo_store, obj._mo_dirty = state, store, dirty
            if key is not None and key != obj._mo_key:
                self.identity.discard(obj.table_name, key, obj)
            self.sync(obj)
        if not self.frames:
            self.push()

    def rollback_all(self) -> None:
        while len(self.frames) > 1:
            self.restore()
        self.restore()

    def commit(self) -> None:
        self.frames = [weakref.WeakKeyDictionary()]

    # -- flush -----------------------------------------------------------------------------
    def flush(self, commit: bool = False, riding: Statement | None = None,
              gid: str | None = None) -> BatchResult | None:
        """Write everything pending: inserts parents first, deletes children first, batched.

        Nothing changes on the objects unless the whole batch succeeded; with
        ``commit`` the batch ends with COMMIT, with ``gid`` with ``PREPARE
        TRANSACTION``. An update or delete that matches no
        row (another transaction deleted it) raises :class:`StaleRecordError` and
        commits nothing. ``riding``, a statement sent last in the batch (the query
        that wanted the flush), gives its result back.
        """
        if not self.has_pending():
            return None
        return self.start_flush(commit, riding, gid, later=False)()

    def start_flush(self, commit: bool = False, riding: Statement | None = None,
                    gid: str | None = None, later: bool = True
                    ) -> Callable[[], BatchResult | None]:
        """:meth:`flush` (something must be pending), sent now; with ``later`` its results
        are left waiting (see :meth:`mother.executor.Executor.start_batch`). What it
        returns reads them and applies them to the objects: call it, once, whatever
        happens."""
        schema = self.database.schema
        dialect = self.database.dialect
        statements: list[tuple[str, list[dict[str, Any]], bool]] = []
        appliers: list[Any] = []
        #: the updates and deletes by key, by statement index: each must change its row
        checked: dict[int, tuple[str, list[R]]] = {}

        groups: dict[tuple[Any, ...], list[R]] = {}
        for obj in self.new.values():
            columns = tuple(name for name, value in obj._mo_store.items()
                            if value is not SQL_DEFAULT)
            groups.setdefault((obj.table_name, columns), []).append(obj)
        schema.check_acyclic({table for table, _ in groups})
        #: groups inserted by COPY (:mod:`mother.bulk`): each sent when its turn comes
        bulky: dict[int, tuple[Table, tuple[str, ...], list[R]]] = {}
        for (table_name, columns), objs in sorted(groups.items(),
                                                  key=lambda item: schema.rank(item[0][0])):
            table = schema.table(table_name)
            returning = table.primary_key
            if len(objs) >= bulk.BULK_ROWS and dialect.can_copy and columns:
                bulky[len(statements)] = (table, columns, objs)
                statements.append(("", [], False))  # its place; the rows go by COPY
                appliers.append((self._inserted, objs, returning))
                continue
            statements.append((
                sql.template(dialect, table, "insert", columns, returning=returning),
                [sql.template_params(columns, (), obj._mo_store) for obj in objs],
                bool(returning)))
            appliers.append((self._inserted, objs, returning))

        updates: dict[tuple[Any, ...], list[R]] = {}
        for obj in self.dirty.values():
            updates.setdefault((obj.table_name, tuple(sorted(obj._mo_dirty or ()))), []).append(obj)
        for (table_name, columns), objs in updates.items():
            table = schema.table(table_name)
            known = [obj._mo_key for obj in objs]
            keys = self._require_key(table, known, "update")
            rows = [(obj._mo_store, key or ()) for obj, key in zip(objs, known)]
            checked[len(statements)] = ("update", objs)
            group = bulk.update_rows(dialect, table, columns, keys, rows)
            statements.append((group[0], [group[1]], False) if group is not None else (
                sql.template(dialect, table, "update", columns, keys),
                [sql.template_params(columns, keys, values, dict(zip(keys, key)))
                 for values, key in rows],
                False))
            appliers.append((self._updated, objs, ()))

        deletes: dict[str, list[R]] = {}
        for obj in self.deleted.values():
            deletes.setdefault(obj.table_name, []).append(obj)
        schema.check_acyclic(deletes)
        for table_name, objs in sorted(deletes.items(), key=lambda item: -schema.rank(item[0])):
            table = schema.table(table_name)
            known = [obj._mo_key for obj in objs]
            keys = self._require_key(table, known, "delete")
            checked[len(statements)] = ("delete", objs)
            statements.append((
                sql.template(dialect, table, "delete", (), keys),
                [sql.template_params((), keys, {}, dict(zip(keys, key or ()))) for key in known],
                False))
            appliers.append((self._deleted, objs, ()))
        if riding is not None:
            statements.append(riding)

        try:
            receive = self._send(statements, commit, checked, bulky, gid, later)
        except BaseException as error:
            self._refused(error, riding, appliers, checked)

        def finish() -> BatchResult | None:
            try:
                results = receive()
            except BaseException as error:
                self._refused(error, riding, appliers, checked)
            for (apply, objs, extra), result in zip(appliers, results):
                apply(objs, result.rows, extra)
            return results[-1] if riding is not None else None

        return finish

    def _refused(self, error: BaseException, riding: Statement | None, appliers: list[Any],
                 checked: dict[int, tuple[str, list[R]]]) -> NoReturn:
        """Raise a failed flush's error as its caller should see it: a row not changed as
        :class:`StaleRecordError`, a refused value naming its column, and the deferred
        writes the round trip carried noted."""
        if isinstance(error, RowNotChangedError):
            what, objs = checked[error.statement]
            obj = objs[error.index]
            stale = StaleRecordError(obj.table_name, obj._mo_key or (), what)
            stale.__cause__ = error
            error = stale
        self.session.failed(error)
        dialect = self.database.dialect
        if riding is not None and sql.rejected(error, _values_of(riding),
                                               dialect=dialect) is not None:
            raise error  # about the riding query's own value: its caller names it
        sent = [obj for _, objs, _ in appliers for obj in objs]
        # a value the database refused: name its column, a record whose value is proven
        # before one that only may be it
        found = [named for obj in sent
                 if (named := sql.rejected(
                     error, obj._mo_store, obj.table_name,
                     sql.column_types(self.database.schema.table(obj.table_name)),
                     dialect=dialect))
                 is not None]
        named = next((one for one in found if one.what.startswith("column ")),
                     found[0] if found else None)
        self._name_owed(named or error, sent)
        if named is not None:
            raise named from error
        raise error

    def _send(self, statements: list[tuple[str, list[dict[str, Any]], bool]], commit: bool,
              checked: dict[int, tuple[str, list[R]]],
              bulky: dict[int, tuple[Table, tuple[str, ...], list[R]]],
              gid: str | None, later: bool) -> Callable[[], list[BatchResult]]:
        """Send the flush: one batch (with ``later``, its results left waiting), or, with
        large insert groups (``bulky``, by their place among the statements), the
        statements before each group, the group by COPY (or, where that cannot apply,
        as its statement), then the rest with the COMMIT (or the PREPARE), each in
        turn. Parents still go before children. What it returns gives the results."""
        if not bulky and later:
            return self.session.start_batch(statements, commit, checked, gid=gid)
        results = self._send_now(statements, commit, checked, bulky, gid)
        return lambda: results

    def _send_now(self, statements: list[tuple[str, list[dict[str, Any]], bool]],
                  commit: bool, checked: dict[int, tuple[str, list[R]]],
                  bulky: dict[int, tuple[Table, tuple[str, ...], list[R]]],
                  gid: str | None) -> list[BatchResult]:
        if not bulky:
            return self.session.batch(statements, commit, checked, gid=gid)
        dialect = self.database.dialect
        results: list[BatchResult] = []
        start = 0
        for place, (table, columns, objs) in sorted(bulky.items()):
            if place > start:
                results += self.session.batch(statements[start:place])
            rows = bulk.insert_rows(self.session, table, columns,
                                    [obj._mo_store for obj in objs])
            if rows is None:
                results += self.session.batch([(
                    sql.template(dialect, table, "insert", columns,
                                 returning=table.primary_key),
                    [sql.template_params(columns, (), obj._mo_store) for obj in objs],
                    bool(table.primary_key))])
            else:
                results.append(BatchResult(rows, [1] * len(rows)))
            start = place + 1
        if start == len(statements) and not commit and gid is None:
            return results
        rest = {index - start: value for index, value in checked.items() if index >= start}
        try:
            return results + self.session.batch(statements[start:], commit, rest, gid=gid)
        except RowNotChangedError as error:  # numbered within the last batch
            raise RowNotChangedError(error.statement + start, error.index) from error

    def _name_owed(self, error: BaseException, sent: list[R]) -> None:
        """Say in ``error`` which deferred immediate writes this failed round trip carried
        (the call that asked for them returned before they were sent)."""
        owed = [obj for obj in sent if id(obj) in self.owed]
        if not owed:
            return
        verbs = {PENDING: "insert", PERSISTENT: "update", DELETED: "delete"}
        shown = ", ".join(f"{verbs[obj._mo_state]} of {obj!r}" for obj in owed[:5])
        more = f" and {len(owed) - 5} more" if len(owed) > 5 else ""
        note = (f"session {self.session.name!r}: this round trip carried the deferred "
                f"immediate writes {shown}{more} (see 'When an immediate write is sent' in the "
                "docs)")
        add_note(error, note)

    @staticmethod
    def _require_key(table: Table, known: list[tuple[Any, ...] | None], what: str
                     ) -> tuple[str, ...]:
        """The table's key columns, refusing a table without a key and records without
        theirs (``known``, the records' keys)."""
        keys = table.primary_key
        if not keys or None in known:
            raise PrimaryKeyError(f"cannot {what} a {table.name} record tracked by the session "
                                  "without its primary key")
        return keys

    def _inserted(self, objs: list[R], rows: list[Any], returning: tuple[str, ...]) -> None:
        for index, obj in enumerate(objs):
            inserted(obj, self, rows[index] if returning else None)

    def _updated(self, objs: list[R], rows: list[Any], extra: Any) -> None:
        for obj in objs:
            self.touch(obj)
            cleaned(obj, self)

    def _deleted(self, objs: list[R], rows: list[Any], extra: Any) -> None:
        for obj in objs:
            deleted(obj, self)
