"""Make serialization failures and deadlocks reach the Zope publisher as a ``TransientError``.

The publisher retries a request (up to ``max-conflict-retries``) only when the
exception it sees is a :class:`transaction.interfaces.TransientError`. The
data managers of the sessions handed out by :mod:`mother.zope` turn a
transient database error raised while the transaction commits (flush,
``PREPARE TRANSACTION``, one-phase commit) into a
:class:`TransientDatabaseError`, and so do the statements of sessions of
databases configured through Zope (ZCML or the ZMI). :func:`retryable` does
the same for any other code a view runs (a database configured elsewhere).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from transaction.interfaces import TransientError

import mother
from mother.errors import MotherError
from mother.tm import MotherDataManager

from .status import error_log

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_WRAPPED = "_mother_zope_retry"
_PHASES = ("tpc_begin", "commit", "tpc_vote")


class TransientDatabaseError(MotherError, TransientError):
    """A serialization failure, deadlock or locked database: the publisher retries the request.

    The database's own error is ``__cause__``.
    """


def is_transient(error: BaseException, databases: list[mother.Database] | None = None) -> bool:
    """Whether a dialect of the given (default: every configured) database calls it transient."""
    if isinstance(error, TransientError):
        return False  # already what the publisher retries
    if databases is None:
        from zope.component import getUtilitiesFor

        from .interfaces import IMotherDatabase

        databases = mother.databases() + [db for _, db in getUtilitiesFor(IMotherDatabase)]
    return any(db.dialect.is_transient(error) for db in databases)


def _converting(method: Callable[..., Any], dm: MotherDataManager) -> Callable[..., Any]:
    @functools.wraps(method)
    def phase(txn: Any) -> Any:
        try:
            return method(txn)
        except Exception as error:
            error_log(dm.session.database).record(error, method.__name__)
            if dm.should_retry(error) and not isinstance(error, TransientError):
                log.info("transient error in %s of %s, the request will be retried: %s",
                         method.__name__, dm.session.name, error)
                raise TransientDatabaseError(
                    f"{type(error).__name__} in {dm.session.name}: {error}") from error
            raise
    return phase


def convert_errors(dm: Any) -> Any:
    """Give one data manager the converting commit phases (idempotent)."""
    if isinstance(dm, MotherDataManager) and not getattr(dm, _WRAPPED, False):
        for name in _PHASES:
            setattr(dm, name, _converting(getattr(dm, name), dm))
        setattr(dm, _WRAPPED, True)
    return dm


def session_hook(session: mother.Session) -> None:
    """A ``Database.session_hooks`` entry: sessions joined by ``mother.tm.register`` convert too."""
    convert_errors(session.manager)


def translate(error: BaseException) -> TransientDatabaseError | None:
    """A ``Database.error_translators`` entry: a transient statement error becomes retryable."""
    if is_transient(error):
        log.info("transient error in a statement, the request will be retried: %s", error)
        return TransientDatabaseError(f"{type(error).__name__}: {error}")
    return None


def install_hook(database: mother.Database) -> None:
    """Make the database's errors retryable by the publisher: at commit (through
    :func:`session_hook`, after ``mother.tm.register``'s own hook) and in statements;
    and remember the last ones (:func:`~mother.zope.status.error_log`)."""
    error_log(database)
    if session_hook not in database.session_hooks:
        database.session_hooks.append(session_hook)
    if translate not in database.error_translators:
        database.error_translators.append(translate)


def retryable(func: F) -> F:
    """Decorate a view or method: a transient database error it raises becomes a
    :class:`TransientDatabaseError`, so the publisher retries the request."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as error:
            if is_transient(error):
                raise TransientDatabaseError(f"{type(error).__name__}: {error}") from error
            raise
    return wrapper  # type: ignore[return-value]
