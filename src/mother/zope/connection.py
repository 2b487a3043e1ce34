"""The ZMI-addable "Mother Database Connection".

Only settings live in the ZODB (plain strings and numbers). The
:class:`mother.Database` with its pool is kept in the process-wide registry
of dbmother under a private name and cached on the object in a volatile
(``_v_``) attribute, so it is created again on first use after a restart and
after the settings change.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from typing import Any

import transaction
from AccessControl.class_init import InitializeClass
from AccessControl.Permissions import (
    change_database_connections,
    use_database_methods,
    view_management_screens,
)
from AccessControl.SecurityInfo import ClassSecurityInfo
from OFS.SimpleItem import SimpleItem
from Products.PageTemplates.PageTemplateFile import PageTemplateFile
from zope.interface import implementer

import mother
from mother import tm
from mother.config import make_settings
from mother.dialects import dialect_for
from mother.errors import ConfigError

from .interfaces import IMotherConnection
from .retry import convert_errors, install_hook

log = logging.getLogger(__name__)

META_TYPE = "Mother Database Connection"
ADD_PERMISSION = "Add Mother Database Connections"
USE_PERMISSION = use_database_methods
TWOPHASE_CHOICES = ("auto", "on", "off")

_lock = threading.Lock()
_form = PageTemplateFile("www/form.pt", globals())


def _int(key: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, "expected an integer") from None


def _float(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, "expected a number of seconds") from None


@implementer(IMotherConnection)
class MotherConnection(SimpleItem):
    """Settings of a dbmother database, and the way to its transaction-scoped session."""

    meta_type = META_TYPE
    zmi_icon = "fas fa-database"
    security = ClassSecurityInfo()
    security.setPermissionDefault(USE_PERMISSION, ("Manager",))
    security.setPermissionDefault(change_database_connections, ("Manager",))

    manage_options = (
        {"label": "Properties", "action": "manage_main"},
        {"label": "Test", "action": "manage_testForm"},
        {"label": "Status", "action": "manage_status"},
    ) + SimpleItem.manage_options

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

    def __init__(self, id: str, title: str = "", dsn: str = "", pool_min: int = 1,
                 pool_max: int = 10, pool_timeout: float = 15.0, pool_type: str = "limited",
                 twophase: str = "auto") -> None:
        self.id = id
        self._uid = uuid.uuid4().hex
        self._set(title, dsn, pool_min, pool_max, pool_timeout, pool_type, twophase)

    def _set(self, title: str, dsn: str, pool_min: Any, pool_max: Any, pool_timeout: Any,
             pool_type: str, twophase: str) -> None:
        """Check and store the settings (a bad one raises ConfigError, nothing is stored)."""
        if twophase not in TWOPHASE_CHOICES:
            raise ConfigError("twophase", twophase, f"expected one of {TWOPHASE_CHOICES}")
        values = {"dsn": (dsn or "").strip(), "pool_min": _int("pool_min", pool_min),
                  "pool_max": _int("pool_max", pool_max),
                  "pool_timeout": _float("pool_timeout", pool_timeout),
                  "pool_type": pool_type, "twophase": twophase}
        dialect_for(make_settings(self._mother_settings(values), self.database_name),
                    self.database_name)  # an unknown kind of DSN is refused here
        self.title = title
        for key, value in values.items():
            setattr(self, key, value)
        self._v_database = None

    # -- the database --------------------------------------------------------------------
    @property
    def database_name(self) -> str:
        """The private name of this object's database in dbmother's registry."""
        return f"zope-{self._uid or self.getId()}"

    def _mother_settings(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        values = values if values is not None else {
            key: getattr(self, key) for key in
            ("dsn", "pool_min", "pool_max", "pool_timeout", "pool_type", "twophase")}
        settings = dict(values)
        settings["twophase"] = {"on": True, "off": False}.get(values["twophase"])
        settings["persistent_one"] = False  # Zope code works in transaction-scoped sessions
        settings["session_name"] = f"Zope-{self.getId()}"
        return settings

    security.declareProtected(USE_PERMISSION, "database")

    def database(self) -> mother.Database:
        """The configured database, (re)created when missing or when the settings changed."""
        settings = self._mother_settings()
        wanted = make_settings(settings, self.database_name)
        cached = getattr(self, "_v_database", None)
        if cached is not None and cached.settings == wanted and self._registered(cached):
            return cached
        with _lock:
            try:
                current = mother.get_database(self.database_name)
            except ConfigError:
                current = None
            if current is None or current.settings != wanted:
                log.info("creating the pool of %s (%s)", "/".join(self.getPhysicalPath()),
                         self.database_name)
                current = mother.init_mother(name=self.database_name, **settings)
                install_hook(current)
        self._v_database = current
        return current

    def _registered(self, database: mother.Database) -> bool:
        try:
            return mother.get_database(self.database_name) is database
        except ConfigError:
            return False

    security.declareProtected(USE_PERMISSION, "session")

    def session(self) -> mother.Session:
        """The session scoped to the current request's transaction (joined on first use)."""
        session = tm.current_session(self.database(), transaction.manager)
        convert_errors(session.manager)
        return session

    # -- management ----------------------------------------------------------------------
    security.declareProtected(view_management_screens, "manage_main")

    def manage_main(self, REQUEST: Any = None, message: str = "", **kw: Any) -> str:
        """The Properties tab."""
        values = {key: getattr(self, key) for key in
                  ("id", "title", "dsn", "pool_min", "pool_max", "pool_timeout",
                   "pool_type", "twophase")}
        return _form.__of__(self)(adding=False, settings=values, message=message)

    security.declareProtected(view_management_screens, "manage_testForm")

    def manage_testForm(self, REQUEST: Any = None, run: str = "") -> str:
        """The Test tab: connects when the button is pressed."""
        result = self.test_connection() if run else None
        return self._test_template(result=result)

    security.declareProtected(view_management_screens, "manage_status")

    def manage_status(self, REQUEST: Any = None) -> str:
        """The Status tab: the pool."""
        return self._status_template(status=self.pool_status(), name=self.database_name)

    security.declareProtected(change_database_connections, "manage_edit")

    def manage_edit(self, title: str = "", dsn: str = "", pool_min: Any = 1, pool_max: Any = 10,
                    pool_timeout: Any = 15.0, pool_type: str = "limited", twophase: str = "auto",
                    REQUEST: Any = None) -> Any:
        """Change the settings; the pool is re-created on next use. From the form, a
        refused setting shows the form again with the error (nothing is changed)."""
        try:
            self._set(title, dsn, pool_min, pool_max, pool_timeout, pool_type, twophase)
        except ConfigError as error:
            if REQUEST is None:
                raise
            submitted = {"id": self.getId(), "title": title, "dsn": dsn, "pool_min": pool_min,
                         "pool_max": pool_max, "pool_timeout": pool_timeout,
                         "pool_type": pool_type, "twophase": twophase}
            return _refused(self, REQUEST, error, adding=False, settings=submitted)
        if REQUEST is not None:
            return self.manage_main(REQUEST, message="Saved changes.")
        return None

    security.declareProtected(view_management_screens, "test_connection")

    def test_connection(self) -> dict[str, Any]:
        """Connect with a new connection: server version and whether it can prepare transactions."""
        database = self.database()
        dialect = database.dialect
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

    security.declareProtected(view_management_screens, "pool_status")

    def pool_status(self) -> dict[str, Any]:
        """The pool status, as numbers and as Mother's readable line."""
        status = self.database().status()
        return {"describe": status.describe(), "fields": dataclasses.asdict(status)}


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


