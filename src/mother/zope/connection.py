"""The ZMI-addable "Mother Database Connection", a Zope SQL connection (``Shared.DC.ZRDB``).

Only settings live in the ZODB (plain strings and numbers). The
:class:`mother.Database` with its pool is kept in the process-wide registry
of dbmother under a private name and cached on the object in a volatile
(``_v_``) attribute, so it is created again on first use after a restart and
after the settings change.

Z SQL Methods find it (``_isAnSQLConnection``), call it for the database
object of :mod:`mother.zope.adapter` and run their statements on the
session of the current transaction: the one :meth:`MotherConnection.session`
and ``mother.zope.get_session(connection.database_name)`` return.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from typing import Any, cast

import transaction
from AccessControl.class_init import InitializeClass
from AccessControl.Permissions import (
    change_database_connections,
    test_database_connections,
    use_database_methods,
    view_management_screens,
)
from AccessControl.SecurityInfo import ClassSecurityInfo
from OFS.ObjectManager import checkValidId
from OFS.role import RoleManager
from OFS.SimpleItem import Item
from Products.PageTemplates.PageTemplateFile import PageTemplateFile
from Shared.DC.ZRDB.Connection import Connection
from zExceptions import BadRequest
from zope.interface import implementer

import mother
from mother import tm
from mother.config import make_settings
from mother.database import check_settings
from mother.errors import ConfigError

from .adapter import ZRDBAdapter, backslashes_are_plain, run_statement, string_literal
from .interfaces import IMotherConnection
from .restricted import ScriptSession
from .retry import install_hook
from .status import error_log

log = logging.getLogger(__name__)

META_TYPE = "Mother Database Connection"
ADD_PERMISSION = "Add Mother Database Connections"
USE_PERMISSION = use_database_methods
TWOPHASE_CHOICES = ("auto", "on", "off")
SETTINGS = ("dsn", "pool_min", "pool_max", "pool_timeout", "pool_type", "twophase")
#: rows the Test tab shows at most
TEST_ROWS = 100

_lock = threading.Lock()
_form = PageTemplateFile("www/form.pt", globals())


def checked_settings(dsn: Any, pool_min: Any, pool_max: Any, pool_timeout: Any,
                     pool_type: Any, twophase: Any) -> dict[str, Any]:
    """The settings as they are stored, read by dbmother's settings reader: a bad one
    raises :class:`~mother.ConfigError` naming its form field (the dsn is checked by the
    dialect it names, without connecting)."""
    if twophase not in TWOPHASE_CHOICES:
        raise ConfigError("twophase", twophase, f"expected one of {', '.join(TWOPHASE_CHOICES)}")
    values = {"dsn": dsn or "", "pool_min": pool_min, "pool_max": pool_max,
              "pool_timeout": pool_timeout, "pool_type": pool_type, "twophase": twophase}
    settings = check_settings(_mother_settings(values, "check"), "check")
    stored = {key: getattr(settings, key) for key in SETTINGS}
    # as typed: the form's word for twophase; the dsn without MOTHER_DSN's value
    stored.update(twophase=twophase, dsn=(dsn or "").strip())
    return stored


def _shown(error: ConfigError) -> dict[str, str]:
    """A refused setting as the forms show it."""
    return {"key": error.key, "message": str(error)}


def _mother_settings(values: dict[str, Any], id: str) -> dict[str, Any]:
    settings = dict(values)
    settings["twophase"] = {"on": True, "off": False}.get(values["twophase"])
    settings["persistent_one"] = False  # Zope code works in transaction-scoped sessions
    settings["session_name"] = f"Zope-{id}"
    return settings


@implementer(IMotherConnection)
class MotherConnection(Connection):
    """Settings of a dbmother database, and the way to its transaction-scoped session."""

    meta_type = META_TYPE
    database_type = "Mother"
    zmi_icon = "fas fa-database"
    _isAnSQLConnection = 1
    connect_on_load = False  # the pool is made on first use
    security = ClassSecurityInfo()
    security.setPermissionDefault(USE_PERMISSION, ("Manager",))
    security.setPermissionDefault(change_database_connections, ("Manager",))
    # the settings (the dsn may hold a password) are for trusted code and the forms only
    security.declarePrivate(*SETTINGS, "database_name", "database", "session", "connect")

    manage_options = (
        {"label": "Properties", "action": "manage_main"},
        {"label": "Test", "action": "manage_testForm"},
        {"label": "Status", "action": "manage_status"},
    ) + RoleManager.manage_options + Item.manage_options

    # defaults, also for objects stored by an older version
    title = ""
    dsn = ""
    pool_min = 1
    pool_max = 10
    pool_timeout = 15.0
    pool_type = "limited"
    twophase = "auto"
    _uid = ""

    _test_template = PageTemplateFile("www/test.pt", globals())
    _status_template = PageTemplateFile("www/status.pt", globals())

    def __init__(self, id: str, title: str = "", dsn: str = "", pool_min: Any = 1,
                 pool_max: Any = 10, pool_timeout: Any = 15.0, pool_type: str = "limited",
                 twophase: str = "auto") -> None:
        self.id = id
        self._uid = uuid.uuid4().hex
        self._set(title, checked_settings(dsn, pool_min, pool_max, pool_timeout, pool_type,
                                          twophase))

    def _set(self, title: str, values: dict[str, Any]) -> None:
        self.title = title
        for key, value in values.items():
            setattr(self, key, value)
        self._v_database: mother.Database | None = None

    def _values(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in ("id", "title", *SETTINGS)}

    # -- the database --------------------------------------------------------------------
    @property
    def database_name(self) -> str:
        """The private name of this object's database in dbmother's registry."""
        return f"zope-{self._uid or self.getId()}"

    def _mother_settings(self) -> dict[str, Any]:
        return _mother_settings({key: getattr(self, key) for key in SETTINGS}, self.getId())

    def database(self) -> mother.Database:
        """The configured database, (re)created when missing or when the settings changed."""
        settings = self._mother_settings()
        wanted = make_settings(settings, self.database_name)
        cached: mother.Database | None = getattr(self, "_v_database", None)
        if cached is not None and cached.settings == wanted and self._registered(cached):
            return cached
        with _lock:
            current = self._configured()
            if current is None or current.settings != wanted:
                log.info("creating the pool of %s (%s)", "/".join(self.getPhysicalPath()),
                         self.database_name)
                current = mother.init_mother(name=self.database_name, **settings)
                install_hook(current)
        self._v_database = current
        return current

    def _configured(self) -> mother.Database | None:
        try:
            return mother.get_database(self.database_name)
        except ConfigError:
            return None

    def _registered(self, database: mother.Database) -> bool:
        return self._configured() is database

    def session(self) -> mother.Session:
        """The session scoped to the current request's transaction (joined on first use).

        For trusted code; restricted code uses :meth:`script_session`.
        """
        return tm.current_session(self.database(), transaction.manager)

    @security.protected(USE_PERMISSION)
    def script_session(self) -> ScriptSession:
        """The session of the current transaction as Python Scripts and templates use it."""
        return cast("ScriptSession", ScriptSession(self.session()).__of__(self))

    # -- Shared.DC.ZRDB ------------------------------------------------------------------
    @security.protected(USE_PERMISSION)
    def __call__(self, v: Any = None) -> ZRDBAdapter:
        """The database object a Z SQL Method runs its statements on."""
        return ZRDBAdapter(self.session())

    def connect(self, s: Any = None) -> MotherConnection:
        """(Re)create the database and its pool from the settings."""
        self.database()
        return self

    def connected(self) -> bool:
        """Whether this process has made the database (it is made on first use)."""
        cached = getattr(self, "_v_database", None)
        return cached is not None and self._registered(cached)

    # the pool is made on first use: "(not connected)" would only mean "not used yet"
    title_and_id = Item.title_and_id
    title_or_id = Item.title_or_id

    def sql_quote__(self, v: Any) -> str:
        """``<dtml-sqlvar>`` and ``<dtml-sqltest>``: a string as an SQL literal."""
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        database = self.database()
        known = getattr(self, "_v_plain_backslashes", None)
        if known is None or known[0] is not database:
            known = (database, backslashes_are_plain(self.session()))
            self._v_plain_backslashes = known
        return string_literal(str(v), known[1])

    # -- management ----------------------------------------------------------------------
    @security.protected(view_management_screens)
    def manage_main(self, REQUEST: Any = None, message: str = "",
                    error: dict[str, str] | None = None,
                    values: dict[str, Any] | None = None, **kw: Any) -> str:
        """The Properties tab."""
        return cast("str", _form.__of__(self)(adding=False, settings=values or self._values(),
                                  message=message, error=error))

    @security.protected(change_database_connections)
    def manage_edit(self, title: str = "", dsn: str = "", pool_min: Any = 1, pool_max: Any = 10,
                    pool_timeout: Any = 15.0, pool_type: str = "limited", twophase: str = "auto",
                    REQUEST: Any = None) -> Any:
        """Change the settings; the pool is re-created on next use.

        A bad value changes nothing: the form comes back with the setting named.
        """
        try:
            values = checked_settings(dsn, pool_min, pool_max, pool_timeout, pool_type, twophase)
        except ConfigError as error:
            if REQUEST is None:
                raise
            REQUEST.RESPONSE.setStatus(400)
            return self.manage_main(REQUEST, error=_shown(error), values={
                "id": self.getId(), "title": title, "dsn": dsn, "pool_min": pool_min,
                "pool_max": pool_max, "pool_timeout": pool_timeout, "pool_type": pool_type,
                "twophase": twophase})
        self._set(title, values)
        if REQUEST is not None:
            return self.manage_main(REQUEST, message="Saved changes.")
        return None

    @security.protected(test_database_connections)
    def manage_testForm(self, REQUEST: Any = None, run: str = "", sql: str = "",
                        commit: Any = False) -> str:
        """The Test tab: test the connection, or run a statement in this request's
        transaction (rolled back unless ``commit`` is ticked)."""
        connection = self.test_connection() if run else None
        result = self.test_statement(sql, bool(commit)) if sql.strip() else None
        return cast("str", self._test_template(connection=connection, result=result, sql=sql,
                                   commit=bool(commit)))

    @security.protected(test_database_connections)
    def manage_test(self, query: str, REQUEST: Any = None) -> Any:
        """``Shared.DC.ZRDB``'s test entry point: the Test tab with ``query`` (rolled back)."""
        return self.manage_testForm(REQUEST, sql=query)

    @security.protected(view_management_screens)
    def manage_properties(self, REQUEST: Any = None) -> str:
        """``Shared.DC.ZRDB``'s name of the Properties tab."""
        return cast("str", self.manage_main(REQUEST))

    @security.protected(test_database_connections)
    def test_statement(self, sql: str, commit: bool = False) -> dict[str, Any]:
        """Run ``sql`` on the request's session: columns, rows (at most :data:`TEST_ROWS`),
        row count, or the error. Unless ``commit``, the transaction is doomed: the
        publisher rolls it back, ZODB changes of the request included."""
        if not commit:
            transaction.doom()
        try:
            answer = run_statement(self.session(), sql, TEST_ROWS + 1)
        except Exception as error:
            transaction.doom()  # never commit half of what the user asked for
            return {"ok": False, "error": f"{type(error).__name__}: {error}"}
        rows = answer.rows[:TEST_ROWS]
        return {"ok": True, "error": "", "columns": answer.names, "rows": rows,
                "more": len(answer.rows) > TEST_ROWS, "rowcount": answer.rowcount,
                "returns_rows": answer.names is not None, "committed": commit}

    @security.protected(view_management_screens)
    def manage_status(self, REQUEST: Any = None) -> str:
        """The Status tab: the pool, the prepared transactions, the last errors."""
        database = self.database()
        return cast("str", self._status_template(
            status=self.pool_status(), name=self.database_name, prepared=self.prepared(),
            errors=[{**dataclasses.asdict(error), "time": error.time}
                    for error in error_log(database).errors()]))

    @security.protected(test_database_connections)
    def test_connection(self) -> dict[str, Any]:
        """Connect with a new connection: server version and whether it can prepare transactions."""
        dialect = self.database().dialect
        try:
            conn = dialect.connect()
        except Exception as error:  # shown on the Test tab
            return {"ok": False, "error": f"{type(error).__name__}: {error}"}
        try:
            return {"ok": True, "error": "", "kind": dialect.name,
                    "version": dialect.server_version(conn),
                    "twophase": dialect.supports_twophase(conn)}
        except Exception as error:
            return {"ok": False, "error": f"{type(error).__name__}: {error}"}
        finally:
            conn.close()

    @security.protected(view_management_screens)
    def pool_status(self) -> dict[str, Any]:
        """The pool status, as numbers and as Mother's readable line."""
        status = self.database().status()
        return {"describe": status.describe(), "fields": dataclasses.asdict(status)}

    @security.protected(view_management_screens)
    def prepared(self) -> dict[str, Any]:
        """The prepared transactions of the database and what recovery would do with each
        (``mother.tm.recover(dry_run=True)``; a branch of a commit still in flight shows too)."""
        try:
            report = tm.recover([self.database()], dry_run=True)
        except Exception as error:
            return {"ok": False, "error": f"{type(error).__name__}: {error}", "branches": []}
        return {"ok": True, "error": "", "branches": [
            {"gid": branch.gid, "action": branch.action, "global_id": branch.global_id or ""}
            for branch in report.branches]}


