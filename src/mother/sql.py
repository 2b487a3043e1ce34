"""Composing SQL safely: identifiers quoted by the dialect and checked against the schema,
values always bound as parameters.

The only SQL text that is not composed here is the programmer's own: a plain
string filter, or the text of a :class:`MoFilter`. Both are trusted as written.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .dialects.base import Dialect
from .errors import BadValueError, MotherError, UnknownFieldError
from .schema import Schema, Table


class _Default:
    """The column's DEFAULT (``SQL_DEFAULT``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SQL_DEFAULT"

    def __reduce__(self) -> str:
        return "SQL_DEFAULT"


SQL_DEFAULT: Any = _Default()
SQL_NULL = None
SQL_TRUE = True
SQL_FALSE = False


class InvalidFilterError(MotherError, TypeError):
    """A filter of a kind dbmother does not understand."""


class InvalidLockError(MotherError, ValueError):
    """A ``lock=`` argument that is not one of ``LOCKS`` (or that cannot apply)."""


#: the locking reads (``lock=`` of ``session.get``, ``load``, ``MotherBox``) and their SQL
LOCKS = {
    "update": "FOR UPDATE",
    "update nowait": "FOR UPDATE NOWAIT",
    "update skip locked": "FOR UPDATE SKIP LOCKED",
    "share": "FOR SHARE",
    "share nowait": "FOR SHARE NOWAIT",
    "share skip locked": "FOR SHARE SKIP LOCKED",
}


def lock_clause(dialect: Dialect, lock: str | None, distinct: bool = False) -> str:
    """The clause that ends a locking read (empty for ``lock=None``), checked.

    Spelled in any case and spacing; a DISTINCT select cannot lock its rows.
    """
    if lock is None:
        return ""
    clause = LOCKS.get(" ".join(lock.lower().split())) if isinstance(lock, str) else None
    if clause is None:
        raise InvalidLockError(f"lock={lock!r}: expected None or one of "
                               + ", ".join(map(repr, LOCKS)))
    if distinct:
        raise InvalidLockError(f"lock={lock!r}: a DISTINCT (or joined) select cannot lock "
                               "its rows")
    return dialect.lock_clause(clause)


class MoFilter:
    """A filter made of programmer-written SQL conditions with bound parameters.

    ``MoFilter("star_mass > %(mass)s", store={"mass": 5})`` (placeholders are
    the driver's own). A dict adds equality conditions, a list of column names
    takes their values from ``store``. Text is trusted SQL: never build it from
    user input.
    """

    def __init__(self, filter: Any = None, table: str | None = None,
                 store: Mapping[str, Any] | None = None) -> None:
        self.parts: list[tuple[str, Any, str | None]] = []
        self.params: dict[str, Any] = {}
        self.add_filter(filter, table, store)

    def add_filter(self, filter: Any, table: str | None = None,
                   store: Mapping[str, Any] | None = None) -> MoFilter:
        """Add a condition: text, a dict of equalities, or column names valued from ``store``."""
        if store:
            self.params.update(store)
        if not filter:
            return self
        if isinstance(filter, str):
            self.parts.append(("text", filter, table))
        elif isinstance(filter, Mapping):
            self.parts.append(("dict", dict(filter), table))
        elif isinstance(filter, (list, tuple, set, frozenset)):
            missing = [name for name in filter if store is None or name not in store]
            if missing:
                raise InvalidFilterError(f"filter keys {missing} have no value in store")
            self.parts.append(("dict", {name: store[name] for name in filter}, table))
        elif isinstance(filter, MoFilter):
            self.parts.extend(filter.parts)
            self.params.update(filter.params)
        else:
            raise InvalidFilterError(f"a filter must be a str, dict, list or MoFilter, "
                                     f"not {type(filter).__name__}")
        return self

    def __bool__(self) -> bool:
        return bool(self.parts)


