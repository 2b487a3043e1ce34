"""Session scopes: per block, per thread, per context (asyncio tasks too) or per process."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

from .database import Database
from .replicas import WalPosition
from .session import Session


def object_session(obj: Any) -> Session | None:
    """The session a record lives in, or None."""
    return getattr(obj, "_mo_session", None)


@contextlib.contextmanager
def session_scope(name: str | None = None, *, database: str | Database = "default",
                  readonly: bool = False, isolation_level: str | None = None,
                  after: WalPosition | None = None) -> Iterator[Session]:
    """A session for a block: commit on success, rollback on error, always ended.

    ``readonly``, ``isolation_level`` and ``after`` are the session's (see
    :class:`Session`)."""
    session = Session(name, database=database, readonly=readonly,
                      isolation_level=isolation_level, after=after)
    try:
        yield session
    except BaseException:
        session._close(rollback=True)  # even when joined: the failed block is never committed
        raise
    if session.manager is None:
        session.endSession()


class scoped_session:
    """A registry of sessions: calling it gives the session of the current scope.

    ``scope`` is ``"thread"`` (one per thread), ``"context"`` (one per
    :mod:`contextvars` context: per asyncio task, and per thread) or
    ``"application"`` (one for the process). ``remove()`` ends the current one
    (committing it) and forgets it.
    """

    SCOPES = ("thread", "context", "application")

    def __init__(self, database: str | Database = "default", scope: str = "thread",
                 **session_options: Any) -> None:
        if scope not in self.SCOPES:
            raise ValueError(f"scope must be one of {self.SCOPES}, not {scope!r}")
        self.database = database
        self.scope = scope
        self.session_options = session_options
        self._local = threading.local()
        self._var: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
            f"mother_session_{id(self)}", default=None)
        self._app: Session | None = None
        self._lock = threading.Lock()

    def _get(self) -> Session | None:
        if self.scope == "thread":
            return getattr(self._local, "session", None)
        if self.scope == "context":
            return self._var.get()
        return self._app

    def _set(self, session: Session | None) -> None:
        if self.scope == "thread":
            self._local.session = session
        elif self.scope == "context":
            self._var.set(session)
        else:
            self._app = session

    def __call__(self) -> Session:
        with self._lock:
            session = self._get()
            if session is None or session.closed:
                session = Session(database=self.database, **self.session_options)
                self._set(session)
            return session

    def has(self) -> bool:
        """Whether the current scope has a live session."""
        session = self._get()
        return session is not None and not session.closed

    def remove(self, commit: bool = True) -> None:
        """End the current scope's session (commit, or rollback with ``commit=False``)."""
        with self._lock:
            session = self._get()
            self._set(None)
        if session is None or session.closed or session.manager is not None:
            return
        if commit:
            session.endSession()
        else:
            session.close()