def _close_after_commit(name: str) -> None:
    def close(committed: bool) -> None:
        if not committed:
            return
        try:
            database = mother.get_database(name)
        except ConfigError:
            return
        database.close()

    transaction.get().addAfterCommitHook(close)


def removed(connection: MotherConnection, event: Any) -> None:
    """Subscriber: close the pool once the removal of the connection is committed."""
    if event.newParent is None:  # removed, not moved
        _close_after_commit(connection.database_name)


def cloned(connection: MotherConnection, event: Any) -> None:
    """Subscriber: a copy gets its own database (and pool)."""
    connection._uid = uuid.uuid4().hex
    connection._v_database = None


InitializeClass(MotherConnection)

_ADD_DEFAULTS = {"id": "", "title": "", "dsn": "", "pool_min": MotherConnection.pool_min,
                 "pool_max": MotherConnection.pool_max,
                 "pool_timeout": MotherConnection.pool_timeout,
                 "pool_type": MotherConnection.pool_type, "twophase": MotherConnection.twophase}


def manage_addMotherConnectionForm(self: Any, REQUEST: Any = None,
                                   error: dict[str, str] | None = None,
                                   values: dict[str, Any] | None = None) -> str:
    """The add form."""
    page = _form.__of__(self)(adding=True, settings=values or _ADD_DEFAULTS, error=error,
                              message="")
    return cast("str", page)