class Query:
    """One statement being composed: its text parts and its bound parameters."""

    __slots__ = ("dialect", "params", "_count")

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.params: dict[str, Any] = {}
        self._count = 0

    def bind(self, value: Any) -> str:
        name = f"_mo{self._count}"
        self._count += 1
        self.params[name] = value
        return self.dialect.placeholder(name)

    def ident(self, *parts: str) -> str:
        return ".".join(self.dialect.quote(part) for part in parts)

    def columns(self, table: Table, names: Iterable[str], qualify: bool = False) -> str:
        table.check_fields(names := list(names))
        if qualify:
            return ", ".join(self.ident(table.name, name) for name in names)
        return ", ".join(self.ident(name) for name in names)

    def assignments(self, table: Table, values: Mapping[str, Any]) -> str:
        """``col = param, …`` for an UPDATE (``SQL_DEFAULT`` becomes DEFAULT), columns checked."""
        table.check_fields(values)
        return ", ".join(
            f"{self.ident(name)} = " + ("DEFAULT" if value is SQL_DEFAULT else self.bind(value))
            for name, value in values.items())

    def equalities(self, table: Table, values: Mapping[str, Any], qualify: bool = True,
                   alias: str | None = None) -> list[str]:
        """``col = param`` (``IS NULL`` for None) for each item, columns checked."""
        table.check_fields(values)
        prefix = alias or table.name
        out = []
        for name, value in values.items():
            column = self.ident(prefix, name) if qualify else self.ident(name)
            if value is None:
                out.append(f"{column} IS NULL")
            elif value is SQL_DEFAULT:
                raise InvalidFilterError(f"SQL_DEFAULT cannot be compared ({table.name}.{name})")
            else:
                out.append(f"{column} = {self.bind(value)}")
        return out

    def conditions(self, filter: Any, tables: Mapping[str, Table], default: Table) -> list[str]:
        """Compile a filter (dict, MoFilter, trusted string, or None) to conditions."""
        if filter is None or (not filter and not isinstance(filter, MoFilter)):
            return []
        if isinstance(filter, str):
            return [f"({self.dialect.trusted(filter)})"]
        if isinstance(filter, Mapping):
            return self.equalities(default, filter)
        if not isinstance(filter, MoFilter):
            filter = MoFilter(filter)
        out = []
        for kind, value, table_name in filter.parts:
            table = tables.get(table_name, default) if table_name else default
            if table_name and table_name not in tables:
                raise UnknownFieldError(default.name, f"{table_name}.*")
            if kind == "text":
                out.append(f"({value})")
            else:
                out.extend(self.equalities(table, value))
        self.params.update(filter.params)
        return out

    @staticmethod
    def where(conditions: Sequence[str]) -> str:
        return " WHERE " + " AND ".join(conditions) if conditions else ""

    def order_by(self, order: Any, tables: Mapping[str, Table], default: Table) -> str:
        """ORDER BY from column names (``"-col"`` or ``"col DESC"`` for descending), checked."""
        if not order:
            return ""
        if isinstance(order, str):
            order = [order]
        items = []
        for item in order:
            words = order_words(item)
            name, direction = words[0], ""
            if name.startswith("-"):
                name, direction = name[1:], " DESC"
            if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
                direction = " " + words[1].upper()
            elif len(words) > 1:
                raise InvalidFilterError(f"bad order item {item!r}: use 'column', '-column' "
                                         "or 'column DESC'")
            table_name, _, column = name.rpartition(".")
            table = tables.get(table_name, default)
            if table_name and table_name not in tables:
                raise UnknownFieldError(default.name, name)
            table.column(column)
            items.append(self.ident(table.name, column) + direction)
        return " ORDER BY " + ", ".join(items)


def order_words(item: Any) -> list[str]:
    """The words of one ORDER BY item; a blank item is refused."""
    words = str(item).split()
    if not words or words[0] == "-":
        raise InvalidFilterError(f"empty order item {item!r}: use 'column', '-column' "
                                 "or 'column DESC'")
    return words


WHERE = re.compile(r"\bWHERE\b", re.IGNORECASE)


