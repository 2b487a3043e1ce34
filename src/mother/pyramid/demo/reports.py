"""Each request's own trace on the page, and the report of the last action.

:func:`trace_tween_factory` sits over pyramid_tm: it captures the events of
the whole request (:func:`mother.events.capture`), the transaction's commit or
abort included. A page that carries :data:`MARKER` gets the trace of its own
request there, once the transaction has ended. An action (a POST that
changes data) leaves an :class:`Action` in the environ; after the outcome the
tween reads the databases again and keeps a :class:`Report` server side,
under a random token in a cookie: the next page shows it once. Nothing of
it comes from the URL, so a crash report cannot be forged by a link.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyramid.renderers import render
from pyramid.request import Request
from pyramid.response import Response

from ... import events
from ...scoping import session_scope
from ..tracing import TraceSummary, summarize
from .models import GALAXIES, ships

#: where a view leaves the :class:`Action` it performs
ACTION = "mother.demo.action"
#: the cookie that holds the token of the browser's last report
COOKIE = "mother_demo_report"
#: replaced, once the transaction has ended, by the trace of the page's own request
MARKER = "<!-- mother:own-trace -->"
#: reports kept at most (the oldest are dropped first)
KEPT = 200


@dataclass
class Action:
    """What an action set out to do: ``before`` is what each hangar held when it began
    and ``ships`` what it would hold if the action committed (database name to ships);
    ``stars`` the ids of the stars it inserted; ``error`` why it failed."""

    kind: str  # "transfer", "crash" or "add_star"
    title: str
    before: dict[str, int] = field(default_factory=dict)
    ships: dict[str, int] = field(default_factory=dict)
    stars: list[int] = field(default_factory=list)
    error: str | None = None


@dataclass
class Report:
    """An action, its request's trace, and what the databases held after its outcome."""

    action: Action
    summary: TraceSummary
    #: the ships of each hangar and the action's stars still in the database, read after
    #: the outcome in a new transaction
    ships_after: dict[str, int]
    stars_after: int

    @property
    def committed(self) -> bool:
        return self.action.error is None and self.summary.outcome == "committed"

    @property
    def as_claimed(self) -> bool:
        """Whether the databases hold what the report claims: all of the action if it
        committed, none of it if it did not."""
        if self.committed:
            expected, stars = self.action.ships, len(self.action.stars)
        else:
            expected, stars = self.action.before, 0
        return (all(self.ships_after[name] == count for name, count in expected.items())
                and self.stars_after == stars)


class Reports:
    """The reports of recent actions, by token (server side, bounded, thread safe)."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._reports: OrderedDict[str, Report] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, report: Report) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._reports[token] = report
            while len(self._reports) > self.kept:
                self._reports.popitem(last=False)
        return token

    def pop(self, token: str | None) -> Report | None:
        """The report of ``token`` (once), or None for an unknown or missing token."""
        if not token:
            return None
        with self._lock:
            return self._reports.pop(token, None)


def read_after(action: Action) -> tuple[dict[str, int], int]:
    """Each hangar's ships and how many of the action's stars exist, in new transactions."""
    after = {}
    for name in GALAXIES:
        with session_scope("demo: read after the outcome", database=name,
                           readonly=True) as session:
            after[name] = ships(session)
    stars = 0
    if action.stars:
        with session_scope("demo: read after the outcome", readonly=True) as session:
            marks = ", ".join(session.database.dialect.placeholder(f"s{n}")
                              for n in range(len(action.stars)))
            stars = session.ov_query(f"SELECT COUNT(*) AS n FROM stars WHERE star_id IN ({marks})",
                                     {f"s{n}": star for n, star in enumerate(action.stars)})
    return after, stars


def trace_tween_factory(handler: Callable[[Request], Response], registry: Any
                        ) -> Callable[[Request], Response]:
    """The tween over pyramid_tm that traces each request (see the module docstring)."""
    reports: Reports = registry["mother.demo.reports"]

    def demo_trace_tween(request: Request) -> Response:
        with events.capture() as trace:
            response = handler(request)
        summary = summarize(trace.events)
        action = request.environ.get(ACTION)
        if action is not None:
            report = Report(action, summary, *read_after(action))
            response.set_cookie(COOKIE, reports.put(report), httponly=True, samesite="Strict")
        if response.content_type == "text/html" and MARKER.encode() in response.body:
            own = render("templates/trace.jinja2", {"summary": summary, "galaxies": GALAXIES},
                         request=request)
            response.body = response.body.replace(MARKER.encode(), own.encode())
        return response

    return demo_trace_tween