def manage_addMotherConnection(self: Any, id: str = "", title: str = "", dsn: str = "",
                               pool_min: Any = 1, pool_max: Any = 10, pool_timeout: Any = 15.0,
                               pool_type: str = "limited", twophase: str = "auto",
                               REQUEST: Any = None) -> Any:
    """Add a Mother Database Connection to the folder.

    A bad id or setting adds nothing: the form comes back with the setting named.
    """
    container = self.Destination()  # self is the product's factory dispatcher
    try:
        try:
            checkValidId(container, id)
        except BadRequest as error:
            raise ConfigError("id", id, str(error)) from None
        connection = MotherConnection(id, title, dsn, pool_min, pool_max, pool_timeout,
                                      pool_type, twophase)
    except ConfigError as error:
        if REQUEST is None:
            raise
        REQUEST.RESPONSE.setStatus(400)
        return manage_addMotherConnectionForm(self, REQUEST, error=_shown(error), values={
            "id": id, "title": title, "dsn": dsn, "pool_min": pool_min, "pool_max": pool_max,
            "pool_timeout": pool_timeout, "pool_type": pool_type, "twophase": twophase})
    container._setObject(id, connection)
    if REQUEST is not None:
        REQUEST.RESPONSE.redirect(f"{container.absolute_url()}/{id}/manage_main")
        return ""
    return container._getOb(id)


constructors = (manage_addMotherConnectionForm, manage_addMotherConnection)
