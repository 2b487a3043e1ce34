"""A request's events (:mod:`mother.events`) arranged for reading: sessions, round trips,
phases, pools and repeated statements.

The debug toolbar panel (:mod:`mother.pyramid.debugtoolbar`) and the demo
(``mother.pyramid.demo``) both show a request's trace through
:func:`summarize`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..dialects.base import PoolStatus
from ..events import Event, PhaseEvent, PoolEvent, RoundTrip, SessionEvent

#: a statement shape sent in this many separate round trips of one request is reported
#: as a repeat (an N+1 pattern: one query per row of an earlier result)
REPEAT_THRESHOLD = 5

_CONTROL = re.compile(r"\s*(BEGIN|START|COMMIT|ROLLBACK|PREPARE|SAVEPOINT|RELEASE|END|SET|"
                      r"PRAGMA)\b", re.IGNORECASE)
#: dbmother's own probe of whether a PostgreSQL transaction wrote (sent at its end)
_PROBE = "pg_current_xact_id_if_assigned()"
_LITERAL = re.compile(r"'(?:[^']|'')*'|(?<![\w$])\d+(?:\.\d+)?\b")
_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s|(?<![:\w]):\w+|\$\d+|\?")
_SPACE = re.compile(r"\s+")


def shape(sql: str) -> str:
    """The statement with its values and placeholders replaced by ``?`` and its spaces
    collapsed: statements that differ only in their values have the same shape."""
    text = _PLACEHOLDER.sub("?", _LITERAL.sub("?", sql))
    return _SPACE.sub(" ", text).strip()


def is_control(sql: str) -> bool:
    """Whether ``sql`` controls the transaction (``BEGIN``, ``COMMIT``, ``SAVEPOINT``…, and
    dbmother's probe of whether it wrote) rather than reading or writing data: those never
    count as repeats."""
    return _CONTROL.match(sql) is not None or _PROBE in sql


def _error(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


@dataclass(frozen=True)
class Line:
    """One event as a line of the trace, in order. ``offset`` is the time since the
    trace's first timed event (seconds; None for the untimed session and pool events)."""

    seq: int
    kind: str  # "statement", "phase", "session" or "pool"
    database: str | None
    session: str | None
    text: str
    params: Any = None
    rows: int | None = None
    offset: float | None = None
    duration: float | None = None
    error: str | None = None


@dataclass
class SessionSummary:
    """A session of the request: how it voted, how it ended, what it sent."""

    name: str
    database: str
    vote: str = ""
    outcome: str = ""
    round_trips: int = 0
    statements: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Repeat:
    """A statement shape sent ``count`` times in separate round trips to ``database``."""

    shape: str
    database: str
    count: int
    seconds: float


@dataclass
class TraceSummary:
    """What :func:`summarize` makes of a trace's events."""

    lines: list[Line] = field(default_factory=list)
    sessions: list[SessionSummary] = field(default_factory=list)
    phases: list[Line] = field(default_factory=list)
    #: each database's pool as the request's last pool event left it
    pools: dict[str, PoolStatus] = field(default_factory=dict)
    repeats: list[Repeat] = field(default_factory=list)
    round_trips: int = 0
    statements: int = 0
    #: time spent waiting for database replies (seconds)
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        """``rolled back`` if any session was rolled back, else ``committed`` if any
        committed, else ``closed`` (sessions that had nothing to end), else ``none``."""
        endings = {session.outcome for session in self.sessions}
        for outcome in ("rolled back", "committed", "closed"):
            if outcome in endings:
                return outcome
        return "none"

    @property
    def databases(self) -> list[str]:
        """The databases the request used, in the order it first used them."""
        seen = dict.fromkeys(line.database for line in self.lines if line.database)
        return list(seen)


def _idle(session: SessionSummary) -> bool:
    return not (session.round_trips or session.vote or session.outcome)


def _renamed(sessions: dict[tuple[str, str], SessionSummary], opened: set[tuple[str, str]]
             ) -> list[SessionSummary]:
    """The sessions, each once under its last name: a session renamed after it opened
    (:mod:`mother.pyramid` names a request's session after the request) reports its
    opening under the first name and the rest under the second. A session that opened
    and did nothing more, followed in the same database by one seen working without
    having opened, is taken as the same session, renamed."""
    unpaired = [key for key, session in sessions.items() if key in opened and _idle(session)]
    renamed = set()
    for key in sessions:
        if key not in opened:
            first = next((old for old in unpaired if old[0] == key[0]), None)
            if first is not None:
                unpaired.remove(first)
                renamed.add(first)
    return [session for key, session in sessions.items() if key not in renamed]


def summarize(events: Iterable[Event], repeat_threshold: int = REPEAT_THRESHOLD
              ) -> TraceSummary:
    """Arrange a trace's events (see :class:`TraceSummary`); a statement shape sent in
    ``repeat_threshold`` or more separate round trips to one database is a repeat."""
    ordered = sorted(events, key=lambda event: event.seq)
    summary = TraceSummary()
    starts = [event.start for event in ordered if isinstance(event, RoundTrip | PhaseEvent)]
    origin = min(starts, default=0.0)
    sessions: dict[tuple[str, str], SessionSummary] = {}
    shapes: Counter[tuple[str, str]] = Counter()
    shape_seconds: dict[tuple[str, str], float] = defaultdict(float)
    opened: set[tuple[str, str]] = set()

    def session_of(database: str, name: str) -> SessionSummary:
        key = (database, name)
        if key not in sessions:
            sessions[key] = SessionSummary(name, database)
        return sessions[key]

    for event in ordered:
        if isinstance(event, RoundTrip):
            summary.round_trips += 1
            summary.statements += len(event.statements)
            summary.seconds += event.duration
            if event.session is not None:
                owner = session_of(event.database, event.session)
                owner.round_trips += 1
                owner.statements += len(event.statements)
                owner.seconds += event.duration
            for statement in event.statements:
                summary.lines.append(Line(
                    event.seq, "statement", event.database, event.session, statement.sql,
                    statement.params, statement.rows, event.start - origin, event.duration,
                    _error(event.error)))
            for key in {(event.database, shape(statement.sql)) for statement in event.statements
                        if not is_control(statement.sql)}:
                shapes[key] += 1
                shape_seconds[key] += event.duration
        elif isinstance(event, PhaseEvent):
            line = Line(event.seq, "phase", event.database, event.session, event.phase,
                        offset=event.start - origin, duration=event.duration,
                        error=_error(event.error))
            summary.lines.append(line)
            summary.phases.append(line)
        elif isinstance(event, SessionEvent):
            owner = session_of(event.database, event.session)
            if event.action == "opened":
                opened.add((event.database, event.session))
            elif event.action == "vote":
                owner.vote = event.detail
            elif event.action == "ended":
                owner.outcome = event.detail
            text = f"{event.action} ({event.detail})" if event.detail else event.action
            summary.lines.append(Line(event.seq, "session", event.database, event.session,
                                      text))
        elif isinstance(event, PoolEvent):
            if event.replica is None:
                pool, moved = event.database, event.action
            else:
                pool = f"{event.database} (replica {event.replica})"
                moved = f"replica {event.replica} {event.action}"
            summary.pools[pool] = event.status
            summary.lines.append(Line(event.seq, "pool", event.database, None,
                                      f"{moved}: {event.status.describe()}"))
    summary.sessions = _renamed(sessions, opened)
    summary.repeats = sorted(
        (Repeat(text, database, count, shape_seconds[(database, text)])
         for (database, text), count in shapes.items() if count >= repeat_threshold),
        key=lambda repeat: (-repeat.count, repeat.database, repeat.shape))
    return summary
