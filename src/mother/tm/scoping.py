"""One session per transaction per database; ``register()`` for code without sessions."""

from __future__ import annotations

import logging
from typing import Any

import transaction

from ..config import as_isolation_level
from ..database import Database, resolve
from ..errors import SessionConflictError
from ..replicas import WalPosition
from ..session import Session
from .datamanager import TransactionState, active_transaction, in_transaction, join

log = logging.getLogger(__name__)


def _manager(transaction_manager: Any) -> Any:
    return transaction_manager if transaction_manager is not None else transaction.manager


def joined_session(database: str | Database, transaction_manager: Any, name: str,
                   **options: Any) -> Session:
    """A new session (``options`` as :class:`~mother.Session` takes them) joined to the
    manager's current transaction, the database's session hooks run once it is joined
    (so that :func:`register`'s leave it alone)."""
    session = Session(name, database=database, hooks=False, **options)
    join(session, _manager(transaction_manager))
    for hook in session.database.session_hooks:
        hook(session)
    return session


def current_session(database: str | Database = "default", transaction_manager: Any = None, *,
                    readonly: bool | None = None, isolation_level: str | None = None,
                    after: WalPosition | None = None) -> Session:
    """The session of ``database`` scoped to the manager's current transaction.

    Created and joined on first use, named ``<session_name>-<database>-<global id>``;
    it ends with the transaction. It joins that manager only, whatever
    :func:`register` hooks are installed. ``readonly`` and ``isolation_level``
    apply when it is created; asked of the existing session, they must match it
    (:class:`~mother.errors.SessionConflictError`). ``after`` chooses the replica of a
    read-only session when it is created (see :class:`~mother.Session`). An explicit
    manager outside a
    transaction raises :class:`~mother.tm.NoActiveTransactionError`.
    """
    db = resolve(database)
    manager = _manager(transaction_manager)
    txn = active_transaction(manager)
    state = TransactionState.of(txn, manager)
    session = state.sessions.get(db.name)
    if session is None or session.closed or session.database is not db:
        name = f"{db.settings.session_name}-{db.name}-{state.global_id[:12]}"
        session = joined_session(db, manager, name, readonly=bool(readonly),
                                 isolation_level=isolation_level, after=after)
        state.sessions[db.name] = session
        return session
    if readonly is not None and session.readonly != readonly:
        raise SessionConflictError(
            f"the session of {db.name!r} in this transaction is "
            f"{'read-only' if session.readonly else 'read-write'}: it cannot be "
            f"readonly={readonly!r} too")
    level = as_isolation_level("isolation_level", isolation_level)
    if level is not None and level != (session.isolation_level or db.settings.isolation_level):
        raise SessionConflictError(
            f"the session of {db.name!r} in this transaction runs at isolation level "
            f"{session.isolation_level or db.settings.isolation_level or 'default'!r}, "
            f"not {level!r}")
    return session


class Registration:
    """The hook ``register()`` installs: joins new sessions while the manager has a transaction."""

    def __init__(self, database: Database, transaction_manager: Any) -> None:
        self.database = database
        self.transaction_manager = transaction_manager

    def __repr__(self) -> str:
        return f"<Registration {self.database.name!r} {self.transaction_manager!r}>"

    def __call__(self, session: Session) -> None:
        # a session another registration (another manager) took already stays its own
        if session.manager is None and in_transaction(self.transaction_manager):
            join(session, self.transaction_manager)


class _Implicit:
    """``Database.implicit_session`` while registered: the transaction's session, if any."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def __call__(self) -> Session | None:
        for hook in self.database.session_hooks:
            if isinstance(hook, Registration) and in_transaction(hook.transaction_manager):
                return current_session(self.database, hook.transaction_manager)
        return None


def _registrations(db: Database, manager: Any) -> list[Registration]:
    return [hook for hook in db.session_hooks
            if isinstance(hook, Registration)
            and (manager is None or hook.transaction_manager is manager)]


def register(database: str | Database = "default", transaction_manager: Any = None) -> Registration:
    """From now on new sessions of ``database`` join the manager's active transaction, and records
    created without a session use :func:`current_session` (else the shared connection)."""
    db = resolve(database)
    manager = _manager(transaction_manager)
    existing = _registrations(db, manager)
    if existing:
        return existing[0]
    registration = Registration(db, manager)
    db.session_hooks.append(registration)
    if not isinstance(db.implicit_session, _Implicit):
        db.implicit_session = _Implicit(db)
    log.debug("registered %s", registration)
    return registration


def unregister(database: str | Database = "default", transaction_manager: Any = None) -> None:
    """Undo :func:`register` for that manager (for every manager when None is given)."""
    db = resolve(database)
    gone = _registrations(db, transaction_manager)
    db.session_hooks[:] = [hook for hook in db.session_hooks if not any(hook is g for g in gone)]
    if not _registrations(db, None) and isinstance(db.implicit_session, _Implicit):
        db.implicit_session = None
