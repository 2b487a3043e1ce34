"""A pyramid_debugtoolbar panel: what dbmother sent and how each transaction ended.

Enable it as the toolbar's documentation says for extra panels, by naming
this module in the toolbar's ``debugtoolbar.includes`` setting::

    pyramid.includes = pyramid_debugtoolbar mother.pyramid
    debugtoolbar.includes = mother.pyramid.debugtoolbar

Per request the panel shows each session (name, database, vote, outcome),
each round trip with its statements, parameters, rows and duration, the
transaction phases in order with their timings, each database's pool, and a
warning for repeated statements (an N+1 pattern): a statement shape sent in
``debugtoolbar.mother.repeat_threshold`` (default
:data:`~mother.pyramid.tracing.REPEAT_THRESHOLD`) or more separate round trips
to one database in one request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid_debugtoolbar.panels import DebugPanel

from ..errors import ConfigError
from ..events import Trace
from .tracing import REPEAT_THRESHOLD, TraceSummary, summarize

THRESHOLD_SETTING = "debugtoolbar.mother.repeat_threshold"


def repeat_threshold(settings: Mapping[str, Any]) -> int:
    """The repeat threshold of the application's settings (an integer of at least 2)."""
    value = settings.get(THRESHOLD_SETTING, REPEAT_THRESHOLD)
    try:
        threshold = int(str(value).strip())
    except ValueError:
        threshold = 0
    if threshold < 2:
        raise ConfigError(THRESHOLD_SETTING, value, "expected an integer of at least 2")
    return threshold


class MotherDebugPanel(DebugPanel):
    """The ``dbmother`` tab: the request's trace, from a :class:`~mother.events.Trace`
    running around the whole request (the transaction's commit or abort included)."""

    name = "mother"
    has_content = True
    template = "mother.pyramid:templates/debugtoolbar.dbtmako"
    title = "dbmother: sessions, statements and transaction phases"
    nav_title = "dbmother"

    def __init__(self, request: Request) -> None:
        self.threshold = repeat_threshold(request.registry.settings)
        self.trace = Trace()

    def wrap_handler(self, handler: Callable[[Request], Response]
                     ) -> Callable[[Request], Response]:
        """Trace the request's context while the rest of the application handles it."""
        def traced(request: Request) -> Response:
            self.trace.start()
            try:
                return handler(request)
            finally:
                self.trace.stop()
        return traced

    def process_response(self, response: Response) -> None:
        """Arrange the events (the raw events are not kept in the toolbar's history)."""
        summary = summarize(self.trace.events, self.threshold)
        self.trace = Trace()
        self.data = {"summary": summary, "threshold": self.threshold}

    def _summary(self) -> TraceSummary | None:
        summary = self.data.get("summary")
        return summary if isinstance(summary, TraceSummary) else None

    @property
    def nav_subtitle(self) -> str:
        summary = self._summary()
        return "" if summary is None else str(summary.round_trips)

    @property
    def nav_subtitle_style(self) -> str:
        summary = self._summary()
        return "progress-bar-warning" if summary is not None and summary.repeats else ""

    def render_content(self, request: Request) -> str:
        if "summary" not in self.data:
            return "The request ended before its response: nothing was recorded."
        content: str = super().render_content(request)
        return content


def includeme(config: Configurator) -> None:
    """Add the panel to the toolbar (``debugtoolbar.includes = mother.pyramid.debugtoolbar``);
    a wrong repeat threshold in the application's settings fails here, at startup."""
    repeat_threshold(config.registry.parent_registry.settings)
    config.add_debugtoolbar_panel(MotherDebugPanel)
