"""One stream of events: every round trip, session, transaction phase and pool move.

dbmother reports what it does as small frozen records (:data:`Event`): each
round trip to a server with its statements (text as written, values kept
apart), each session's life, each transaction phase of a data manager, each
pool checkout and checkin. Any number of listeners receive them, in the
thread (or asyncio task) that did the work, in order::

    from mother import events

    with events.capture() as trace:        # this thread's / task's events only
        do_the_work()
    for event in trace.events:
        print(event)

    events.subscribe(print)                # every event of every thread

A listener that raises never breaks the work: its error is logged on the
``mother.events`` logger with the traceback and the other listeners still
run. The ``mother.sql`` logger is one listener among others (see
:func:`log_statements`). When nobody listens, the places that report events
test :data:`listeners` (an empty tuple) and do nothing else: no event is
built, no clock is read.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .dialects.base import Pool, PoolStatus
from .errors import ArgumentError

log = logging.getLogger(__name__)
sql_log = logging.getLogger("mother.sql")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement as sent: its text as written (placeholders, never values), its
    parameters kept apart (a mapping, a sequence, a list of parameter sets for an
    executemany, or None), and the rows it returned or changed, when known."""

    sql: str
    params: Any
    rows: int | None


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One round trip to a server: everything sent before waiting for the replies (on
    SQLite, one call into :mod:`sqlite3`). A ``BEGIN`` queued to ride with the first
    statement is the first of ``statements``."""

    #: the name of the :class:`~mother.database.Database` (as given to ``init_mother``)
    database: str
    #: the session whose connection it went on (None: a connection of no session)
    session: str | None
    statements: tuple[Statement, ...]
    #: ``time.perf_counter()`` when it was sent
    start: float
    #: seconds until the last reply arrived (or the error)
    duration: float
    #: the error it raised, if any (the work then raised it too)
    error: BaseException | None
    #: global order number; threading.get_ident() of the thread that sent it
    seq: int
    thread: int


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A moment of a session's life: ``action`` is ``opened``, ``joined`` (to a
    transaction), ``vote`` (``detail``: ``two-phase``, ``one-phase`` or ``read-only``)
    or ``ended`` (``detail``: ``committed``, ``rolled back`` or ``closed``, when it
    ended with nothing to commit or roll back)."""

    database: str
    session: str
    action: str
    detail: str
    seq: int
    thread: int


@dataclass(frozen=True, slots=True)
class PhaseEvent:
    """A transaction phase of a data manager (``tpc_begin``, ``commit``, ``tpc_vote``,
    ``tpc_finish``, ``tpc_abort``, ``abort``) or of the transaction's Decision
    (``decision``: the vote that commits the decider; no database, no session).
    Reported when the phase ends; the round trips it made come before it."""

    database: str | None
    session: str | None
    phase: str
    start: float
    duration: float
    error: BaseException | None
    seq: int
    thread: int


@dataclass(frozen=True, slots=True)
class PoolEvent:
    """A connection taken from a pool (``checkout``) or given back (``checkin``), a new
    connection the pool opened for it (``connect``), or one it closed (``discard``);
    ``status`` is the pool's state just after."""

    database: str
    action: str
    status: PoolStatus
    seq: int
    thread: int
    #: the replica's ``host:port`` for a pool of one of the database's replicas (None:
    #: the primary's pool)
    replica: str | None = None


#: what a listener receives
Event = RoundTrip | SessionEvent | PhaseEvent | PoolEvent
#: a listener: called with each event, in the thread that did the work
Listener = Callable[[Event], None]

#: every subscribed listener, in subscription order; empty when nobody listens, and then
#: the places that report events do nothing else
listeners: tuple[Listener, ...] = ()
_lock = threading.Lock()
_numbers = itertools.count(1)
#: the transaction phase running in this context (set only while somebody listens)
current_phase: contextvars.ContextVar[PhaseEvent | None] = contextvars.ContextVar(
    "mother_phase", default=None)
now = time.perf_counter


def subscribe(listener: Listener) -> None:
    """Call ``listener(event)`` for every event from now on, in the thread that did the
    work; subscribing it twice calls it twice."""
    if not callable(listener):
        raise ArgumentError(f"an event listener must be callable, not {listener!r}")
    with _lock:
        _add(listener)


def unsubscribe(listener: Listener) -> None:
    """Stop calling ``listener`` (once per :func:`subscribe`)."""
    with _lock:
        if listener not in listeners:
            raise ArgumentError(f"{listener!r} is not a subscribed event listener")
        _remove(listener)


