"""The dbmother error hierarchy.

Every error dbmother raises derives from :class:`MotherError`.  Errors of the
database driver (``psycopg.errors.*``, ``sqlite3.Error``) pass through
unchanged, so callers catch them exactly as they would without dbmother, with
one exception: a value the driver refuses (a data error, SQLSTATE class 22, or
a Python type it cannot send) in a record's statement or a raw query becomes a
:class:`BadValueError` naming the column or parameter, the driver's error kept
as ``__cause__``; and a statement whose server-side prepared statement is gone
becomes a :class:`PreparedStatementLostError` (it says what to set).
"""

from __future__ import annotations

import sys


class MotherError(Exception):
    """Base class of all dbmother errors."""


class ConfigError(MotherError, ValueError):
    """A setting is missing or has an invalid value.

    ``key`` names the setting as its user wrote it (``pool_max`` in an INI file
    or a keyword, ``mother.pool_max`` in Pyramid's settings, the field of a
    Zope form), ``value`` is the value refused (None when it is missing) and
    ``reason`` says what was expected; the message is made of the three.
    """

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(f"setting {key!r} = {value!r}: {reason}")
        self.key = key
        self.value = value
        self.reason = reason


class ArgumentError(MotherError, TypeError):
    """A public function or class got an argument of the wrong kind (the message says which)."""


class UnsupportedDriverError(MotherError, ImportError):
    """The installed database driver is a version dbmother does not support: raised when
    its dialect is imported (the first database of that kind is registered, before any
    connection), with a message naming the supported range."""


class SessionClosedError(MotherError):
    """A session (or a record bound to it) was used after it ended."""


class UnknownTableError(MotherError, LookupError):
    """The table does not exist in the database schema."""

    def __init__(self, table: str, database: str = "default") -> None:
        super().__init__(f"unknown table {table!r} in database {database!r}")
        self.table = table


class UnknownFieldError(MotherError, LookupError):
    """The column does not exist in the table (``table`` None: in no table of the database)."""

    def __init__(self, table: str | None, field: str, hint: str = "") -> None:
        where = f"in table {table!r}" if table is not None else "in any table"
        super().__init__(f"unknown column {field!r} {where}{': ' + hint if hint else ''}")
        self.table = table
        self.field = field


class BadValueError(MotherError, ValueError):
    """The database driver refused a value; names the column (or parameter) it was for.

    The driver's own error is kept as ``__cause__``.
    """

    def __init__(self, what: str, value: object, reason: str) -> None:
        super().__init__(f"{what}: the database refused the value {value!r} ({reason})")
        self.what = what
        self.value = value


class NotUniqueError(MotherError):
    """A query that must match exactly one row matched none or several."""

    def __init__(self, what: str, count: int, unit: str = "row") -> None:
        found = f"no {unit}" if count == 0 else f"{count} {unit}" + ("s" if count > 1 else "")
        super().__init__(f"{what}: expected exactly one {unit}, got {found}")
        self.count = count


class NotLoadedError(MotherError, KeyError):
    """A column that exists but was not loaded into the record (use ``autoload=True``)."""


class ParanoidError(MotherError):
    """A write without a full primary key on a paranoid record or database."""


class PrimaryKeyError(MotherError):
    """A primary key is missing where one is needed, or would be changed."""


class TransactionManagedError(MotherError):
    """The session is joined to a transaction: the transaction manager owns its outcome."""


class RolledBackError(MotherError):
    """The server rolled the transaction back instead of committing (or preparing) it:
    a statement of it had failed earlier and its error was caught."""


class PreparedStatementLostError(MotherError):
    """A statement dbmother had prepared on a connection is gone from the server: a pooler
    in transaction mode ran the transaction on another server connection (set ``pooler``),
    or ``DISCARD ALL`` dropped it. The driver's error is kept as ``__cause__``; the
    transaction has failed (roll it back)."""


class CommitOutcomeUnknownError(MotherError):
    """The reply to a COMMIT was lost and the server could not tell whether it committed.

    Nothing was re-sent. ``session`` names the session, ``xid`` is the
    transaction's id on the server when it was known (an administrator can ask
    ``SELECT pg_xact_status('XID')`` later), ``status`` what the server said.
    """

    def __init__(self, message: str, session: str, xid: int | None = None,
                 status: str | None = None) -> None:
        super().__init__(message)
        self.session = session
        self.xid = xid
        self.status = status
class ReadOnlySessionError(MotherError):
    """A write was asked of a read-only session; it was refused before anything was sent."""


class StaleRecordError(MotherError):
    """An UPDATE or DELETE of a loaded row matched no row: another transaction deleted it
    (or changed its key) since it was loaded. Retrying the transaction reads it again."""

    def __init__(self, table: str, key: tuple[object, ...], what: str) -> None:
        shown = key[0] if len(key) == 1 else key
        super().__init__(f"{what} of {table} row {shown!r} matched no row: it was deleted "
                         "(or its key changed) by another transaction since it was loaded")
        self.table = table
        self.key = key


class DeletedRecordError(MotherError):
    """A change to a record whose row this session deletes (its DELETE is pending or
    owed): refused before anything changes."""


class ConnectionLostError(MotherError):
    """The session's connection broke mid-transaction; ``rollback()`` starts again."""


class PoolTimeoutError(MotherError):
    """No connection became available within ``pool_timeout``."""


class FlushError(MotherError):
    """The pending changes of a session cannot be written (for example a foreign-key cycle)."""


class SessionConflictError(MotherError):
    """An object belongs to another session."""


class RecoveryError(MotherError):
    """Recovery refused to decide anything, before touching a branch: the message says why
    and what to do (for example two of its databases carry one database id)."""


class MoWrongFields(MotherError):
    """MotherCaster: invalid fields (``ifields``) or missing required fields (``mfields``)."""

    def __init__(self, ifields: list[str] | None = None, mfields: list[str] | None = None) -> None:
        self.ifields = list(ifields or [])
        self.mfields = list(mfields or [])
        super().__init__(f"invalid fields {self.ifields}, missing fields {self.mfields}")


def add_note(error: BaseException, note: str) -> None:
    """Add ``note`` to ``error`` (PEP 678: shown under its traceback; kept as
    ``__notes__`` on Python 3.10, which does not show them)."""
    if sys.version_info >= (3, 11):
        error.add_note(note)
    else:
        error.__dict__.setdefault("__notes__", []).append(note)