def raw(dialect: Dialect, schema: Schema, sql: str, filter: MoFilter) -> tuple[str, dict[str, Any]]:
    """A raw query with a MoFilter's conditions appended (after ``WHERE`` or ``AND``).

    A dict key of the filter must be a column: of the filter's ``table``, of the
    table a ``table.column`` key names, or else of some table of the schema.
    Anything else is refused before any SQL runs, so a name can never end up
    compared as something else (a string literal, say).
    """
    query = Query(dialect)
    conditions = []
    for kind, value, table_name in filter.parts:
        if kind == "text":
            conditions.append(f"({value})")
            continue
        for name, item in value.items():
            column = raw_column(schema, table_name, name)
            if item is SQL_DEFAULT:
                raise InvalidFilterError(f"SQL_DEFAULT cannot be compared ({name})")
            op = "IS NULL" if item is None else "= " + query.bind(item)
            conditions.append(f"{query.ident(*column)} {op}")
    query.params.update(filter.params)
    if not conditions:
        return sql, query.params
    joiner = " AND " if WHERE.search(sql) else " WHERE "
    return sql + joiner + " AND ".join(conditions), query.params


def raw_column(schema: Schema, table_name: str | None, name: Any) -> tuple[str, ...]:
    """A raw filter's key checked against the schema: ``(column,)`` or ``(table, column)``."""
    if not isinstance(name, str):
        raise UnknownFieldError(table_name, repr(name), "a filter key is a column name (a str)")
    prefix, _, column = name.rpartition(".")
    if prefix:
        schema.table(prefix).column(column)
        return prefix, column
    if table_name is not None:
        schema.table(table_name).column(column)
        return (column,)
    if not any(column in table.columns for table in schema.tables.values()):
        raise UnknownFieldError(None, column, "name the table with MoFilter(..., table='t') "
                                "or a 't.column' key")
    return (column,)


def rejected(error: BaseException, values: Mapping[str, Any], table: str | None = None
             ) -> BadValueError | None:
    """The driver error ``error`` as a :class:`BadValueError` naming the column (or parameter)
    of ``values`` it is about, when its message shows that value or its type; else None.

    Only data errors count (SQLSTATE class 22, or the driver refusing a Python type).
    """
    state = getattr(error, "sqlstate", None)
    if isinstance(error, MotherError) or (state is not None and not state.startswith("22")):
        return None
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    for name, value in values.items():
        if value is None or value is SQL_DEFAULT:
            continue
        shown = str(value)
        if (f'"{shown}"' in first or f"'{shown}'" in first
                or f"type '{type(value).__name__}'" in first):
            what = f"column {table}.{name}" if table else f"parameter {name!r}"
            return BadValueError(what, value, first)
    return None


@contextlib.contextmanager
def naming_values(values: Mapping[str, Any], table: str | None = None) -> Iterator[None]:
    """Turn a driver error about one of ``values`` into a :class:`BadValueError` naming it."""
    try:
        yield
    except Exception as error:
        named = rejected(error, values, table)
        if named is None:
            raise
        raise named from error


def select(dialect: Dialect, table: Table, fields: Iterable[str] | None, filter: Any,
           order: Any = None, distinct: bool = False, lock: str | None = None
           ) -> tuple[str, dict[str, Any]]:
    """``SELECT fields FROM table WHERE filter ORDER BY order`` (then the ``lock`` clause)."""
    locking = lock_clause(dialect, lock, distinct)
    query = Query(dialect)
    tables = {table.name: table}
    what = query.columns(table, fields if fields else table.columns, qualify=True)
    conditions = query.conditions(filter, tables, table)
    sql = (f"SELECT {'DISTINCT ' if distinct else ''}{what} FROM {query.ident(table.name)}"
           f"{query.where(conditions)}{query.order_by(order, tables, table)}{locking}")
    return sql, query.params


