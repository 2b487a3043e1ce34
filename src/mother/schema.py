"""The database schema as dbmother sees it: tables, columns, keys and link tables.

Dialects read it from the live database (:meth:`Dialect.introspect`); it is
cached on the :class:`~mother.database.Database` and never pickled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import FlushError, UnknownFieldError, UnknownTableError


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    has_default: bool = False


@dataclasses.dataclass(frozen=True)
class ForeignKey:
    """``table(columns)`` references ``ref_table(ref_columns)``; composite keys keep their order."""

    table: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]

    def pairs(self) -> Iterator[tuple[str, str]]:
        """(local column, referenced column) pairs."""
        return zip(self.columns, self.ref_columns)


@dataclasses.dataclass(frozen=True)
class Link:
    """A link table relating ``left`` and ``right`` through two foreign keys."""

    table: str
    left: ForeignKey
    right: ForeignKey

    def towards(self, table: str) -> tuple[ForeignKey, ForeignKey]:
        """(key to ``table``, key to the other side), seen from ``table``."""
        if self.left.ref_table == table:
            return self.left, self.right
        return self.right, self.left


@dataclasses.dataclass
class Table:
    name: str
    columns: dict[str, Column]
    primary_key: tuple[str, ...]
    foreign_keys: list[ForeignKey] = dataclasses.field(default_factory=list)
    #: statements made by :func:`mother.sql.template`, kept per table (a new schema, new ones)
    templates: dict[tuple[Any, ...], str] = dataclasses.field(
        default_factory=dict, repr=False, compare=False)

    def column(self, name: str) -> Column:
        try:
            return self.columns[name]
        except (KeyError, TypeError):
            raise UnknownFieldError(self.name, str(name)) from None

    def check_fields(self, names: Iterable[str]) -> None:
        """Raise :class:`~mother.UnknownFieldError` for the first name that is not a column."""
        columns = self.columns
        for name in names:
            if name not in columns:
                raise UnknownFieldError(self.name, str(name))


class Schema:
    """Tables by name, with the foreign keys pointing at each and the link tables."""

    def __init__(self, tables: Iterable[Table], database: str = "default") -> None:
        self.database = database
        self.tables: dict[str, Table] = {table.name: table for table in tables}
        self.children: dict[str, list[ForeignKey]] = {name: [] for name in self.tables}
        for table in self.tables.values():
            for fk in table.foreign_keys:
                if fk.ref_table in self.children:
                    self.children[fk.ref_table].append(fk)
        self.links: list[Link] = [
            Link(table.name, table.foreign_keys[0], table.foreign_keys[1])
            for table in self.tables.values()
            if len(table.foreign_keys) == 2
        ]
        self._order = self._sort()

    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except (KeyError, TypeError):
            raise UnknownTableError(str(name), self.database) from None

    def __contains__(self, name: object) -> bool:
        return name in self.tables

    def child_keys(self, parent: str) -> list[ForeignKey]:
        """Foreign keys of other tables that reference ``parent``."""
        return list(self.children.get(parent, ()))

    def links_of(self, table: str) -> list[Link]:
        """Link tables with one side on ``table``."""
        return [link for link in self.links
                if table in (link.left.ref_table, link.right.ref_table)]

    def rank(self, table: str) -> int:
        """Position in parents-before-children order (for flushing)."""
        try:
            return self._order[table]
        except KeyError:
            raise UnknownTableError(table, self.database) from None

    def _sort(self) -> dict[str, int]:
        """Topological order of the tables by foreign key; self references are allowed."""
        parents = {
            name: {fk.ref_table for fk in table.foreign_keys
                   if fk.ref_table != name and fk.ref_table in self.tables}
            for name, table in self.tables.items()
        }
        order: dict[str, int] = {}
        remaining = dict(parents)
        while remaining:
            ready = sorted(name for name, deps in remaining.items() if deps <= order.keys())
            if not ready:
                # A cycle: rank its tables after the rest; flushing them together
                # is refused by the session when it matters (see FlushError).
                for name in sorted(remaining):
                    order[name] = len(order)
                self.cycles = sorted(remaining)
                break
            for name in ready:
                order[name] = len(order)
                del remaining[name]
        else:
            self.cycles = []
        return order

    def check_acyclic(self, tables: Iterable[str]) -> None:
        """Raise :class:`FlushError` when the given tables take part in a foreign-key cycle."""
        if not self.cycles:
            return
        involved = sorted(set(tables) & set(self.cycles))
        if len(involved) > 1:
            raise FlushError(
                f"tables {involved} reference each other in a cycle: flush them "
                "one at a time with explicit insert()/delete() calls")

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready description (``mother map --json``)."""
        return {
            "tables": {
                table.name: {
                    "columns": [dataclasses.asdict(column) for column in table.columns.values()],
                    "primary_key": list(table.primary_key),
                    "foreign_keys": [
                        {"columns": list(fk.columns), "ref_table": fk.ref_table,
                         "ref_columns": list(fk.ref_columns)}
                        for fk in table.foreign_keys
                    ],
                }
                for table in self.tables.values()
            },
            "links": [
                {"table": link.table, "left": link.left.ref_table, "right": link.right.ref_table}
                for link in self.links
            ],
        }
