"""Writing many rows at once near the database's limit: for inserts, keys taken from the
sequence in one round trip, then the rows sent by ``COPY``; for updates, one statement
whose values are arrays (:func:`update_rows`).

Each row gets its key because dbmother chose it: key *n* of the sequence's answer
is written into row *n* and sent with it, so the keys are in row order by
construction (not by the order a multi-row ``INSERT … RETURNING`` happens to
answer in). Where the path does not apply, :func:`insert_rows` says so and the
caller inserts row by row (one ``INSERT … RETURNING`` per row, pipelined).
``MotherMany(MO_SAVE)`` and the unit of work's flush use it from
:data:`BULK_ROWS` rows of one shape on.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import itertools
import operator
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, Protocol

from . import sql
from .database import Database
from .dialects import Dialect
from .dialects.base import T
from .schema import Table

#: rows of one shape (one table, the same columns) from which they are sent by COPY;
#: below it one pipelined INSERT per row costs fewer round trips (COPY takes three:
#: the keys, the COPY, its data)
BULK_ROWS = 100

#: the Python types whose values an array carries as they would go one by one (a
#: datetime or time is left out: a list is dumped by the type of its first value, and
#: a naive and an aware one would not go alike)
PLAIN = frozenset({int, float, str, bool, bytes, decimal.Decimal, uuid.UUID, datetime.date,
                   datetime.timedelta})

#: the mark, among a table's templates, of a key column no sequence numbers (asked once
#: per schema: a new schema asks again)
UNNUMBERED = "bulk: no sequence"


class Runs(Protocol):
    """Where the rows go: a session or the shared connection (an
    :class:`~mother.executor.Executor`)."""

    database: Database

    def check_writable(self, what: str) -> None: ...
    def run_while(self, sql: str, params: Any, fetch: Callable[[Any], Any],
                  meanwhile: Callable[[], T]) -> tuple[Any, T]: ...
    def run_copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> int: ...


def insert_rows(executor: Runs, table: Table, columns: Sequence[str],
                rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """INSERT ``rows`` (their values for ``columns``) with one COPY; per row, in order, the
    dict of its primary key's values. None when this path does not apply: fewer than
    :data:`BULK_ROWS` rows, a database without COPY, no column to copy, more than one
    key column missing, a missing key column no sequence numbers, or a value that is
    ``SQL_DEFAULT`` (found once the keys were asked: they are then lost, nothing else
    is sent).

    A failure leaves nothing of the rows written (COPY is one statement); the keys
    taken from the sequence are then lost, as those of a failed INSERT are.
    """
    copied = _copy(executor, table, columns, rows)
    if copied is None:
        return None
    missing, keys = copied
    key = table.primary_key
    if missing is None:
        return [{name: row[name] for name in key} for row in rows]
    if key == (missing,):
        return [{missing: number} for number in keys]
    return [{name: number if name == missing else row[name] for name in key}
            for row, number in zip(rows, keys)]


def insert_into_rows(executor: Runs, table: Table, columns: Sequence[str],
                     rows: Sequence[MutableMapping[str, Any]]) -> bool:
    """:func:`insert_rows`, the keys the sequence gave written into the rows themselves
    once the COPY succeeded (``MotherMany``'s dicts); False when the path does not
    apply (nothing sent, nothing written)."""
    copied = _copy(executor, table, columns, rows)
    if copied is None:
        return False
    missing, keys = copied
    if missing is not None:  # the rest of the key was in the rows already
        collections.deque(map(operator.setitem, rows, itertools.repeat(missing), keys),
                          maxlen=0)
    return True


def _copy(executor: Runs, table: Table, columns: Sequence[str],
          rows: Sequence[Mapping[str, Any]]) -> tuple[str | None, list[Any]] | None:
    """The COPY of :func:`insert_rows`: the key column taken from the sequence (None:
    none was missing) and its keys, in row order; None when the path does not apply.

    The keys are asked first; while the server numbers them, each column's values are
    taken out of the rows (:func:`operator.itemgetter` over them, at C speed) and
    checked for ``SQL_DEFAULT``; then key *n* and row *n*'s values make the *n*-th row
    copied (:class:`_Zipped`)."""
    dialect = executor.database.dialect
    if not dialect.can_copy or len(rows) < BULK_ROWS or not columns:
        return None
    key = table.primary_key
    missing = [name for name in key if name not in columns]
    if len(missing) > 1 or (missing and (UNNUMBERED, missing[0]) in table.templates):
        return None
    executor.check_writable(f"an INSERT of {len(rows)} rows into {table.name}")

    def by_column() -> list[list[Any]] | None:
        values = [list(map(operator.itemgetter(name), rows)) for name in columns]
        default = itertools.repeat(sql.SQL_DEFAULT)
        if any(any(map(operator.is_, column, default)) for column in values):
            return None
        return values

    if not missing:
        values = by_column()
        if values is None:
            return None
        executor.run_copy(sql.copy_in(dialect, table, columns), _Zipped(values))
        return None, []
    text, params = sql.next_keys(dialect, table, missing[0], len(rows))
    keys, values = executor.run_while(text, params, lambda cursor: cursor.fetchone()["k"],
                                      by_column)
    if keys is None or len(keys) != len(rows):
        table.templates[(UNNUMBERED, missing[0])] = ""
        return None
    if values is None:
        return None
    executor.run_copy(sql.copy_in(dialect, table, [missing[0], *columns]),
                      _Zipped([keys, *values]))
    return missing[0], keys


class _Zipped:
    """The rows copied: value *n* of each column makes row *n*, the tuples made as the
    rows are read (a new :func:`zip` each time: it reuses its tuple when nobody keeps it,
    so nothing is held per row)."""

    __slots__ = ("columns",)

    def __init__(self, columns: Sequence[Sequence[Any]]) -> None:
        self.columns = columns

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return zip(*self.columns)


def update_rows(dialect: Dialect, table: Table, columns: Sequence[str], keys: Sequence[str],
                rows: Sequence[tuple[Mapping[str, Any], Sequence[Any]]]
                ) -> tuple[str, dict[str, Any]] | None:
    """One UPDATE for ``rows`` (each: its values, by column, and its primary key's),
    ``columns`` set where ``keys`` match: the statement (``mother.sql.update_group``)
    and its one parameter set, holding ``mo_rows``, their number, for the dialect to
    guard it (each row must change). None when this path does not apply: fewer than
    :data:`BULK_ROWS` rows, a database without it, or a column whose values are not all
    of one :data:`PLAIN` type (None aside): the rows then go one UPDATE each."""
    if len(rows) < BULK_ROWS or not dialect.can_update_arrays:
        return None
    arrays = [[values[name] for values, _ in rows] for name in columns]
    arrays += [[key[i] for _, key in rows] for i in range(len(keys))]
    for array in arrays:
        kinds = set(map(type, array))
        kinds.discard(type(None))
        if len(kinds) > 1 or not kinds <= PLAIN:
            return None
    text = sql.update_group(dialect, table, columns, keys)
    if text is None:
        return None
    params: dict[str, Any] = {f"a{i}": array for i, array in enumerate(arrays)}
    params["mo_rows"] = len(rows)
    return text, params