def insert(dialect: Dialect, table: Table, values: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """INSERT one row; the primary key comes back through RETURNING."""
    query = Query(dialect)
    table.check_fields(values)
    # a column left out takes its DEFAULT (SQLite has no DEFAULT keyword in VALUES)
    values = {name: value for name, value in values.items() if value is not SQL_DEFAULT}
    names = [query.ident(name) for name in values]
    slots = [query.bind(value) for value in values.values()]
    returning = table.primary_key or tuple(values)[:1] or tuple(table.columns)[:1]
    target = query.ident(table.name)
    head = f"INSERT INTO {target} ({', '.join(names)}) VALUES ({', '.join(slots)})" if names \
        else f"INSERT INTO {target} DEFAULT VALUES"
    return f"{head} RETURNING {query.columns(table, returning)}", query.params


def update(dialect: Dialect, table: Table, values: Mapping[str, Any], filter: Any
           ) -> tuple[str, dict[str, Any]]:
    query = Query(dialect)
    sets = query.assignments(table, values)
    conditions = query.conditions(filter, {table.name: table}, table)
    return f"UPDATE {query.ident(table.name)} SET {sets}{query.where(conditions)}", query.params


def delete(dialect: Dialect, table: Table, filter: Any) -> tuple[str, dict[str, Any]]:
    query = Query(dialect)
    conditions = query.conditions(filter, {table.name: table}, table)
    return f"DELETE FROM {query.ident(table.name)}{query.where(conditions)}", query.params


def template(dialect: Dialect, table: Table, kind: str, columns: Sequence[str],
             keys: Sequence[str] = (), returning: Sequence[str] = (),
             null_keys: Sequence[str] = ()) -> str:
    """A statement run once per row (executemany), made once per table and shape.

    ``kind`` is ``insert`` (``columns`` inserted, ``returning`` returned),
    ``update`` (``columns`` set where ``keys`` match and ``null_keys`` are NULL)
    or ``delete`` (where they match). Parameter names are ``c0…`` for columns,
    ``k0…`` for keys. An update or delete without any condition is refused.
    """
    shape = (dialect.name, kind, tuple(columns), tuple(keys), tuple(returning), tuple(null_keys))
    sql = table.templates.get(shape)
    if sql is None:
        sql = table.templates[shape] = _template(dialect, table, kind, columns, keys,
                                                 returning, null_keys)
    return sql


def _template(dialect: Dialect, table: Table, kind: str, columns: Sequence[str],
              keys: Sequence[str], returning: Sequence[str], null_keys: Sequence[str]) -> str:
    table.check_fields([*columns, *keys, *null_keys, *returning])
    quote, ph = dialect.quote, dialect.placeholder
    target = quote(table.name)
    where = [f"{quote(key)} = {ph(f'k{i}')}" for i, key in enumerate(keys)]
    where += [f"{quote(key)} IS NULL" for key in null_keys]
    if kind == "insert":
        if columns:
            sql = (f"INSERT INTO {target} ({', '.join(map(quote, columns))}) "
                   f"VALUES ({', '.join(ph(f'c{i}') for i in range(len(columns)))})")
        else:
            sql = f"INSERT INTO {target} DEFAULT VALUES"
        return sql + (" RETURNING " + ", ".join(map(quote, returning)) if returning else "")
    if not where:
        raise InvalidFilterError(f"refusing a {kind} of {table.name} without a condition")
    where_sql = " WHERE " + " AND ".join(where)
    if kind == "update":
        sets = ", ".join(f"{quote(col)} = {ph(f'c{i}')}" for i, col in enumerate(columns))
        return f"UPDATE {target} SET {sets}{where_sql}"
    if kind == "delete":
        return f"DELETE FROM {target}{where_sql}"
    raise ValueError(kind)


def template_params(columns: Sequence[str], keys: Sequence[str], values: Mapping[str, Any],
                    key_values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters of one row for :func:`template`."""
    key_values = values if key_values is None else key_values
    params = {f"c{i}": values[col] for i, col in enumerate(columns)}
    params.update({f"k{i}": key_values[key] for i, key in enumerate(keys)})
    return params
