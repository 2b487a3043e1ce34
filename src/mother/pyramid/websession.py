"""Server-side Pyramid web sessions stored by dbmother, inside the request's transaction.

The design comes from Quixote's session manager: the *manager* owns
persistence, not the session. At the end of a request the session is written
only if it changed (``save_changes``); when the request fails, its changes
are forgotten (``forget_changes``). Here the manager is the request's
transaction: the session row is read through the request's dbmother session
and written by a before-commit hook, so it is committed together with the
application's own rows, or not at all.

Concurrent requests on one web session use optimistic locking: every row has
a ``version``; a write is ``UPDATE ... WHERE version = <the version read>``.
If another request wrote first, no row matches and
:class:`WebSessionConflictError` (a ``transaction`` ``TransientError``) is
raised at commit: the transaction aborts and ``pyramid_retry`` replays the
request, which then reads the other request's data. Nothing is lost silently.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, cast

import transaction.interfaces
from pyramid.interfaces import ISession
from pyramid.request import Request
from pyramid.response import Response
from webob.cookies import SignedCookieProfile
from zope.interface import implementer

from .. import sql
from ..database import Database, resolve
from ..errors import ConfigError, MotherError
from ..schema import Table
from ..session import Session
from .request import get_session

log = logging.getLogger(__name__)
#: what a cookie's SameSite may be (checked when the factory is made)
SameSite = Literal["Strict", "Lax", "None", "strict", "lax", "none"] | None

DEFAULT_TABLE = "mother_websessions"
#: the web-session table's columns and their SQL types (``session_id`` is the primary key)
COLUMNS = (("session_id", "TEXT"), ("created", "DOUBLE PRECISION"),
           ("accessed", "DOUBLE PRECISION"), ("version", "INTEGER"), ("data", "TEXT"))
NAMES = [name for name, _type in COLUMNS]
FLASH = "_f_"
CSRF = "_csrft_"


class WebSessionConflictError(MotherError, transaction.interfaces.TransientError):
    """Another request changed the same web session first; retrying the request is safe."""


def create_websession_table(database: str | Database = "default",
                            table: str = DEFAULT_TABLE, drop: bool = False) -> None:
    """Create the web-session table in ``database`` if it does not exist yet
    (with ``drop``, drop it first: every web session is lost)."""
    db = resolve(database)
    declared = sql.declared(table, COLUMNS, ("session_id",))
    conn = db.dialect.connect()
    try:
        db.dialect.begin(conn)
        if drop:
            db.dialect.execute(conn, *sql.drop_table(db.dialect, declared))
        db.dialect.execute(conn, *sql.create_table(db.dialect, declared))
        db.dialect.commit(conn)
    finally:
        conn.close()
    db.refresh_schema()


class _IdSerializer:
    """The cookie holds only the session id; webob signs it."""

    @staticmethod
    def dumps(value: str) -> bytes:
        return value.encode("ascii")

    @staticmethod
    def loads(data: bytes) -> str:
        return data.decode("ascii")


def _changes(method: Callable[..., Any]) -> Callable[..., Any]:
    def changing(self: MotherWebSession, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        self.changed()
        return result
    changing.__name__ = method.__name__
    changing.__doc__ = method.__doc__
    return changing


@implementer(ISession)
class MotherWebSession(dict[str, Any]):
    """One web session: a dict whose changes are written at the request's commit."""

    def __init__(self, factory: MotherWebSessionFactory, request: Request) -> None:
        super().__init__()
        self._factory = factory
        self._request = request
        self._cookie = factory.profile.bind(request)
        self._id: str | None = None
        self._version = 0
        self._stored = False      # a row exists for self._id
        self._dirty = False
        self._forget: list[str] = []   # ids whose rows go at commit (invalidate, expiry)
        self._cookie_action: str | None = None
        now = time.time()
        self.created = now
        self.accessed = now
        self.new = True
        self._load(now)
        txn = request.tm.get()
        txn.addBeforeCommitHook(self._save)
        txn.addAfterCommitHook(self._after_commit)
        request.add_response_callback(self._set_cookie)

    # -- persistence -------------------------------------------------------------------------
    def _db(self) -> Session:
        # on the primary even on GET with replica reads: the row is written on GET too,
        # and read back at once by the client's next request
        return get_session(self._request, self._factory.database, primary=True)

    def _load(self, now: float) -> None:
        session_id = self._cookie.get_value()
        if not session_id:
            return
        factory = self._factory
        db = self._db()
        table = db.database.schema.table(factory.table)
        rows = db.mr_query(*sql.select(db.database.dialect, table, NAMES,
                                       {"session_id": session_id}))
        if not rows:
            return
        row = rows[0]
        if factory.timeout is not None and now - row["accessed"] > factory.timeout:
            log.debug("web session %s expired", session_id[:8])
            self._forget.append(session_id)
            return
        self._id, self._version, self._stored = session_id, row["version"], True
        self.created, self.accessed, self.new = row["created"], row["accessed"], False
        dict.update(self, json.loads(row["data"]))

    def _save(self) -> None:
        """Before commit: write the session if it changed (or is due for reissue)."""
        now = time.time()
        db = self._db()
        table = db.database.schema.table(self._factory.table)
        dialect = db.database.dialect
        for session_id in self._forget:
            db.oc_query(*sql.delete(dialect, table, {"session_id": session_id}))
        if self._dirty and (self._stored or len(self)):
            data = json.dumps(dict(self), separators=(",", ":"))
            if self._stored:
                self._update(db, table, data, now)
            else:
                self._insert(db, table, data, now)
        elif self._stored and self._factory.reissue_due(self.accessed, now):
            db.oc_query(*sql.update(dialect, table, {"accessed": now}, {"session_id": self._id}))
            self._cookie_action = "set"
        elif self._forget and not self._stored:
            self._cookie_action = "delete"

    def _insert(self, db: Session, table: Table, data: str, now: float) -> None:
        self._id = secrets.token_urlsafe(32)
        values = {"session_id": self._id, "created": self.created, "accessed": now,
                  "version": 1, "data": data}
        db.oc_query(*sql.insert(db.database.dialect, table, values, returning=()))
        self._cookie_action = "set"

    def _update(self, db: Session, table: Table, data: str, now: float) -> None:
        """Write the session if no other request did since it was read (its version)."""
        values = {"data": data, "accessed": now, "version": self._version + 1}
        rows = db.mr_query(*sql.update(db.database.dialect, table, values,
                                       {"session_id": self._id, "version": self._version},
                                       returning=("version",)))
        if not rows:
            raise WebSessionConflictError(
                f"web session {(self._id or '')[:8]}... was changed by another request since "
                "this one read it; the request can be retried")
        self._cookie_action = "set"

    def _after_commit(self, success: bool) -> None:
        if not success:
            self._cookie_action = None

    def _set_cookie(self, request: Request, response: Response) -> None:
        """Response callback (runs after the commit): tell the browser about a saved session."""
        if self._cookie_action == "set":
            self._cookie.set_cookies(response, self._id)
        elif self._cookie_action == "delete":
            self._cookie.set_cookies(response, None)

    # -- ISession ------------------------------------------------------------------------------
    def changed(self) -> None:
        """Mark the session changed (call it after mutating a value in place)."""
        self._dirty = True

    def invalidate(self) -> None:
        """Forget this session: its row is deleted at commit; new data gets a new id."""
        if self._stored and self._id is not None:
            self._forget.append(self._id)
        self._stored, self._id, self._version = False, None, 0
        dict.clear(self)
        self.new = True
        self.created = time.time()
        self._dirty = False
        self._cookie_action = None

    def __setitem__(self, key: str, value: Any) -> None:
        try:
            json.dumps(value)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"web session values must be JSON-serializable: {key!r}: {error}") from None
        dict.__setitem__(self, key, value)
        self.changed()

    __delitem__ = _changes(dict.__delitem__)
    clear = _changes(dict.clear)
    popitem = _changes(dict.popitem)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.changed()
        return dict.pop(self, key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __iter__(self) -> Iterator[str]:
        return dict.__iter__(self)

    # flash messages
    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        storage = self.setdefault(FLASH + queue, [])
        if allow_duplicate or msg not in storage:
            storage.append(msg)
            self.changed()

    def pop_flash(self, queue: str = "") -> list[Any]:
        flashes: list[Any] = self.pop(FLASH + queue, [])
        return flashes

    def peek_flash(self, queue: str = "") -> list[Any]:
        return list(self.get(FLASH + queue, []))

    # CSRF
    def new_csrf_token(self) -> str:
        token = secrets.token_hex(20)
        self[CSRF] = token
        return token

    def get_csrf_token(self) -> str:
        token = self.get(CSRF)
        return token if token is not None else self.new_csrf_token()


class MotherWebSessionFactory:
    """A Pyramid session factory: ``config.set_session_factory(MotherWebSessionFactory(secret))``.

    ``timeout`` (seconds, None for never) expires idle sessions; an unchanged
    session's last-access time is written at most every ``reissue_time``
    seconds, so a burst of reads does not write at all. The cookie holds only
    the random session id, signed with ``secret``.
    """

    def __init__(self, secret: str, *, database: str = "default", table: str = DEFAULT_TABLE,
                 cookie_name: str = "session", max_age: int | None = None, path: str = "/",
                 domain: str | None = None, secure: bool = False, httponly: bool = True,
                 samesite: str | None = "Lax", timeout: int | None = 1200,
                 reissue_time: int | None = 120, hashalg: str = "sha512",
                 salt: str = "mother.websession.") -> None:
        if not secret:
            raise ConfigError("secret", secret, "a web session needs a signing secret")
        if timeout is not None and reissue_time is not None and reissue_time >= timeout:
            raise ConfigError("reissue_time", reissue_time, f"must be below timeout ({timeout})")
        if samesite is not None and samesite.lower() not in ("strict", "lax", "none"):
            raise ConfigError("samesite", samesite, "expected Strict, Lax or None")
        self.database = database
        self.table = table
        self.timeout = timeout or None
        self.reissue_time = reissue_time
        self.profile = SignedCookieProfile(
            secret, salt, cookie_name, secure=secure, max_age=max_age, httponly=httponly,
            samesite=cast(SameSite, samesite), path=path, domains=[domain] if domain else None,
            hashalg=hashalg, serializer=_IdSerializer())

    def reissue_due(self, accessed: float, now: float) -> bool:
        return self.reissue_time is not None and now - accessed >= self.reissue_time

    def __call__(self, request: Request) -> MotherWebSession:
        return MotherWebSession(self, request)
