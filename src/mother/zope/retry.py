"""Make serialization failures and deadlocks reach the Zope publisher as a ``TransientError``.

The publisher retries a request (up to ``max-conflict-retries``) only when the
exception it sees is a :class:`transaction.interfaces.TransientError`. Every
database configured through Zope (ZCML or the ZMI) carries :func:`translate`
in its ``Database.error_translators`` (dbmother's one translation hook): a
transient error of a statement of one of its sessions, or of a commit phase
of its data manager (flush, ``PREPARE TRANSACTION``, one-phase commit),
becomes a :class:`TransientDatabaseError`. A database configured elsewhere
whose sessions ``mother.zope.get_session()`` hands out carries
:func:`translate_commit`, which does so for the commit phases only;
:func:`retryable` does it for any other code a view runs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from transaction.interfaces import TransientError

import mother
from mother.errors import MotherError

from .status import error_log

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
STATEMENT = "statement"


class TransientDatabaseError(MotherError, TransientError):
    """A serialization failure, deadlock or locked database: the publisher retries the request.

    The database's own error is ``__cause__``.
    """


def _retryable(error: BaseException) -> bool:
    """Transient (:func:`mother.is_transient`) and not already what the publisher retries."""
    return not isinstance(error, TransientError) and mother.is_transient(error)


def translate(error: BaseException, where: str) -> TransientDatabaseError | None:
    """A ``Database.error_translators`` entry: a transient error becomes retryable."""
    if not _retryable(error):
        return None
    log.info("transient error in %s, the request will be retried: %s", where, error)
    return TransientDatabaseError(f"{type(error).__name__}: {error}")


def translate_commit(error: BaseException, where: str) -> TransientDatabaseError | None:
    """:func:`translate`, for the commit phases only (statements raise their own error)."""
    return None if where == STATEMENT else translate(error, where)


def install_hook(database: mother.Database) -> None:
    """Make the database's errors retryable by the publisher, in statements and at
    commit, and remember the last ones (:func:`~mother.zope.status.error_log`)."""
    error_log(database)
    translators = database.error_translators
    if translate_commit in translators:
        translators.remove(translate_commit)
    if translate not in translators:
        translators.append(translate)


def install_commit_hook(database: mother.Database) -> None:
    """For a database configured outside Zope whose sessions Zope hands out: its commit
    errors are made retryable (its statements' errors are left alone) and remembered."""
    error_log(database)
    translators = database.error_translators
    if translate not in translators and translate_commit not in translators:
        translators.append(translate_commit)


def retryable(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a view or method: a transient database error it raises becomes a
    :class:`TransientDatabaseError`, so the publisher retries the request."""
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except Exception as error:
            if _retryable(error):
                raise TransientDatabaseError(f"{type(error).__name__}: {error}") from error
            raise
    return wrapper
