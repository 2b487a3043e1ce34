"""Composing SQL safely: every statement dbmother sends is written here, identifiers
quoted by the dialect and checked against the schema (or against a table declared in
code), values always bound as parameters.

The only SQL text that is not composed here is the programmer's own: a plain
string filter, the text of a :class:`~mother.filters.MoFilter`, and a raw query
(to which :func:`raw` adds a MoFilter's conditions). They are trusted as written.
What a filter may be is defined in :mod:`mother.filters` and :mod:`mother.joins`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from .dialects.base import Dialect
from .errors import ArgumentError, BadValueError, MotherError, UnknownFieldError
from .filters import Compare, InvalidFilterError, MoFilter
from .joins import AllOf, Join, Scoped, owner
from .schema import Column, Schema, Table
from .sqltext import MARKER, add_condition


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


def quoted(dialect: Dialect, name: str) -> str:
    """``name`` quoted by the dialect, for a statement that carries bound parameters (as
    every composed statement does: on PostgreSQL a ``%`` in a name is then doubled)."""
    return dialect.trusted(dialect.quote(name))


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
        return ".".join(quoted(self.dialect, part) for part in parts)

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

    def equalities(self, table: Table, values: Mapping[str, Any]) -> list[str]:
        """``table.col = param`` (see :meth:`condition`) for each item, columns checked."""
        table.check_fields(values)
        return [self.condition(self.ident(table.name, name), value, f"{table.name}.{name}")
                for name, value in values.items()]

    def condition(self, column: str, value: Any, what: str) -> str:
        """``column = param``; ``IS NULL`` for None, the operator of a :class:`Compare`."""
        if value is None:
            return f"{column} IS NULL"
        if value is SQL_DEFAULT:
            raise InvalidFilterError(f"SQL_DEFAULT cannot be compared ({what})")
        if isinstance(value, Compare):
            return self.compare(column, value)
        return f"{column} = {self.bind(value)}"

    def compare(self, column: str, condition: Compare) -> str:
        if condition.op not in ("in", "not in"):
            return f"{column} {condition.op} {self.bind(condition.value)}"
        items = list(condition.value)
        if not items:  # nothing is in an empty list
            return "1 = 0" if condition.op == "in" else "1 = 1"
        return (f"{column} {condition.op.upper()} ("
                + ", ".join(self.bind(item) for item in items) + ")")

    def conditions(self, filter: Any, tables: Mapping[str, Table],
                   candidates: Sequence[str] | None = None) -> list[str]:
        """Compile a filter: dict (bound), MoFilter, trusted string, Scoped, AllOf or None.

        A dict key is a column of the first table; with ``candidates`` (a Scoped
        filter's tables), a column (``col`` or ``table.col``) of the first of
        them that has it.
        """
        if isinstance(filter, AllOf):
            return [cond for part in filter.parts
                    for cond in self.conditions(part, tables, candidates)]
        if isinstance(filter, Scoped):
            return self.conditions(filter.filter, tables, filter.tables)
        if filter is None or (not filter and not isinstance(filter, MoFilter)):
            return []
        if isinstance(filter, str):
            return [f"({self.dialect.trusted(filter)})"]
        default = tables[candidates[0]] if candidates else next(iter(tables.values()))
        if isinstance(filter, Mapping):
            if candidates is None:
                return self.equalities(default, filter)
            groups: dict[str, tuple[Table, dict[str, Any]]] = {}
            for name, value in filter.items():
                table, column = owner(tables, candidates, str(name))
                groups.setdefault(table.name, (table, {}))[1][column] = value
            return [cond for table, values in groups.values()
                    for cond in self.equalities(table, values)]
        if not isinstance(filter, MoFilter):
            if isinstance(filter, (list, tuple, set, frozenset)):
                raise InvalidFilterError("a list filter needs a store: use "
                                         "MoFilter(keys, store=...)")
            raise InvalidFilterError(f"a filter must be a dict, a MoFilter or a string, "
                                     f"not {type(filter).__name__}")
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

    def order_by(self, order: Any, tables: Mapping[str, Table],
                 candidates: Sequence[str] | None = None) -> str:
        """ORDER BY from column names (``"-col"`` or ``"col DESC"`` for descending; ``col``
        of the first of ``candidates`` that has it, or ``table.col``), checked. A column
        whose name has spaces is named whole (``"-my col"``, not ``"my col DESC"``)."""
        if not order:
            return ""
        candidates = list(tables) if candidates is None else candidates
        items = []
        for item in [order] if isinstance(order, str) else order:
            words = order_words(item)
            whole = str(item)
            direction = " DESC" if whole.startswith("-") else ""
            if len(words) > 1 and _names_column(tables, candidates, whole.removeprefix("-")):
                words = [whole]
            elif len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
                direction = " " + words[1].upper()
            elif len(words) > 1:
                raise InvalidFilterError(f"bad order item {item!r}: use 'column', '-column' "
                                         "or 'column DESC'")
            table, column = owner(tables, candidates, words[0].removeprefix("-"))
            items.append(self.ident(table.name, column) + direction)
        return " ORDER BY " + ", ".join(items)


def _names_column(tables: Mapping[str, Table], candidates: Sequence[str], name: str) -> bool:
    try:
        owner(tables, candidates, name)
    except UnknownFieldError:
        return False
    return True


def order_words(item: Any) -> list[str]:
    """The words of one ORDER BY item; a blank item is refused."""
    words = str(item).split()
    if not words or words[0] == "-":
        raise InvalidFilterError(f"empty order item {item!r}: use 'column', '-column' "
                                 "or 'column DESC'")
    return words


def raw(dialect: Dialect, schema: Schema, sql: str, filter: MoFilter) -> tuple[str, dict[str, Any]]:
    """A raw query with a MoFilter's conditions added (see :func:`mother.sqltext.add_condition`
    for where they go: at the ``{filter}`` marker, or appended to the WHERE).

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
        conditions += [query.condition(query.ident(*raw_column(schema, table_name, name)),
                                       item, name) for name, item in value.items()]
    query.params.update(filter.params)
    if not conditions and MARKER not in sql:
        return sql, query.params
    return add_condition(sql, " AND ".join(conditions) or "1 = 1"), query.params


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