def _refused(context: Any, request: Any, error: ConfigError, adding: bool,
             settings: dict[str, Any]) -> str:
    """The form again, with what was typed and the refusal (400 Bad Request)."""
    request.RESPONSE.setStatus(400)
    return _form.__of__(context)(adding=adding, settings=settings, error=str(error))


def manage_addMotherConnectionForm(self: Any, REQUEST: Any = None) -> str:
    """The add form."""
    values = {"id": "", "title": "", "dsn": "", "pool_min": MotherConnection.pool_min,
              "pool_max": MotherConnection.pool_max,
              "pool_timeout": MotherConnection.pool_timeout,
              "pool_type": MotherConnection.pool_type, "twophase": MotherConnection.twophase}
    return _form.__of__(self)(adding=True, settings=values)


def manage_addMotherConnection(self: Any, id: str, title: str = "", dsn: str = "",
                               pool_min: Any = 1, pool_max: Any = 10, pool_timeout: Any = 15.0,
                               pool_type: str = "limited", twophase: str = "auto",
                               REQUEST: Any = None) -> Any:
    """Add a Mother Database Connection to the folder. From the form, a refused setting
    shows the add form again with the error (nothing is added)."""
    try:
        connection = MotherConnection(id, title, dsn, pool_min, pool_max, pool_timeout,
                                      pool_type, twophase)
    except ConfigError as error:
        if REQUEST is None:
            raise
        submitted = {"id": id, "title": title, "dsn": dsn, "pool_min": pool_min,
                     "pool_max": pool_max, "pool_timeout": pool_timeout,
                     "pool_type": pool_type, "twophase": twophase}
        return _refused(self, REQUEST, error, adding=True, settings=submitted)
    container = self.Destination()  # self is the product's factory dispatcher
    container._setObject(id, connection)
    if REQUEST is not None:
        REQUEST.RESPONSE.redirect(f"{container.absolute_url()}/{id}/manage_main")
    return container._getOb(id)


constructors = (manage_addMotherConnectionForm, manage_addMotherConnection)
