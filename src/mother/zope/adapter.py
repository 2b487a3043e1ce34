"""What a Z SQL Method talks to: the database object of a Mother Database Connection.

``Shared.DC.ZRDB`` calls ``connection()`` to get a database object and then
``db.query(text, max_rows)``, which must return ``(columns, rows)``: a list
of column descriptions (``name``, ``type`` among ``i`` integer, ``n``
number, ``d`` date and time, ``s`` string) and a list of row tuples.
:class:`ZRDBAdapter` runs the text on the session of the current
transaction (the one ``connection.session()`` and ``get_session()`` give),
so Z SQL Methods, Python code and the ZODB commit or abort together.

Values that ``<dtml-sqlvar>`` and ``<dtml-sqltest>`` put into the text are
quoted by :func:`string_literal`.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
from collections.abc import Callable, Sequence
from typing import Any

import mother
from mother.errors import MotherError

#: a statement whose answer tells whether backslashes are plain characters in literals
BACKSLASH_PROBE = "SELECT 'a\\' AS probe"


class QuotingError(MotherError, ValueError):
    """A value cannot be written as an SQL string literal for this database."""


class ResultError(MotherError, ValueError):
    """A Z SQL Method's statements returned results Zope cannot represent."""


def string_literal(value: str, plain_backslashes: bool) -> str:
    """``value`` as an SQL string literal: quotes doubled, nothing else changed.

    This is the standard SQL form, which both SQLite and PostgreSQL (with
    ``standard_conforming_strings = on``, its default) read back as the same
    characters. A database that treats backslashes as escapes cannot be
    quoted safely this way and is refused, and so is a NUL character, which no
    literal can carry. Unlike Zope's own ``sql_quote`` no character is
    silently dropped.
    """
    if not plain_backslashes:
        raise QuotingError(
            "the database reads backslashes in string literals as escapes "
            "(PostgreSQL: standard_conforming_strings = off): values cannot be quoted "
            "safely; set standard_conforming_strings = on")
    if "\0" in value:
        raise QuotingError("a value for an SQL string literal contains a NUL character")
    return "'" + value.replace("'", "''") + "'"


def backslashes_are_plain(session: mother.Session) -> bool:
    """Ask the database itself how it reads ``'a\\'`` (the same question on every database).

    A database that reads the backslash as an escape answers with a syntax error
    (the literal never ends): that becomes a :class:`QuotingError` with the
    database's own message.
    """
    try:
        answer: object = session.ov_query(BACKSLASH_PROBE)
        return answer == "a\\"
    except Exception as error:
        if session.database.is_transient(error):
            raise
        raise QuotingError(
            f"could not check how the database reads backslashes in string literals ({error}); "
            "on PostgreSQL, set standard_conforming_strings = on") from error


def zope_type(value: Any) -> str:
    """The Zope column type of a value: ``i``, ``n``, ``d`` or ``s``."""
    if isinstance(value, bool):
        return "n"
    if isinstance(value, int):
        return "i"
    if isinstance(value, (float, decimal.Decimal)):
        return "n"
    if isinstance(value, (datetime.date, datetime.time)):
        return "d"
    return "s"


def describe(names: Sequence[str], description: Sequence[Any], rows: Sequence[tuple[Any, ...]]
             ) -> list[dict[str, Any]]:
    """Column descriptions in Zope's form; the type of a column comes from its first
    non-NULL value (a column without one is ``s``), the same way on every database."""
    columns = []
    for index, (name, item) in enumerate(zip(names, description)):
        value = next((row[index] for row in rows if row[index] is not None), None)
        size = item[3] if len(item) > 3 else None
        columns.append({"name": name, "type": zope_type(value) if value is not None else "s",
                        "width": size if isinstance(size, int) and size > 0 else 0,
                        "null": True})
    return columns


@dataclasses.dataclass
class Answer:
    """What one statement returned: column names (None when it returns no rows), the
    driver's column descriptions, the rows as tuples, and the row count."""

    names: list[str] | None
    description: list[Any]
    rows: list[tuple[Any, ...]]
    rowcount: int


def _fetch(max_rows: int) -> Callable[[Any], Answer]:
    def fetch(cursor: Any) -> Answer:
        if not cursor.description:
            return Answer(None, [], [], cursor.rowcount)
        description = list(cursor.description)
        names = [item[0] for item in description]
        seen = set()
        for name in names:
            if name in seen:
                raise ResultError(f"the result has two columns named {name!r}: "
                                  "give one of them another name (AS ...)")
            seen.add(name)
        fetched = cursor.fetchmany(max_rows) if max_rows else cursor.fetchall()
        rows = [tuple(row[name] for name in names) if isinstance(row, dict) else tuple(row)
                for row in fetched]
        return Answer(names, description, rows, len(rows))
    return fetch


def run_statement(session: mother.Session, sql: str, max_rows: int = 0) -> Answer:
    """Run one statement without parameters on ``session`` (as the session runs its own:
    in its transaction, marked as a write unless it reads, errors translated)."""
    answer: Answer = session.run(sql, None, _fetch(max_rows))
    return answer


class ZRDBAdapter:
    """The database object of a connection (what ``connection()`` returns to ``Shared.DC.ZRDB``).

    It has no security declarations: restricted code cannot use it (the
    connection's ``__call__`` is protected by *Use Database Methods* too).
    """

    def __init__(self, session: mother.Session) -> None:
        self._session = session

    def query(self, query_string: str, max_rows: int | None = None) -> tuple[list[Any], list[Any]]:
        """Run the statements of a rendered Z SQL Method (separated by NUL characters).

        The result is that of the statement that returned rows; several such
        statements must have the same columns (the last one's rows are kept).
        """
        result: Answer | None = None
        for statement in query_string.split("\0"):
            if not statement.strip():
                continue
            answer = run_statement(self._session, statement, max_rows or 0)
            if answer.names is None:
                continue
            if result is not None and result.names != answer.names:
                raise ResultError(
                    f"two statements of one Z SQL Method returned different columns "
                    f"({', '.join(result.names or ())} and {', '.join(answer.names)})")
            result = answer
        if result is None or result.names is None:
            return [], []
        return describe(result.names, result.description, result.rows), result.rows
