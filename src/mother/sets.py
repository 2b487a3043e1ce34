"""Record sets: many rows at once (``MotherBox``, ``MotherMany``, ``MotherFusion``).

Filters are a dict (equalities, bound parameters; every key must be a column),
a :class:`~mother.sql.MoFilter` (text with bound parameters), or a plain
string, which is **trusted SQL** written by the programmer: never build one
from user input.

Sets run plain statements: objects a session already holds are not changed by
a set's update or delete (``session.refresh(obj)`` reads them again).
"""

from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from . import bulk, joins, sql
from .database import Database, get_database
from .errors import ArgumentError, MotherError, ParanoidError
from .executor import STREAM_SIZE, Executor, executor_for, stream_size
from .records import MO_DEL, MO_LOAD, MO_NOA, MO_SAVE, MO_UP, DbMother, builder_for
from .schema import Table
from .session import Session
from .sql import SQL_DEFAULT, lock_clause, template, template_params

log = logging.getLogger(__name__)
#: rows per SELECT when MotherMany loads (keeps the parameter count low on SQLite)
LOAD_CHUNK = 200


class SetError(MotherError, TypeError):
    """A record set was given arguments it cannot use."""


def _database(thing: Any, session: Session | None) -> Database:
    if session is not None:
        return session.database
    if isinstance(thing, DbMother):
        return thing._mo_database()
    return get_database(getattr(thing, "mother_database", "default"))


