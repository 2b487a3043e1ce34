"""The unit of work of a session: identity map, change tracking, journal and batched flush.

Record states::

    TRANSIENT --persist()--> PENDING --flush--> PERSISTENT --delete()--> DELETED --flush--> GONE
                                                  (setField: dirty)

A journal keeps, per transaction and per savepoint, the state each touched
object had before it was first changed there; rolling back restores it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import sql
from .errors import PrimaryKeyError, SessionConflictError
from .sql import SQL_DEFAULT

if TYPE_CHECKING:
    from .records import DbMother
    from .session import Session

TRANSIENT, PENDING, PERSISTENT, DELETED, GONE = range(5)
Snapshot = tuple[int, dict[str, Any], Any, Any]


def snapshot(obj: DbMother) -> Snapshot:
    dirty = obj._mo_dirty
    return (obj._mo_state, dict(obj._mo_store), set(dirty) if dirty else None, obj._mo_key)


class UnitOfWork:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.identity: weakref.WeakValueDictionary[tuple[str, tuple[Any, ...]], DbMother] = (
            weakref.WeakValueDictionary())
        self.new: dict[int, DbMother] = {}
        self.dirty: dict[int, DbMother] = {}
        self.deleted: dict[int, DbMother] = {}
        #: the journal: per transaction and savepoint, each touched object's earlier state;
        #: weak, so an object nobody holds any more is simply forgotten
        self.frames: list[weakref.WeakKeyDictionary[DbMother, Snapshot]] = [
            weakref.WeakKeyDictionary()]

    # -- bookkeeping -----------------------------------------------------------------------
    def has_pending(self) -> bool:
        return bool(self.new or self.dirty or self.deleted)

    def touch(self, obj: DbMother) -> None:
        """Remember ``obj`` as it is now, before its first change in the current frame."""
        frame = self.frames[-1]
        if obj not in frame:
            frame[obj] = snapshot(obj)

    def sync(self, obj: DbMother) -> None:
        """Put ``obj`` in the collection its state calls for, and in the identity map."""
        key = id(obj)
        state = obj._mo_state
        for collection, wanted in ((self.new, state == PENDING),
                                   (self.dirty, state == PERSISTENT and bool(obj._mo_dirty)),
                                   (self.deleted, state == DELETED)):
            if wanted:
                collection[key] = obj
            else:
                collection.pop(key, None)
        if obj._mo_key is not None:
            ident = (obj.table_name, obj._mo_key)
            if state in (PERSISTENT, DELETED):
                self.identity[ident] = obj
            elif self.identity.get(ident) is obj:
                del self.identity[ident]

    def own(self, obj: DbMother) -> None:
        """Bind ``obj`` to this session, refusing objects of another live session."""
        other = obj._mo_session
        if other is not None and other is not self.session and not other.closed:
            raise SessionConflictError(
                f"{obj.table_name} record belongs to session {other.name!r}, not "
                f"{self.session.name!r}: use merge() to copy it")
        obj._mo_session = self.session

    def adopt(self, obj: DbMother) -> DbMother:
        """Register a freshly loaded ``obj``; an object already mapped for its row wins."""
        key = obj._mo_key
        if key is not None:
            existing = self.identity.get((obj.table_name, key))
            if existing is not None and existing is not obj:
                for name, value in obj._mo_store.items():
                    existing._mo_store.setdefault(name, value)
                return existing
        obj._mo_state = PERSISTENT
        self.sync(obj)
        return obj

    def forget(self, obj: DbMother) -> None:
        """Detach ``obj``: no longer tracked, its pending changes dropped from the session."""
        obj._mo_state = TRANSIENT if obj._mo_state == PENDING else obj._mo_state
        for collection in (self.new, self.dirty, self.deleted):
            collection.pop(id(obj), None)
        if obj._mo_key is not None and self.identity.get((obj.table_name, obj._mo_key)) is obj:
            del self.identity[(obj.table_name, obj._mo_key)]
        for frame in self.frames:
            frame.pop(obj, None)
        obj._mo_session = None

    def objects(self) -> Iterator[DbMother]:
        yield from list(self.identity.values())
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
        for obj, (state, store, dirty, key) in list(frame.items()):
            if obj._mo_key is not None and obj._mo_key != key:
                ident = (obj.table_name, obj._mo_key)
                if self.identity.get(ident) is obj:
                    del self.identity[ident]
            obj._mo_state, obj._mo_store, obj._mo_dirty, obj._mo_key = state, store, dirty, key
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
    def flush(self, commit: bool = False) -> None:
        """Write everything pending: inserts parents first, deletes children first, batched.

        Nothing changes on the objects unless the whole batch succeeded; with
        ``commit`` the batch ends with COMMIT.
        """
        if not self.has_pending():
            return
        schema = self.session.database.schema
        dialect = self.session.database.dialect
        statements: list[tuple[str, list[dict[str, Any]], bool]] = []
        appliers: list[Any] = []

        groups: dict[tuple[Any, ...], list[DbMother]] = {}
        for obj in self.new.values():
            columns = tuple(name for name, value in obj._mo_store.items()
                            if value is not SQL_DEFAULT)
            groups.setdefault((obj.table_name, columns), []).append(obj)
        schema.check_acyclic({table for table, _ in groups})
        for (table_name, columns), objs in sorted(groups.items(),
                                                  key=lambda item: schema.rank(item[0][0])):
            table = schema.table(table_name)
            returning = table.primary_key
            statements.append((
                sql.template(dialect, table, "insert", columns, returning=returning),
                [sql.template_params(columns, (), obj._mo_store) for obj in objs],
                bool(returning)))
            appliers.append((self._inserted, objs, returning))

        updates: dict[tuple[Any, ...], list[DbMother]] = {}
        for obj in self.dirty.values():
            updates.setdefault((obj.table_name, tuple(sorted(obj._mo_dirty))), []).append(obj)
        for (table_name, columns), objs in updates.items():
            table = schema.table(table_name)
            keys = self._require_key(table, objs, "update")
            statements.append((
                sql.template(dialect, table, "update", columns, keys),
                [sql.template_params(columns, keys, obj._mo_store, dict(zip(keys, obj._mo_key)))
                 for obj in objs],
                False))
            appliers.append((self._updated, objs, ()))

        deletes: dict[str, list[DbMother]] = {}
        for obj in self.deleted.values():
            deletes.setdefault(obj.table_name, []).append(obj)
        schema.check_acyclic(deletes)
        for table_name, objs in sorted(deletes.items(), key=lambda item: -schema.rank(item[0])):
            table = schema.table(table_name)
            keys = self._require_key(table, objs, "delete")
            statements.append((
                sql.template(dialect, table, "delete", (), keys),
                [sql.template_params((), keys, {}, dict(zip(keys, obj._mo_key))) for obj in objs],
                False))
            appliers.append((self._deleted, objs, ()))

        try:
            results = self.session._batch(statements, commit)
        except BaseException as error:
            if self.session._lost is None:
                self.session._failed = error
            raise
        for (apply, objs, extra), rows in zip(appliers, results):
            apply(objs, rows, extra)

    @staticmethod
    def _require_key(table: Any, objs: list[DbMother], what: str) -> tuple[str, ...]:
        keys = table.primary_key
        if not keys or any(obj._mo_key is None for obj in objs):
            raise PrimaryKeyError(f"cannot {what} a {table.name} record tracked by the session "
                                  "without its primary key")
        return keys

    def _inserted(self, objs: list[DbMother], rows: list[Any], returning: tuple[str, ...]) -> None:
        for index, obj in enumerate(objs):
            self.touch(obj)
            store = obj._mo_store
            for name in [name for name, value in store.items() if value is SQL_DEFAULT]:
                del store[name]
            if returning:
                store.update(rows[index])
                obj._mo_key = tuple(store[name] for name in returning)
            obj._mo_state = PERSISTENT
            obj._mo_dirty = None
            self.sync(obj)

    def _updated(self, objs: list[DbMother], rows: list[Any], extra: Any) -> None:
        for obj in objs:
            self.touch(obj)
            obj._mo_dirty = None
            self.sync(obj)

    def _deleted(self, objs: list[DbMother], rows: list[Any], extra: Any) -> None:
        for obj in objs:
            self.touch(obj)
            obj._mo_state = GONE
            self.sync(obj)
            if obj._mo_key is not None:
                self.identity.pop((obj.table_name, obj._mo_key), None)
