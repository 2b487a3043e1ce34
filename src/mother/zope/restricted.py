"""What through-the-web code (Script (Python), Page Templates) may do with a connection.

Restricted code never gets a :class:`mother.Session` (``connection.session()`` is
private to trusted code): ``connection.script_session()`` returns a
:class:`ScriptSession`, an explicit acquisition wrapper in the connection's context
(it acquires nothing) whose only public names are the raw query helpers and record
helpers below, each protected by *Use Database Methods* (checked in the
connection's context, so a grant on a folder applies). Everything it
returns is plain data (lists, dicts, numbers, strings, dates), so nothing
leads on to the session, its driver connection, the pool or the settings:
its own state lives in attributes whose names start with ``_``, which
restricted code cannot even name.

*Use Database Methods* is the permission with which Zope guards calling a Z
SQL Method: code that may run a Z SQL Method through a connection may run
statements through that connection's session, and a site that moves from
another database adapter keeps its grants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from AccessControl.class_init import InitializeClass
from AccessControl.Permissions import use_database_methods
from AccessControl.SecurityInfo import ClassSecurityInfo, ModuleSecurityInfo
from Acquisition import Explicit

import mother
from mother.errors import MotherError

#: the errors a script may catch (``from mother.errors import NotUniqueError``)
SCRIPT_ERRORS = ("MotherError", "NotUniqueError", "UnknownTableError", "UnknownFieldError",
                 "ConfigError", "ParanoidError", "SessionClosedError")


class ScriptArgumentError(MotherError, TypeError):
    """An argument a script passed has a form the script API does not accept."""


def _store(argument: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ScriptArgumentError(
            f"{argument} must be a mapping of column names to values, not {type(value).__name__}")
    return dict(value)


def _names(argument: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not all(isinstance(item, str) for item in items):
        raise ScriptArgumentError(f"{argument} must be a column name or a list of them")
    return list(items)


class ScriptSession(Explicit):
    """The session of the current transaction, as restricted code may use it."""

    security = ClassSecurityInfo()
    security.declareObjectProtected(use_database_methods)
    __allow_access_to_unprotected_subobjects__ = 0

    def __init__(self, session: mother.Session) -> None:
        self._session = session

    def _builder(self, table: str) -> type[mother.DbMother]:
        return mother.getMotherBuilder(table, self._session.database)

    @security.protected(use_database_methods)
    def getName(self) -> str:
        """The session's name (as ``pg_stat_activity`` shows it)."""
        return self._session.name

    # -- raw queries: the text is the script's own SQL; values are always bound -------------
    @security.protected(use_database_methods)
    def oc_query(self, sql: str, params: Any = None) -> None:
        """Run a statement, no result."""
        self._session.oc_query(sql, _store("params", params) if params is not None else None)

    @security.protected(use_database_methods)
    def ov_query(self, sql: str, params: Any = None) -> Any:
        """Exactly one value."""
        return self._session.ov_query(sql, _store("params", params) if params is not None else None)

    @security.protected(use_database_methods)
    def or_query(self, sql: str, params: Any = None) -> dict[str, Any]:
        """Exactly one row, as a dict."""
        return self._session.or_query(sql, _store("params", params) if params is not None else None)

    @security.protected(use_database_methods)
    def mr_query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Every row, as dicts."""
        return self._session.mr_query(sql, _store("params", params) if params is not None else None)

    @security.protected(use_database_methods)
    def mq_query(self, sql: str, seq: Sequence[Any]) -> None:
        """Run a statement once per parameter set."""
        self._session.mq_query(sql, [_store("seq item", item) for item in seq])

    @security.protected(use_database_methods)
    def mg_query(self, sql: str, seq: Sequence[Any]) -> list[dict[str, Any]]:
        """Run a statement once per parameter set; every run's rows."""
        return self._session.mg_query(sql, [_store("seq item", item) for item in seq])

    # -- records and record sets: tables and columns are checked against the schema ---------
    @security.protected(use_database_methods)
    def load(self, table: str, store: Any) -> dict[str, Any]:
        """The one row of ``table`` matching ``store`` (``NotUniqueError`` otherwise)."""
        record = self._builder(table)(_store("store", store), mother.MO_LOAD, self._session)
        return record.getFields()

    @security.protected(use_database_methods)
    def insert(self, table: str, store: Any) -> dict[str, Any]:
        """Insert a row; its columns as stored (the new primary key included)."""
        record = self._builder(table)(_store("store", store), mother.MO_SAVE, self._session)
        return record.getFields()

    @security.protected(use_database_methods)
    def update(self, table: str, store: Any) -> None:
        """Update the row whose primary key ``store`` holds with its other columns."""
        self._builder(table)(_store("store", store), mother.MO_UP, self._session)

    @security.protected(use_database_methods)
    def delete(self, table: str, store: Any) -> None:
        """Delete the rows matching ``store``."""
        self._builder(table)(_store("store", store), mother.MO_DEL, self._session)

    @security.protected(use_database_methods)
    def box(self, table: str, filter: Any = None, fields: Any = None, order: Any = None
            ) -> list[dict[str, Any]]:
        """The rows of ``table`` matching ``filter`` (a mapping: values are bound), as dicts;
        ``fields`` and ``order`` are column names (``"-name"`` or ``"name DESC"`` descending)."""
        rows = mother.MotherBox(
            self._builder(table), _store("filter", filter) if filter is not None else None,
            mother.MO_LOAD, _names("fields", fields), _names("order", order),
            session=self._session)
        return rows.getRecords()


InitializeClass(ScriptSession)

_errors = ModuleSecurityInfo("mother.errors")
for _name in SCRIPT_ERRORS:
    _errors.declarePublic(_name)
