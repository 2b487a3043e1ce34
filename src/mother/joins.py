"""How tables relate (foreign keys, link tables) and the pieces of a statement over several
tables: joins, and filters scoped to one of the tables.

Used by the record sets (:mod:`mother.sets`) and the child and relation
methods (:mod:`mother.manager`); the statements themselves are composed by
:mod:`mother.sql`. Nothing here writes SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import MotherError, UnknownFieldError
from .schema import ForeignKey, Link, Schema, Table


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


@dataclasses.dataclass(frozen=True)
class Join:
    """JOIN ``table`` ON the columns of ``key`` (which links it to a table already joined)."""

    table: str
    key: ForeignKey
    side: str = ""
