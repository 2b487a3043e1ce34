"""The dbmother session of a Pyramid request, and retry marking of transient errors."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid_retry import mark_error_retryable

from ..database import is_transient
from ..session import Session
from .replicas import WRITES, reads_on_replica, remember_writes

log = logging.getLogger(__name__)

COUNTER = "mother.request_counter"
CACHE = "_mother_sessions"
#: the request's sessions that may have written, in every transaction it ran
WRITERS = "_mother_writers"


def session_name(request: Request, database: str) -> str:
    """``GET /path #12`` (plus ``@database`` when it is not the default one)."""
    counter = request.registry.get(COUNTER)
    number = next(counter) if counter is not None else 0
    path = request.path_info.encode("ascii", "backslashreplace").decode("ascii")
    where = "" if database == "default" else f"@{database}"
    return f"{request.method} {path[:40]} #{number}{where}"


def get_session(request: Request, name: str = "default", *, primary: bool = False) -> Session:
    """The session of database ``name`` scoped to ``request.tm``'s current transaction.

    Created, named after the request and joined on first use in each
    transaction; the transaction's end closes it. With ``mother.replica_reads = auto``
    a GET or HEAD request's session of a database with ``replicas`` is read-only, on a
    replica that has this client's last write (:mod:`mother.pyramid.replicas`);
    ``primary=True`` asks for a read-write session on the primary whatever the request
    (a second session of the database in that transaction when the first is on a
    replica: what web sessions use, which are written on GET too). A session placed in
    ``request.environ["mother.session"]`` (``"mother.session.NAME"`` for
    other databases) is returned instead, which lets tests inject their own.
    """
    key = "mother.session" if name == "default" else f"mother.session.{name}"
    injected: Session | None = request.environ.get(key)
    if injected is not None:
        return injected
    from .. import tm

    manager = request.tm
    txn = tm.datamanager.active_transaction(manager)
    cache: dict[str, tuple[Any, Session]] = request.__dict__.setdefault(CACHE, {})

    def cached(slot: str) -> Session | None:
        found = cache.get(slot)
        return found[1] if found is not None and found[0] is txn and not found[1].closed else None

    reads = reads_on_replica(request, name)
    current = cached(name)
    # the transaction's session of the database reads on a replica, and this one must not:
    # asked with primary=True, or the view writes on GET (mother_writes=True) and something
    # before it (a permission check, a decorator) had asked for the replica's already
    beside = (primary and reads is not None) or (
        current is not None and current.readonly and bool(request.environ.get(WRITES)))
    slot = f"{name} (primary)" if beside else name
    found = cached(slot)
    if found is not None:
        return found
    known = tm.TransactionState.of(txn, manager).sessions.get(name)
    if beside:
        # beside the transaction's read-only session of the database, not instead of it
        session = tm.scoping.joined_session(name, manager, session_name(request, name))
    elif reads is not None:
        session = tm.current_session(database=name, transaction_manager=manager,
                                     readonly=True, after=reads.positions(request).get(name))
    else:
        session = tm.current_session(database=name, transaction_manager=manager)
    if not session.readonly:
        # every session that may write, also of the request's earlier transactions
        # (request.tm.commit() in a view): the response remembers the latest position
        writers: list[Session] = request.__dict__.setdefault(WRITERS, [])
        writers.append(session)
        remember_writes(request, lambda: writers)
    if slot == name and session is not known:
        # new in this transaction and not connected yet: the name reaches application_name
        session.name = session_name(request, name)
    cache[slot] = (txn, session)
    return session


def mother_session(request: Request) -> Session:
    """``request.mother_session``: the default database's session of this request's transaction."""
    return get_session(request, "default")


def retry_tween_factory(handler: Callable[[Request], Response], registry: Any
                        ) -> Callable[[Request], Response]:
    """Sits over pyramid_tm: marks transient database errors retryable for pyramid_retry.

    Errors raised inside a view are already tagged by pyramid_tm through the
    data manager's ``should_retry``; errors raised by the commit itself
    (a serialization failure at ``COMMIT``, a failed vote) come out of
    pyramid_tm after the data managers are gone, so this tween tags them,
    whether they propagate or were rendered by an exception view. Both ask
    the same question: :func:`mother.is_transient`.
    """
    def mother_retry_tween(request: Request) -> Response:
        try:
            response = handler(request)
        except Exception as error:
            if is_transient(error):
                mark_error_retryable(error)
            raise
        failed: BaseException | None = getattr(request, "exception", None)
        if failed is not None and is_transient(failed):
            mark_error_retryable(failed)
        return response

    return mother_retry_tween


def new_counter() -> itertools.count[int]:
    return itertools.count(1)