def _add(listener: Listener) -> None:
    global listeners
    listeners = (*listeners, listener)


def _remove(listener: Listener) -> None:
    """Drop the last subscription of ``listener`` (the caller holds ``_lock``)."""
    global listeners
    index = max(index for index, other in enumerate(listeners) if other == listener)
    listeners = listeners[:index] + listeners[index + 1:]


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[Listener]:
    """Subscribe ``listener`` for the block."""
    subscribe(listener)
    try:
        yield listener
    finally:
        unsubscribe(listener)


def emit(event: Event) -> None:
    """Give ``event`` to every listener; one that raises is logged and skipped."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            log.exception("event listener %r failed on %s; the work goes on",
                          listener, type(event).__name__)


# -- building events (the callers test `listeners` first) -------------------------------
def round_trip(database: str, session: str | None, statements: Sequence[Statement],
               start: float, error: BaseException | None = None) -> None:
    """Report a round trip that began at ``start`` (``now()``) and ends now."""
    duration = now() - start
    emit(RoundTrip(database, session, tuple(statements), start, duration, error,
                   next(_numbers), threading.get_ident()))


def rows_of(result: Any) -> int | None:
    """The rows a cursor (or result) says it returned or changed; None when unknown."""
    rows = getattr(result, "rowcount", None)
    return rows if isinstance(rows, int) and rows >= 0 else None


def sent(database: str, session: str | None, sql: str, params: Any,
         call: Callable[..., T], *args: Any,
         rows: Callable[[Any], int | None] = rows_of) -> T:
    """``call(*args)``, reported as one round trip sending ``sql`` when somebody listens;
    ``rows(result)`` says how many rows it returned or changed."""
    if not listeners:
        return call(*args)
    start = now()
    try:
        result = call(*args)
    except BaseException as error:
        round_trip(database, session, [Statement(sql, params, None)], start, error)
        raise
    round_trip(database, session, [Statement(sql, params, rows(result))], start)
    return result


def session_event(database: str, session: str, action: str, detail: str = "") -> None:
    """Report a moment of a session's life (nothing when nobody listens)."""
    if listeners:
        emit(SessionEvent(database, session, action, detail, next(_numbers),
                          threading.get_ident()))


def session_opened(database: str, session: Any) -> None:
    """A session opened: follow the ``mother.sql`` logger's level, then report it (its
    ``name`` asked only when somebody listens: an unnamed session draws it later)."""
    follow_logger()
    if listeners:
        session_event(database, session.name, "opened")


def pool_event(database: str, action: str, status: PoolStatus,
               replica: str | None = None) -> None:
    """Report a pool move (the caller tests :data:`listeners` before asking the status)."""
    emit(PoolEvent(database, action, status, next(_numbers), threading.get_ident(), replica))


def checkout(database: str, pool: Pool, take: Callable[[], T], replica: str | None = None
             ) -> T:
    """A connection from ``pool`` by ``take()``, reported as ``checkout`` (after
    ``connect`` when the pool opened one for it) when somebody listens."""
    if not listeners:
        return take()
    size = pool.status().size
    conn = take()
    status = pool.status()
    if status.size > size:
        pool_event(database, "connect", status, replica)
    pool_event(database, "checkout", status, replica)
    return conn


def checkin(database: str, pool: Pool, conn: Any, replica: str | None = None) -> None:
    """Give ``conn`` back to ``pool``, reported as ``checkin`` (then ``discard`` when the
    pool closed it) when somebody listens."""
    if not listeners:
        pool.putconn(conn)
        return
    size = pool.status().size
    pool.putconn(conn)
    status = pool.status()
    pool_event(database, "checkin", status, replica)
    if status.size < size:
        pool_event(database, "discard", status, replica)