class _RecordSet:
    """What every set shares: the builder, where it runs, and its records."""

    def __init__(self, builder: Any, session: Session | None) -> None:
        if session is not None and not isinstance(session, Session):
            raise ArgumentError(f"{type(self).__name__}(session={session!r}): session must be "
                                "a Session (MotherSession()) or None")
        if isinstance(builder, DbMother) and session is None:
            owner = builder.session
            session = owner if isinstance(owner, Session) else None
        self.database = _database(builder, session)
        self.builder = builder_for(builder, self.database)
        self.table: Table = self.database.schema.table(self.builder.table_name)
        self.executor: Executor = session if session is not None else executor_for(self.database)
        self.session: Session | None = (self.executor if isinstance(self.executor, Session)
                                        else None)
        self._records: list[dict[str, Any]] = []
        #: rows per chunk when the set is streamed (None: its rows are a list)
        self.streamed: int | None = None

    def _stream_by(self, stream: Any) -> None:
        """``stream=`` of a set that can stream: None/False (a list) or a chunk size/True."""
        if stream is not None and stream is not False:
            self.streamed = stream_size(stream)

    def _refuse_streamed(self, what: str) -> None:
        if self.streamed is not None:
            raise SetError(f"{type(self).__name__}(stream={self.streamed}) of "
                           f"{self.table.name} reads its rows as you iterate: it has no "
                           f"{what} (iterate it, or leave stream= out for a list)")

    def __len__(self) -> int:
        self._refuse_streamed("length")
        return len(self._records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.streamed is not None:
            return iter(self.stream(self.streamed))
        return iter(self._records)

    def _objects(self, rows: Iterable[Mapping[str, Any]]) -> Iterator[Any]:
        """The records of loaded rows (``getRecords(flag_obj=True)``, ``stream(flag_obj=True)``)."""
        return self.builder.from_rows(self.session, rows)

    def _query(self) -> tuple[str, dict[str, Any]]:
        """The SELECT of the set's rows."""
        raise SetError(f"{type(self).__name__} has no query to stream")

    def stream(self, size: int = STREAM_SIZE, flag_obj: bool = False) -> Iterator[Any]:
        """Run the set's query again, its rows read ``size`` at a time as you iterate, in
        constant memory inside the session's transaction (pending changes flushed
        first); rows as dicts, or as with ``getRecords(flag_obj=True)``.

        Records go through the session's identity map as loaded ones do: the one it
        holds for a row is the one you get; the map holds records weakly, so a
        record you let go of (and did not change) is freed as the stream moves on.
        """
        text, params = self._query()
        rows = self.executor.run_stream(text, params, stream_size(size))
        if not flag_obj:
            return iter(rows)
        return self._objects(rows)

    def getRecords(self, flag_obj: bool = False) -> list[Any]:
        """The rows as dicts, or as records of the builder class with ``flag_obj=True``."""
        self._refuse_streamed("list of records")
        if flag_obj:
            return list(self._objects(self._records))
        return list(self._records)


class MotherBox(_RecordSet):
    """The rows of one table matching a filter: load (``MO_LOAD``), update, delete.

    For ``MO_UP``, ``fields`` is the mapping of new values. ``joins`` (used by
    the child and relation methods) adds joined tables to a load. ``lock``
    (``"update"``, ``"update nowait"``, ``"update skip locked"``, ``"share"``…)
    makes the load a locking read of the matching rows. ``stream`` (a number of rows,
    or True for :data:`~mother.executor.STREAM_SIZE`) makes ``MO_LOAD`` read nothing
    yet: iterating the box then reads its rows that many at a time (see
    ``stream()``); such a box has no ``len()`` and no ``getRecords()``.
    """

    def __init__(self, builder: Any, filter: Any = None, flag: int = MO_NOA,
                 fields: Any = None, order: Any = None, session: Session | None = None,
                 distinct: bool = False, *, joins: Sequence[joins.Join] = (),
                 lock: str | None = None, stream: int | bool | None = None) -> None:
        super().__init__(builder, session)
        self._stream_by(stream)
        self.filter, self.fields, self.order = filter, fields, order
        self.distinct, self.joins = distinct, tuple(joins)
        self.lock = lock
        self._locking = lock_clause(self.database.dialect, lock, distinct or bool(self.joins))
        if lock is not None and flag not in (MO_NOA, MO_LOAD):
            raise SetError(f"lock={lock!r} is for loads (MO_LOAD), not flag {flag!r}")
        if lock is not None:
            self.executor.check_writable(f"a locking read (lock={lock!r}) of {self.table.name}")
        self.rowcount = -1
        actions: dict[int, Callable[[], Any] | None] = {
            MO_NOA: None, MO_LOAD: self.load, MO_UP: self.update, MO_DEL: self.delete}
        if flag not in actions:
            raise SetError(f"MotherBox flag must be MO_NOA, MO_LOAD, MO_UP or MO_DEL, not {flag!r}")
        if self.streamed is not None and flag not in (MO_NOA, MO_LOAD):
            raise SetError(f"stream= is for loads (MO_LOAD), not flag {flag!r}")
        if self.streamed is not None:
            return
        action = actions[flag]
        if action is not None:
            action()

    def _scoped(self) -> joins.Scoped:
        """The filter, its dict keys columns of the table (``table.col`` allowed, as in a load)."""
        return joins.Scoped(self.filter, (self.table.name,))

    def _check_filter(self, what: str) -> None:
        if not self.filter and self.database.settings.paranoid:
            raise ParanoidError(f"paranoid: refusing to {what} every row of {self.table.name}")

    def _query(self) -> tuple[str, dict[str, Any]]:
        dialect, schema = self.database.dialect, self.database.schema
        fields = self.fields or list(self.table.columns)
        if isinstance(fields, str):
            fields = [fields]
        what = [(self.table.name, name, None) for name in fields]
        text, params = sql.select_joined(dialect, schema, self.table.name, what, self.filter,
                                         self.order, self.distinct or bool(self.joins),
                                         self.joins)
        return text + self._locking, params

    def load(self) -> list[dict[str, Any]]:
        """SELECT the matching rows (DISTINCT when asked or when joining)."""
        self._refuse_streamed("load into a list")
        self._records = self.executor.mr_query(*self._query())
        return self._records

    def update(self) -> int:
        """UPDATE the matching rows with ``fields`` (a mapping); returns the row count."""
        if not isinstance(self.fields, Mapping) or not self.fields:
            raise SetError("MotherBox(MO_UP) needs fields= as a non-empty mapping of new values")
        self._check_filter("update")
        text, params = sql.update(self.database.dialect, self.table, self.fields, self._scoped())
        self.rowcount = self.executor.run(text, params, lambda cursor: cursor.rowcount)
        return self.rowcount

    def delete(self) -> int:
        """DELETE the matching rows (no filter: every row); returns the row count."""
        self._check_filter("delete")
        text, params = sql.delete(self.database.dialect, self.table, self._scoped())
        self.rowcount = self.executor.run(text, params, lambda cursor: cursor.rowcount)
        return self.rowcount


class MotherMany(_RecordSet):
    """Many rows at once, one statement per kind of row, sent as a batch.

    ``store`` is a list of dicts (or one dict). ``MO_SAVE`` inserts them and
    writes each new primary key back into its dict; ``MO_DEL`` deletes the rows
    matching each dict; ``MO_UP`` sets ``fields`` (default: the non-key
    columns) where the other columns match; ``MO_LOAD`` selects the rows
    matching any dict (``fields`` picks the columns).
    """

    def __init__(self, builder: Any, store: Any = None, flag: int = MO_NOA,
                 session: Session | None = None, fields: Sequence[str] | None = None) -> None:
        super().__init__(builder, session)
        self.fields = list(fields) if fields else None
        self._store: list[dict[str, Any]] = []
        self._loaded = False
        if store is not None:
            self.addRows(store)
        actions: dict[int, Callable[[], Any] | None] = {
            MO_NOA: None, MO_SAVE: self.insert, MO_DEL: self.delete, MO_UP: self.update,
            MO_LOAD: self.load}
        if flag not in actions:
            raise SetError(f"MotherMany flag must be MO_NOA, MO_SAVE, MO_DEL, MO_UP or "
                           f"MO_LOAD, not {flag!r}")
        action = actions[flag]
        if action is not None:
            action()

    def addRows(self, rows: Any) -> None:
        """Add a list of dicts, or one dict."""
        if isinstance(rows, Mapping):
            rows = [rows]
        elif not isinstance(rows, (list, tuple)) or not all(
                issubclass(kind, Mapping) for kind in set(map(type, rows))):  # once per type
            raise SetError(f"rows must be a dict or a list of dicts, not {type(rows).__name__}")
        # every name checked once, in the order first seen (at C speed: no tuple per row)
        self.table.check_fields(dict.fromkeys(itertools.chain.from_iterable(rows)))
        self._store.extend(rows)
        if not self._loaded:
            self._records = self._store

    def _one_shape(self) -> tuple[str, ...] | None:
        """The names of every row when all the rows name the same columns (each has as
        many names as all of them have together: at C speed), else None."""
        store = self._store
        sizes = set(map(len, store))
        if len(sizes) != 1 or len(dict.fromkeys(itertools.chain.from_iterable(store))) != (
                sizes.pop()):
            return None
        return tuple(store[0])

    def _groups(self, value_keys: bool = False) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
        """Rows grouped by their column names (and, with value_keys, by which are NULL)."""
        store = self._store
        if not value_keys and not any(map(operator.is_, itertools.chain.from_iterable(
                map(operator.methodcaller("values"), store)), itertools.repeat(SQL_DEFAULT))):
            shape = self._one_shape()  # the common case
            if shape is not None:
                return {shape: list(store)}
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in store:
            if value_keys:
                key: tuple[Any, ...] = tuple((name, row[name] is None) for name in row)
            elif any(map(operator.is_, row.values(), itertools.repeat(SQL_DEFAULT))):
                key = tuple(name for name, value in row.items() if value is not SQL_DEFAULT)
            else:
                key = tuple(row)
            groups.setdefault(key, []).append(row)
        return groups

    def insert(self) -> None:
        """INSERT every row; new primary keys are written back into the dicts.

        Rows of one shape (the same columns), from :data:`~mother.bulk.BULK_ROWS` of
        them on, go by COPY with their keys taken from the sequence first (see
        :mod:`mother.bulk`); otherwise, and where that cannot apply, one
        ``INSERT … RETURNING`` per row, sent together.
        """
        if not self._store:
            log.info("MotherMany(%s): nothing to insert", self.table.name)
            return
        dialect, pkey = self.database.dialect, self.table.primary_key
        shape = self._one_shape()
        # rows of one shape go by COPY unless a value is SQL_DEFAULT: the COPY path checks
        # that while the server numbers the keys (then they are grouped below)
        if shape is not None and bulk.insert_into_rows(self.executor, self.table, shape,
                                                       self._store):
            return
        for columns, rows in self._groups().items():
            # some values are SQL_DEFAULT: once inserted, the database's (left out here)
            defaults = set(map(len, rows)) != {len(columns)}
            if not bulk.insert_into_rows(self.executor, self.table, columns, rows):
                text = template(dialect, self.table, "insert", columns, returning=pkey)
                seq = [template_params(columns, (), row) for row in rows]
                for row, keys in zip(rows, self.executor.run_many(text, seq, bool(pkey))):
                    row.update(keys)
            if defaults:
                for row in rows:
                    for name in [n for n, v in row.items() if v is SQL_DEFAULT]:
                        del row[name]

    def _keyed(self, kind: str, set_columns: Sequence[str] | None) -> None:
        if not self._store:
            log.info("MotherMany(%s): nothing to %s", self.table.name, kind)
            return
        dialect = self.database.dialect
        for shape, rows in self._groups(value_keys=True).items():
            names = [name for name, _ in shape]
            columns: list[str] = []
            if set_columns is not None:
                columns = list(set_columns or [n for n in names if n not in self.table.primary_key])
                missing = [name for name in columns if name not in names]
                self.table.check_fields(columns)
                if missing:
                    raise SetError(f"MotherMany update: rows lack the columns {missing}")
                if not columns or len(columns) == len(names):
                    raise SetError("MotherMany update needs columns to set and columns to "
                                   "match the rows by")
            keys = [name for name, null in shape if name not in columns and not null]
            nulls = [name for name, null in shape if name not in columns and null]
            text = template(dialect, self.table, kind, columns, keys, null_keys=nulls)
            seq = [template_params(columns, keys, row) for row in rows]
            self.executor.run_many(text, seq, False)

    def delete(self) -> None:
        """DELETE the rows matching each dict (every column of the dict must match)."""
        self._keyed("delete", None)

    def update(self) -> None:
        """UPDATE ``fields`` (default: the non-key columns) where the other columns match."""
        self._keyed("update", self.fields or [])

    def load(self) -> list[dict[str, Any]]:
        """SELECT the rows matching any of the dicts; they become the records."""
        fields = self.fields or list(self.table.columns)
        records: list[dict[str, Any]] = []
        for start in range(0, len(self._store), LOAD_CHUNK):
            text, params = sql.select_any(self.database.dialect, self.table, fields,
                                          self._store[start:start + LOAD_CHUNK])
            records.extend(self.executor.mr_query(text, params))
        self._records, self._loaded = records, True
        return records


class MotherFusion(_RecordSet):
    """The join of two tables: parent and child, or two tables through a link table.

    ``fields``: None (every column of both), a list of column names (``col`` or
    ``table.col``), a dict ``{col: alias}``, or a tuple ``(fa, fb[, fr])`` of
    per-table lists, dicts or empty values (every column). ``params`` adds link
    table columns (a list, a dict, or True for its non-key columns). ``side`` is
    ``"LEFT"`` or ``"RIGHT"``; ``jfilter`` applies to the link table. ``stream``, as
    for :class:`MotherBox`: the rows are read as you iterate.
    """

    def __init__(self, a: Any, b: Any, filter: Any = None, fields: Any = None, order: Any = None,
                 session: Session | None = None, distinct: bool = False, rtbl: str | None = None,
                 params: Any = None, jfilter: Any = None, side: str = "", *,
                 stream: int | bool | None = None) -> None:
        super().__init__(a, session)
        self._stream_by(stream)
        self.other = builder_for(b, self.database)
        schema = self.database.schema
        names = (self.builder.table_name, self.other.table_name)
        self.link = None
        self.outer = bool(side)
        if is_pair := joins.is_child(schema, names[1], names[0]):
            self.builder, self.other = self.other, self.builder
            names = names[::-1]
            if isinstance(fields, tuple):
                fields = (fields[1], fields[0], *fields[2:])
        if is_pair or joins.is_child(schema, names[0], names[1]):
            key = joins.child_key(schema, names[0], names[1])
            steps = [joins.Join(names[1], key, side)]
            where: Any = filter
        else:
            self.link = joins.find_link(schema, names[0], names[1], rtbl)
            mine, theirs = self.link.towards(names[0])
            steps = [joins.Join(self.link.table, mine, side), joins.Join(names[1], theirs, side)]
            where = joins.AllOf((filter, joins.Scoped(jfilter, (self.link.table,))))
        what = self._what(names, fields, params)
        self._select = sql.select_joined(self.database.dialect, schema, names[0], what, where,
                                         order, distinct, steps)
        self._parts()
        if self.streamed is None:
            self._records = self.executor.mr_query(*self._select)

    def _query(self) -> tuple[str, dict[str, Any]]:
        return self._select

    def _what(self, names: tuple[str, str], fields: Any, params: Any
              ) -> list[tuple[str, str, str | None]]:
        schema = self.database.schema
        tables = {name: schema.table(name) for name in names}
        link = self.link
        if link is not None:
            tables[link.table] = schema.table(link.table)
        if fields is None:
            fields = ((), ())
        if isinstance(fields, tuple):
            parts = list(fields) + [None] * (3 - len(fields))
            if link is not None and params and not parts[2]:
                if params is True:
                    keys = {*link.left.columns, *link.right.columns}
                    parts[2] = [c for c in tables[link.table].columns if c not in keys]
                else:
                    parts[2] = params
            out: list[tuple[str, str, str | None]] = []
            for table_name, part in zip([*names, link.table if link else None], parts):
                if table_name is None or (part is None and table_name not in names):
                    continue
                if not part:
                    out.append((table_name, "*", None))
                elif isinstance(part, Mapping):
                    out.extend((table_name, col, alias) for col, alias in part.items())
                else:
                    out.extend((table_name, col, None) for col in part)
            return out
        items = fields.items() if isinstance(fields, Mapping) else ((f, None) for f in fields)
        out = []
        for name, alias in items:
            table, column = joins.owner(tables, list(tables), name)
            out.append((table.name, column, alias))
        return out

    def getRecords(self, flag_obj: bool = False) -> list[Any]:
        """Rows as dicts, or ``(a, b)`` / ``(a, link, b)`` records with ``flag_obj=True``.

        A column goes to the first table that has it (a, then b, then the link);
        a side that an outer join left empty comes back as None.
        """
        return super().getRecords(flag_obj)

    def _objects(self, rows: Iterable[Mapping[str, Any]]) -> Iterator[tuple[DbMother | None, ...]]:
        return map(self._obj, rows)

    def _parts(self) -> None:
        """The columns of each side, for :meth:`_obj`."""
        schema = self.database.schema
        self._cols_a = schema.table(self.builder.table_name).columns
        self._cols_b = schema.table(self.other.table_name).columns
        self._link_builder = builder_for(self.link.table, self.database) if self.link else None
        self._cols_link = schema.table(self.link.table).columns if self.link else {}

    def _obj(self, row: Mapping[str, Any]) -> tuple[DbMother | None, ...]:
        cols_a, cols_b, cols_link = self._cols_a, self._cols_b, self._cols_link
        a = {k: v for k, v in row.items() if k in cols_a}
        b = {k: v for k, v in row.items() if k not in cols_a and k in cols_b}
        rest = {k: v for k, v in row.items() if k in cols_link and k not in a and k not in b}
        objs = [self._part(self.builder, a), self._part(self.other, b)]
        if self._link_builder is not None and rest:
            objs.insert(1, self._part(self._link_builder, rest))
        return tuple(objs)

    def _part(self, builder: type[DbMother], values: dict[str, Any]) -> DbMother | None:
        if not values or (self.outer and all(value is None for value in values.values())):
            return None
        return builder.from_row(self.session, values)
