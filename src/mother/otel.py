"""OpenTelemetry spans from dbmother's events (the ``otel`` extra: ``dbmother[otel]``).

::

    import mother.otel
    mother.otel.instrument()          # spans go to the global tracer provider

One ``CLIENT`` span per round trip, following OpenTelemetry's semantic
conventions for database client spans: ``db.system.name`` (``postgresql``,
``sqlite``), ``db.namespace``, ``server.address`` and ``server.port`` (from
the settings, nothing asked), ``db.operation.name`` (``BATCH …`` and
``db.operation.batch.size`` when the round trip carried several statements),
``db.query.text`` (the statements as written, joined by ``"; "``; values are
never in it: parameters stay apart, and the literals of a statement sent
without parameters are replaced by ``?``), ``db.response.returned_rows``, and
on failure ``error.type`` and ``db.response.status_code`` (the SQLSTATE).

One ``INTERNAL`` span per transaction phase (``mother tpc_vote``…, with
``mother.database``, ``mother.session`` and ``mother.phase``); the round trips
a phase made are its children. Everything else is parented under the span
current where the work ran (the request's). A session's life (opened, joined,
vote, ended) is recorded as span events on that current span.

Importing :mod:`mother` never imports OpenTelemetry; only this module does.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import events
from .database import get_database
from .errors import ConfigError, MotherError

#: the literals of a statement sent without parameters: strings, then numbers
_LITERALS = re.compile(r"'(?:[^']|'')*'|(?<![\w$.])\d+(?:\.\d+)?(?![\w.])")
#: commands whose operation is named by their first two or three words
_COMMANDS = re.compile(r"\s*(PREPARE TRANSACTION|COMMIT PREPARED|ROLLBACK PREPARED|"
                       r"ROLLBACK TO SAVEPOINT|RELEASE SAVEPOINT|\w+)", re.IGNORECASE)


def query_text(statement: events.Statement) -> str:
    """A statement's text for ``db.query.text``: as written when its values are bound
    apart, with every literal replaced by ``?`` when it was sent without parameters."""
    if statement.params is not None:
        return statement.sql
    return _LITERALS.sub("?", statement.sql)


def operation(sql: str) -> str:
    """A statement's operation name: its command (``SELECT``, ``COMMIT PREPARED``…)."""
    found = _COMMANDS.match(sql)
    return found[1].upper() if found else ""


def _ns(seconds: float, offset: int) -> int:
    return int(seconds * 1_000_000_000) + offset


class SpanListener:
    """An event listener that makes spans (see the module's documentation)."""

    def __init__(self, tracer_provider: Any = None) -> None:
        self.tracer = trace.get_tracer("mother", tracer_provider=tracer_provider)
        #: perf_counter() seconds to epoch nanoseconds
        self.offset = time.time_ns() - time.perf_counter_ns()
        self._lock = threading.Lock()
        #: the round trips of the phases running, made into spans when each phase ends
        self._pending: dict[tuple[Any, ...], list[events.RoundTrip]] = {}
        self._locations: dict[tuple[str, str], dict[str, str | int]] = {}

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.RoundTrip):
            running = events.current_phase.get()
            if running is None:
                self._round_trip(event, None)
            else:
                with self._lock:
                    self._pending.setdefault(_key(running), []).append(event)
        elif isinstance(event, events.PhaseEvent):
            self._phase(event)
        elif isinstance(event, events.SessionEvent):
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(f"mother session {event.action}", {
                    "mother.database": event.database, "mother.session": event.session,
                    "mother.detail": event.detail})

    def _location(self, database: str) -> dict[str, str | int]:
        """``db.system.name`` and where the database is (cached per name and DSN)."""
        try:
            db = get_database(database)
        except ConfigError:
            return {"db.system.name": "other_sql", "mother.database": database}
        key = (database, db.settings.dsn)
        found = self._locations.get(key)
        if found is None:
            found = {"db.system.name": db.dialect.name, **db.dialect.location(),
                     "mother.database": database}
            self._locations[key] = found
        return found

    def _round_trip(self, event: events.RoundTrip, parent: Any) -> None:
        statements = event.statements
        attributes: dict[str, Any] = dict(self._location(event.database))
        names = [operation(s.sql) for s in statements]
        texts = [query_text(s) for s in statements]
        if len(statements) > 1:
            attributes["db.operation.batch.size"] = len(statements)
            same = len(set(names)) == 1
            attributes["db.operation.name"] = f"BATCH {names[0]}" if same else "BATCH"
            attributes["db.query.text"] = texts[0] if len(set(texts)) == 1 else "; ".join(texts)
        elif statements:
            attributes["db.operation.name"] = names[0]
            attributes["db.query.text"] = texts[0]
        rows = [s.rows for s in statements if s.rows is not None]
        if rows:
            attributes["db.response.returned_rows"] = sum(rows)
        if event.session is not None:
            attributes["mother.session"] = event.session
        target = attributes.get("db.namespace")
        name = " ".join(str(part) for part in (attributes.get("db.operation.name"), target)
                        if part) or str(attributes["db.system.name"])
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.CLIENT,
                                      attributes=attributes,
                                      start_time=_ns(event.start, self.offset))
        self._fail(span, event.error)
        span.end(end_time=_ns(event.start + event.duration, self.offset))

    def _phase(self, event: events.PhaseEvent) -> None:
        attributes: dict[str, Any] = {"mother.phase": event.phase}
        if event.database is not None:
            attributes.update(self._location(event.database))
        if event.session is not None:
            attributes["mother.session"] = event.session
        span = self.tracer.start_span(f"mother {event.phase}", kind=SpanKind.INTERNAL,
                                      attributes=attributes,
                                      start_time=_ns(event.start, self.offset))
        self._fail(span, event.error)
        with self._lock:
            trips = self._pending.pop(_key(event), [])
        inside = trace.set_span_in_context(span, otel_context.get_current())
        for trip in trips:
            self._round_trip(trip, inside)
        span.end(end_time=_ns(event.start + event.duration, self.offset))

    @staticmethod
    def _fail(span: Any, error: BaseException | None) -> None:
        if error is None:
            return
        code = getattr(error, "sqlstate", None)
        span.set_attribute("error.type", code or type(error).__qualname__)
        if code:
            span.set_attribute("db.response.status_code", code)
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))


def _key(phase: events.PhaseEvent) -> tuple[Any, ...]:
    """What identifies one run of a phase (its start, name, session) across its events."""
    return (phase.start, phase.phase, phase.database, phase.session)


_installed: SpanListener | None = None
_install_lock = threading.Lock()


def instrument(tracer_provider: Any = None) -> SpanListener:
    """Make spans of dbmother's events from now on (``tracer_provider``: the global one
    unless given). Instrumenting twice raises."""
    global _installed
    with _install_lock:
        if _installed is not None:
            raise MotherError("mother.otel is already instrumented: uninstrument() first")
        _installed = SpanListener(tracer_provider)
        events.subscribe(_installed)
        return _installed


def uninstrument() -> None:
    """Stop making spans (nothing if :func:`instrument` was not called)."""
    global _installed
    with _install_lock:
        if _installed is not None:
            events.unsubscribe(_installed)
            _installed = None