def phase(name: str, votes: Mapping[Any, str] | None = None
          ) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a data manager's phase method ``name``: when somebody listens, the call
    is timed and reported as a :class:`PhaseEvent` (with the manager's ``database`` and
    ``session``, if it has them). With ``votes``, the manager's ``mode`` after the call
    is reported as the session's ``vote`` (``votes`` maps a mode to its name)."""

    def decorate(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def timed(manager: Any, *args: Any) -> T:
            if not listeners:
                return method(manager, *args)
            session = getattr(manager, "session", None)
            database = None if session is None else session.database.name
            name_ = None if session is None else session.name
            start = now()
            token = current_phase.set(PhaseEvent(database, name_, name, start, 0.0, None, 0, 0))
            error: BaseException | None = None
            try:
                return method(manager, *args)
            except BaseException as failure:
                error = failure
                raise
            finally:
                current_phase.reset(token)
                duration = now() - start
                vote = None if votes is None else votes.get(getattr(manager, "mode", None))
                if vote is not None and database is not None and name_ is not None:
                    session_event(database, name_, "vote", vote)
                emit(PhaseEvent(database, name_, name, start, duration, error, next(_numbers),
                                threading.get_ident()))
        return timed
    return decorate


def describe(event: Event) -> str:
    """One line of text for ``event`` (values never shown), e.g. for printing a trace."""
    if isinstance(event, RoundTrip):
        sent = "; ".join(" ".join(statement.sql.split()) for statement in event.statements)
        failed = "" if event.error is None else f"  FAILED: {event.error}"
        return (f"{event.database} [{event.session or '-'}] {event.duration * 1000:.2f} ms: "
                f"{sent}{failed}")
    if isinstance(event, SessionEvent):
        return f"{event.database} [{event.session}] session {event.action} {event.detail}".rstrip()
    if isinstance(event, PhaseEvent):
        failed = "" if event.error is None else f"  FAILED: {event.error}"
        return (f"{event.database or '-'} [{event.session or '-'}] phase {event.phase} "
                f"{event.duration * 1000:.2f} ms{failed}")
    where = f"{event.database} replica {event.replica}" if event.replica else event.database
    return f"{where} pool {event.action}: {event.status.describe()}"


# -- traces: the events of one context ------------------------------------------------
_traces: contextvars.ContextVar[tuple[Trace, ...]] = contextvars.ContextVar(
    "mother_traces", default=())
_running = 0


def _to_traces(event: Event) -> None:
    for trace in _traces.get():
        if trace.active:
            trace.events.append(event)


class Trace:
    """The events of one context only: the thread (or asyncio task, and the tasks it
    starts) that started it, from :meth:`start` to :meth:`stop`. Traces nest."""

    #: the events collected, in order
    events: list[Event]
    #: whether it is collecting
    active: bool

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.active = False

    def __repr__(self) -> str:
        state = "running" if self.active else "stopped"
        return f"<mother Trace of {len(self.events)} events ({state})>"

    def start(self) -> None:
        """Collect this context's events from now on (nothing if it already does)."""
        global _running
        if self.active:
            return
        self.active = True
        _traces.set((*_traces.get(), self))
        with _lock:
            _running += 1
            if _running == 1:
                _add(_to_traces)

    def stop(self) -> None:
        """Stop collecting; the events collected so far stay in :attr:`events`."""
        global _running
        if not self.active:
            return
        self.active = False
        _traces.set(tuple(trace for trace in _traces.get() if trace is not self))
        with _lock:
            _running -= 1
            if _running == 0:
                _remove(_to_traces)

    def __enter__(self) -> Trace:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def capture() -> Trace:
    """A started :class:`Trace` of the current context: ``with events.capture() as trace:``."""
    trace = Trace()
    trace.start()
    return trace


# -- the mother.sql logger: one listener among others --------------------------------------
def log_statements(event: Event) -> None:
    """The ``mother.sql`` listener: one DEBUG record per statement of a round trip, the
    text as written with the parameters as a separate argument; the record also has
    ``session``, ``database``, ``sql``, ``params``, ``rows``, ``duration`` and ``error``
    (the round trip's)."""
    if not isinstance(event, RoundTrip) or not sql_log.isEnabledFor(logging.DEBUG):
        return
    failed = "" if event.error is None else f" -- failed: {event.error}"
    for statement in event.statements:
        params = statement.params
        extra = {"session": event.session, "database": event.database, "sql": statement.sql,
                 "params": params, "rows": statement.rows, "duration": event.duration,
                 "error": event.error}
        if isinstance(params, list):
            sql_log.debug("[%s] %s -- %d parameter sets%s", event.session, statement.sql,
                          len(params), failed, extra=extra)
        else:
            sql_log.debug("[%s] %s -- parameters: %r%s", event.session, statement.sql, params,
                          failed, extra=extra)


def follow_logger() -> None:
    """Subscribe :func:`log_statements` while ``mother.sql`` is enabled for DEBUG, and
    unsubscribe it otherwise. dbmother calls it whenever a session opens, a connection is
    taken from a pool and the shared connection is used: a level set takes effect from
    the next of these (not in the middle of a session that holds its connection)."""
    wanted = sql_log.isEnabledFor(logging.DEBUG)
    if wanted != (log_statements in listeners):
        with _lock:
            if wanted and log_statements not in listeners:
                _add(log_statements)
            elif not wanted and log_statements in listeners:
                _remove(log_statements)