def rejected(error: BaseException, values: Mapping[str, Any], table: str | None = None,
             types: Mapping[str, str] | None = None, *, dialect: Dialect
             ) -> BadValueError | None:
    """The driver error ``error`` as a :class:`BadValueError` about ``values`` (a record's of
    ``table``, or a raw query's parameters when ``table`` is None); None when it is no refused
    value, or none of ``values`` can be what it refused.

    Only data errors count: SQLSTATE class 22, or the driver refusing a value before sending
    it (a Python type it cannot send, text with a NUL character, an int too large for
    SQLite). The column (or parameter) is named when the error's message shows its value or
    type, or when it is the only value of ``values`` that the error can be about (an int
    beyond the range of its column's type, text longer than its column allows, text with a
    NUL…, judged by ``types``, the type of each column, where known:
    :func:`column_types`, and by what ``dialect`` knows of its errors:
    :meth:`~mother.dialects.base.Dialect.suspects`). For a record, another
    data error names the table and says the column could not be told, with the columns it
    may be (the values that could be it; for an error of an unknown kind, every value sent);
    for a raw query it is left as it is unless a parameter is proven.
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
            return BadValueError(_naming(table, name), value, first)
    test = dialect.suspects(error, state, first)
    if test is False:
        return None
    types = types or {}
    proven: list[str] = []
    possible: list[str] = []
    for name, value in values.items():
        if value is None or value is SQL_DEFAULT:
            continue
        verdict = None if test is True else test(value, types.get(name))
        if verdict:
            proven.append(name)
        elif verdict is None:
            possible.append(name)
    if len(proven) == 1:
        return BadValueError(_naming(table, proven[0]), values[proven[0]], first)
    if table is None:
        return None
    if not proven and len(possible) == 1 and test is not True and possible[0] not in types:
        # the one value the error can be about, its column's type unknown
        return BadValueError(_naming(table, possible[0]), values[possible[0]], first)
    names = proven or possible
    if not names:
        return None
    return BadValueError(f"table {table} (the column could not be told: one of "
                         f"{', '.join(names)})", {name: values[name] for name in names}, first)


def _naming(table: str | None, name: str) -> str:
    return f"column {table}.{name}" if table else f"parameter {name!r}"


def column_types(table: Table) -> dict[str, str]:
    """The type of each column of ``table``, as :func:`rejected` reads them."""
    return {name: column.type.lower() for name, column in table.columns.items()}


class naming_values:
    """``with naming_values(values, dialect, table):`` turns a driver error about one of
    ``values`` (a row of ``table``, or a raw query's parameters) into a
    :class:`BadValueError` naming it (a plain class: it wraps every statement)."""

    __slots__ = ("values", "dialect", "table")

    def __init__(self, values: Mapping[str, Any], dialect: Dialect,
                 table: Table | None = None) -> None:
        self.values = values
        self.dialect = dialect
        self.table = table

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: Any) -> Literal[False]:
        if error is None or not isinstance(error, Exception):
            return False
        table = self.table
        named = (rejected(error, self.values, dialect=self.dialect) if table is None else
                 rejected(error, self.values, table.name, column_types(table),
                          dialect=self.dialect))
        if named is None:
            return False
        raise named from error


def select(dialect: Dialect, table: Table, fields: Iterable[str] | None, filter: Any,
           order: Any = None, distinct: bool = False, lock: str | None = None
           ) -> tuple[str, dict[str, Any]]:
    """``SELECT fields FROM table WHERE filter ORDER BY order`` (then the ``lock`` clause).

    The text of a select by a dict of plain values (each compared with ``=``), unordered
    and not distinct, as a record's load is, is made once per table and shape (the
    columns, the filter's keys, the lock) and kept in the table's templates (a new
    schema, new ones); the values are bound as ever.
    """
    names = tuple(fields if fields else table.columns)
    if (order is None and not distinct and type(filter) is dict and filter
            and (lock is None or type(lock) is str)):
        values = list(filter.values())
        for value in values:
            if value is None or value is SQL_DEFAULT or isinstance(value, Compare):
                break
        else:
            shape = (dialect.name, "select", names, tuple(filter), lock)
            text = table.templates.get(shape)
            if text is None:
                text = table.templates[shape] = _select(
                    Query(dialect), {table.name: table}, [(table.name, name, None)
                                                          for name in names],
                    filter, None, False, (), lock)[0]
            return text, {f"_mo{number}": value for number, value in enumerate(values)}
    what = [(table.name, name, None) for name in names]
    return _select(Query(dialect), {table.name: table}, what, filter, order, distinct, (), lock)


def select_joined(dialect: Dialect, schema: Schema, base: str,
                  what: Sequence[tuple[str, str, str | None]] | None, filter: Any,
                  order: Any = None, distinct: bool = False, joins: Sequence[Join] = ()
                  ) -> tuple[str, dict[str, Any]]:
    """``SELECT what FROM base JOIN ... WHERE filter ORDER BY order``.

    ``what`` lists ``(table, column, alias)`` (``column`` ``*`` for every column);
    None selects every column of ``base``. Dict filter keys and order names
    belong to the first table (base, then joined ones) that has them.
    """
    tables = {base: schema.table(base)}
    for join in joins:
        tables[join.table] = schema.table(join.table)
    if what is None:
        what = [(base, name, None) for name in tables[base].columns]
    return _select(Query(dialect), tables, what, filter, order, distinct, joins,
                   candidates=list(tables))


def _select(query: Query, tables: Mapping[str, Table], what: Sequence[tuple[str, str, str | None]],
            filter: Any, order: Any, distinct: bool, joins: Sequence[Join],
            lock: str | None = None, candidates: Sequence[str] | None = None
            ) -> tuple[str, dict[str, Any]]:
    locking = lock_clause(query.dialect, lock, distinct)
    columns = []
    for table_name, column, alias in what:
        table = tables[table_name]
        names = list(table.columns) if column == "*" else [column]
        table.check_fields(names)
        for name in names:
            item = query.ident(table_name, name)
            columns.append(f"{item} AS {query.ident(alias)}" if alias else item)
    parts = [f"SELECT {'DISTINCT ' if distinct else ''}{', '.join(columns)} "
             f"FROM {query.ident(next(iter(tables)))}"]
    for join in joins:
        side = join.side.upper()
        if side not in ("", "LEFT", "RIGHT", "INNER"):
            raise InvalidFilterError(f"side must be LEFT or RIGHT, not {join.side!r}")
        key = join.key
        on = " AND ".join(f"{query.ident(key.table, col)} = {query.ident(key.ref_table, ref)}"
                          for col, ref in key.pairs())
        parts.append(f"{side + ' ' if side else ''}JOIN {query.ident(join.table)} ON {on}")
    sql = " ".join(parts) + query.where(query.conditions(filter, tables, candidates))
    return sql + query.order_by(order, tables) + locking, query.params


def select_any(dialect: Dialect, table: Table, fields: Iterable[str],
               rows: Iterable[Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    """``SELECT fields FROM table`` of the rows matching any of ``rows`` (each a dict of
    equalities; an empty one matches every row)."""
    query = Query(dialect)
    alternatives = ["(" + " AND ".join(query.equalities(table, row) or ["1 = 1"]) + ")"
                    for row in rows]
    return (f"SELECT {query.columns(table, fields, qualify=True)} FROM "
            f"{query.ident(table.name)} WHERE {' OR '.join(alternatives)}", query.params)


def insert(dialect: Dialect, table: Table, values: Mapping[str, Any],
           returning: Sequence[str] | None = None, if_new: bool = False
           ) -> tuple[str, dict[str, Any]]:
    """INSERT one row, ``returning`` columns back (None: the primary key; empty: none).

    ``if_new``: nothing happens when a row with the same primary key exists.
    """
    query = Query(dialect)
    table.check_fields(values)
    # a column left out takes its DEFAULT (SQLite has no DEFAULT keyword in VALUES)
    values = {name: value for name, value in values.items() if value is not SQL_DEFAULT}
    names = [query.ident(name) for name in values]
    slots = [query.bind(value) for value in values.values()]
    if returning is None:
        returning = table.primary_key or tuple(values)[:1] or tuple(table.columns)[:1]
    target = query.ident(table.name)
    sql = f"INSERT INTO {target} ({', '.join(names)}) VALUES ({', '.join(slots)})" if names \
        else f"INSERT INTO {target} DEFAULT VALUES"
    if if_new:
        if not table.primary_key:
            raise ArgumentError(f"insert(if_new=True) into {table.name}: it has no primary key")
        sql += f" ON CONFLICT ({query.columns(table, table.primary_key)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {query.columns(table, returning)}"
    return sql, query.params


def next_keys(dialect: Dialect, table: Table, column: str, count: int
              ) -> tuple[str, dict[str, Any]]:
    """``count`` new values of the sequence that numbers ``table.column`` (a serial or
    identity column), in one statement: :meth:`~mother.dialects.base.Dialect.next_keys`,
    the column checked. Only where the dialect
    :attr:`~mother.dialects.base.Dialect.can_copy`."""
    table.check_fields([column])
    return dialect.next_keys(table.name, column, count)


def copy_in(dialect: Dialect, table: Table, columns: Sequence[str]) -> str:
    """``COPY table (columns) FROM STDIN``, names checked and quoted. COPY takes no bound
    parameters (its rows are its data), so the text is sent as it is: no ``%`` doubled."""
    if not columns:
        raise ArgumentError(f"COPY into {table.name} needs at least one column")
    table.check_fields(columns)
    names = ", ".join(dialect.quote(name) for name in columns)
    return f"COPY {dialect.quote(table.name)} ({names}) FROM STDIN"


def update(dialect: Dialect, table: Table, values: Mapping[str, Any], filter: Any,
           returning: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    """``UPDATE table SET values WHERE filter`` (any filter, Scoped and AllOf included),
    ``returning`` columns back."""
    query = Query(dialect)
    sets = query.assignments(table, values)
    sql = (f"UPDATE {query.ident(table.name)} SET {sets}"
           f"{query.where(query.conditions(filter, {table.name: table}))}")
    if returning:
        sql += f" RETURNING {query.columns(table, returning)}"
    return sql, query.params


def delete(dialect: Dialect, table: Table, filter: Any) -> tuple[str, dict[str, Any]]:
    """``DELETE FROM table WHERE filter`` (any filter, Scoped and AllOf included)."""
    query = Query(dialect)
    conditions = query.conditions(filter, {table.name: table})
    return f"DELETE FROM {query.ident(table.name)}{query.where(conditions)}", query.params


def declared(name: str, columns: Sequence[tuple[str, str]], primary_key: Sequence[str]) -> Table:
    """A table dbmother makes itself (the commit log, the web sessions): ``columns`` are
    ``(name, SQL type)``, every one NOT NULL. The types are SQL text written in code."""
    for identifier in (name, *(column for column, _type in columns)):
        if not isinstance(identifier, str) or not identifier or "\x00" in identifier:
            raise ArgumentError(f"table {name!r}: {identifier!r} is no SQL name (a non-empty "
                                "str without NUL)")
    table = Table(name, {column: Column(column, type_, nullable=False)
                         for column, type_ in columns}, tuple(primary_key))
    table.check_fields(table.primary_key)
    return table


def create_table(dialect: Dialect, table: Table) -> tuple[str, dict[str, Any]]:
    """``CREATE TABLE IF NOT EXISTS`` for a :func:`declared` table (no parameters, but run
    as a statement that has some, as every composed one is)."""
    query = Query(dialect)
    columns = [f"{query.ident(column.name)} {column.type}"
               + ("" if column.nullable else " NOT NULL") for column in table.columns.values()]
    if table.primary_key:
        columns.append(f"PRIMARY KEY ({query.columns(table, table.primary_key)})")
    return (f"CREATE TABLE IF NOT EXISTS {query.ident(table.name)} ({', '.join(columns)})",
            query.params)


def drop_table(dialect: Dialect, table: Table) -> tuple[str, dict[str, Any]]:
    """``DROP TABLE IF EXISTS`` for a :func:`declared` table (see :func:`create_table`)."""
    return f"DROP TABLE IF EXISTS {quoted(dialect, table.name)}", {}


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
    quote, ph = functools.partial(quoted, dialect), dialect.placeholder
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


def update_group(dialect: Dialect, table: Table, columns: Sequence[str],
                 keys: Sequence[str]) -> str | None:
    """One UPDATE of many rows, ``columns`` set where ``keys`` match, their values given
    as one array per column (:meth:`~mother.dialects.base.Dialect.update_from_arrays`),
    made once per table and shape; None where the dialect cannot
    (:attr:`~mother.dialects.base.Dialect.can_update_arrays`, and see its method)."""
    shape = (dialect.name, "update group", tuple(columns), tuple(keys))
    if shape in table.templates:
        return table.templates[shape] or None
    table.check_fields([*columns, *keys])
    text = None
    if dialect.can_update_arrays and columns and keys:
        types = [table.columns[name].type for name in (*columns, *keys)]
        text = dialect.update_from_arrays(table.name, columns, keys, types)
    table.templates[shape] = text or ""
    return text


def template_params(columns: Sequence[str], keys: Sequence[str], values: Mapping[str, Any],
                    key_values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters of one row for :func:`template`."""
    params = {f"c{i}": values[col] for i, col in enumerate(columns)}
    if keys:
        key_values = values if key_values is None else key_values
        for i, key in enumerate(keys):
            params[f"k{i}"] = key_values[key]
    return params
