"""Composing statements over several tables: joins, scoped filters and bulk templates.

Used by the record sets (:mod:`mother.sets`) and the child and relation
methods (:mod:`mother.manager`). Identifiers are quoted by the dialect and
checked against the schema; values are always bound parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .dialects.base import Dialect
from .errors import MotherError, UnknownFieldError
from .schema import ForeignKey, Link, Schema, Table
from .sql import InvalidFilterError, MoFilter, Query, order_words


class RelationError(MotherError, LookupError):
    """Two tables are not related the way the call needs (no foreign key, no link table)."""


class AmbiguousRelationError(RelationError):
    """Several link tables (or foreign keys) relate two tables: name the one to use."""


# -- finding how tables relate --------------------------------------------------------------
def child_key(schema: Schema, parent: str, child: str) -> ForeignKey:
    """The foreign key of ``child`` that references ``parent`` (exactly one)."""
    keys = [fk for fk in schema.table(child).foreign_keys if fk.ref_table == parent]
    if not keys:
        raise RelationError(f"{child} has no foreign key to {parent}")
    if len(keys) > 1:
        raise AmbiguousRelationError(
            f"{child} has {len(keys)} foreign keys to {parent}: write the query by hand")
    return keys[0]


def is_child(schema: Schema, parent: str, child: str) -> bool:
    return any(fk.ref_table == parent for fk in schema.table(child).foreign_keys)


def find_link(schema: Schema, one: str, other: str, r_tbl: str | None = None) -> Link:
    """The link table relating ``one`` and ``other`` (``r_tbl`` names it when several do)."""
    candidates = [link for link in schema.links_of(one)
                  if {link.left.ref_table, link.right.ref_table} == {one, other}]
    if r_tbl is not None:
        chosen = [link for link in candidates if link.table == r_tbl]
        if not chosen:
            schema.table(r_tbl)  # UnknownTableError first
            raise RelationError(f"{r_tbl} does not link {one} and {other}")
        return chosen[0]
    if not candidates:
        raise RelationError(f"no link table relates {one} and {other}")
    if len(candidates) > 1:
        names = sorted(link.table for link in candidates)
        raise AmbiguousRelationError(
            f"{one} and {other} are linked by {names}: pass r_tbl= to choose one")
    return candidates[0]


def related_tables(schema: Schema, table: str) -> list[str]:
    """Every table related to ``table`` through a link table."""
    out: list[str] = []
    for link in schema.links_of(table):
        _mine, theirs = link.towards(table)
        if theirs.ref_table not in out:
            out.append(theirs.ref_table)
    return out


# -- filters over several tables -------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Scoped:
    """A filter whose dict keys are columns of the first of ``tables`` that has them."""

    filter: Any
    tables: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class AllOf:
    """Every one of ``parts`` (filters, Scoped filters) must hold."""

    parts: tuple[Any, ...]


def owner(tables: Mapping[str, Table], candidates: Sequence[str], name: str) -> tuple[Table, str]:
    """The table and column a name (``col`` or ``table.col``) refers to."""
    table_name, _, column = name.rpartition(".")
    if table_name:
        if table_name not in tables:
            raise UnknownFieldError(candidates[0], name)
        tables[table_name].column(column)
        return tables[table_name], column
    for candidate in candidates:
        if column in tables[candidate].columns:
            return tables[candidate], column
    raise UnknownFieldError(candidates[0], name)


def conditions(query: Query, filter: Any, tables: Mapping[str, Table],
               candidates: Sequence[str]) -> list[str]:
    """Compile a filter: dict (bound), MoFilter, trusted string, Scoped, AllOf or None."""
    if isinstance(filter, AllOf):
        return [cond for part in filter.parts
                for cond in conditions(query, part, tables, candidates)]
    if isinstance(filter, Scoped):
        return conditions(query, filter.filter, tables, filter.tables)
    if isinstance(filter, Mapping):
        groups: dict[str, tuple[Table, dict[str, Any]]] = {}
        for name, value in filter.items():
            table, column = owner(tables, candidates, str(name))
            groups.setdefault(table.name, (table, {}))[1][column] = value
        return [cond for table, values in groups.values()
                for cond in query.equalities(table, values)]
    if filter is not None and not isinstance(filter, (str, MoFilter)):
        if isinstance(filter, (list, tuple, set, frozenset)):
            raise InvalidFilterError("a list filter needs a store: use MoFilter(keys, store=...)")
        raise InvalidFilterError(f"a filter must be a dict, a MoFilter or a string, "
                                 f"not {type(filter).__name__}")
    return query.conditions(filter, tables, tables[candidates[0]])


def qualify_order(order: Any, tables: Mapping[str, Table], candidates: Sequence[str]) -> Any:
    """Give each unqualified ORDER BY column the table that has it."""
    if not order:
        return order
    items = [order] if isinstance(order, str) else list(order)
    out = []
    for item in items:
        words = order_words(item)
        name = words[0]
        sign = "-" if name.startswith("-") else ""
        table, column = owner(tables, candidates, name.lstrip("-"))
        out.append(" ".join([f"{sign}{table.name}.{column}", *words[1:]]))
    return out


# -- SELECT with joins -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Join:
    """JOIN ``table`` ON the columns of ``key`` (which links it to a table already joined)."""

    table: str
    key: ForeignKey
    side: str = ""


def on_clause(query: Query, key: ForeignKey) -> str:
    return " AND ".join(f"{query.ident(key.table, col)} = {query.ident(key.ref_table, ref)}"
                        for col, ref in key.pairs())


def select(dialect: Dialect, schema: Schema, base: str, what: Sequence[tuple[str, str, str | None]]
           | None, filter: Any, order: Any = None, distinct: bool = False,
           joins: Sequence[Join] = ()) -> tuple[str, dict[str, Any]]:
    """``SELECT what FROM base JOIN ... WHERE filter ORDER BY order``.

    ``what`` lists ``(table, column, alias)`` (``column`` ``*`` for every column);
    None selects every column of ``base``. Dict filter keys and order names
    belong to the first table (base, then joined ones) that has them.
    """
    query = Query(dialect)
    tables = {base: schema.table(base)}
    for join in joins:
        tables[join.table] = schema.table(join.table)
    candidates = list(tables)
    if what is None:
        what = [(base, name, None) for name in tables[base].columns]
    columns = []
    for table_name, column, alias in what:
        table = tables[table_name]
        names = list(table.columns) if column == "*" else [column]
        table.check_fields(names)
        for name in names:
            item = query.ident(table_name, name)
            columns.append(f"{item} AS {query.ident(alias)}" if alias else item)
    parts = [f"SELECT {'DISTINCT ' if distinct else ''}{', '.join(columns)} "
             f"FROM {query.ident(base)}"]
    for join in joins:
        side = join.side.upper()
        if side not in ("", "LEFT", "RIGHT", "INNER"):
            raise InvalidFilterError(f"side must be LEFT or RIGHT, not {join.side!r}")
        parts.append(f"{side + ' ' if side else ''}JOIN {query.ident(join.table)} "
                     f"ON {on_clause(query, join.key)}")
    conds = conditions(query, filter, tables, candidates)
    sql = " ".join(parts) + query.where(conds)
    sql += query.order_by(qualify_order(order, tables, candidates), tables, tables[base])
    return sql, query.params


def update(dialect: Dialect, table: Table, values: Mapping[str, Any], filter: Any
           ) -> tuple[str, dict[str, Any]]:
    """``UPDATE table SET values WHERE filter`` (filter may be Scoped or AllOf)."""
    query = Query(dialect)
    sets = query.assignments(table, values)
    conds = conditions(query, filter, {table.name: table}, [table.name])
    return f"UPDATE {query.ident(table.name)} SET {sets}{query.where(conds)}", query.params


def delete(dialect: Dialect, table: Table, filter: Any) -> tuple[str, dict[str, Any]]:
    """``DELETE FROM table WHERE filter``."""
    query = Query(dialect)
    conds = conditions(query, filter, {table.name: table}, [table.name])
    return f"DELETE FROM {query.ident(table.name)}{query.where(conds)}", query.params


# -- multi-row inserts ----------------------------------------------------------------------
def insert_values(dialect: Dialect, table: Table, columns: Sequence[str], count: int,
                  returning: Sequence[str]) -> str:
    """One INSERT of ``count`` rows; parameter ``v{n}`` is value n, row by row."""
    table.check_fields([*columns, *returning])
    quote, ph, width = dialect.quote, dialect.placeholder, len(columns)
    rows = ", ".join("(" + ", ".join(ph(f"v{r * width + c}") for c in range(width)) + ")"
                     for r in range(count))
    return (f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, columns))}) VALUES {rows}"
            f" RETURNING {', '.join(map(quote, returning))}")
