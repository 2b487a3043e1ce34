"""A small Pyramid application for the mother.pyramid tests (the real app, nothing mocked)."""

from __future__ import annotations

import threading
from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.router import Router

from mother import MO_SAVE
from mother.pyramid import MotherWebSessionFactory, create_websession_table
from tests.support.classes import ClsStars

SECRET = "test-secret-" + "x" * 40


class Boom(Exception):
    """Raised by views that fail on purpose."""


class Handled(Exception):
    """Rendered by an exception view (as a 500 page)."""


def add_star(request: Any) -> ClsStars:
    name = request.params.get("name", "star")
    return ClsStars({"star_name": name, "star_age": 1}, MO_SAVE, session=request.mother_session)


def ok(request: Any) -> Response:
    star = add_star(request)
    return Response(f"added {star.getField('star_id')} in {request.mother_session.name}")


def fail(request: Any) -> Response:
    add_star(request)
    raise Boom("failing after the insert")


def handled(request: Any) -> Response:
    add_star(request)
    raise Handled("rendered by an exception view")


def handled_view(error: Handled, request: Any) -> Response:
    return Response(f"handled: {error}", status=500)


def status(request: Any) -> Response:
    add_star(request)
    return Response("vetoed?", status=int(request.params["status"]))


def doom(request: Any) -> Response:
    add_star(request)
    request.tm.doom()
    return Response("doomed")


def ws_incr(request: Any) -> Response:
    request.session["n"] = request.session.get("n", 0) + 1
    if request.params.get("fail"):
        raise Boom("failing after changing the web session")
    return Response(str(request.session["n"]))


def ws_read(request: Any) -> Response:
    return Response(str(request.session.get("n", 0)))


def ws_forget(request: Any) -> Response:
    request.session.invalidate()
    return Response("forgotten")


def ws_flash(request: Any) -> Response:
    request.session.flash(request.params.get("msg", "hello"))
    return Response("flashed")


def ws_pop(request: Any) -> Response:
    return Response("|".join(request.session.pop_flash()))


def ws_slow(request: Any) -> Response:
    """Reads the web session, lets another request write it, then writes: a conflict."""
    gate = request.registry["test.gate"]
    gate.attempts.append(request.environ.get("retry.attempt"))
    value = request.session.get("n", 0)
    if not gate.loaded.is_set():
        gate.loaded.set()
        gate.other_done.wait(60)
    request.session["n"] = value + 1
    return Response(str(request.session["n"]))


class Gate:
    """Orders two concurrent requests in the web-session conflict test."""

    def __init__(self) -> None:
        self.loaded = threading.Event()
        self.other_done = threading.Event()
        self.attempts: list[Any] = []


VIEWS = {"ok": ok, "fail": fail, "handled": handled, "status": status, "doom": doom,
         "ws_incr": ws_incr, "ws_read": ws_read, "ws_forget": ws_forget, "ws_flash": ws_flash,
         "ws_pop": ws_pop, "ws_slow": ws_slow}


def make_app(settings: dict[str, Any] | None = None, *, websession: bool = True,
             extra: Any = None) -> Router:
    """The test application; ``extra(config)`` may add views."""
    with Configurator(settings=dict(settings or {})) as config:
        config.include("mother.pyramid")
        if websession:
            create_websession_table(drop=True)
            config.set_session_factory(MotherWebSessionFactory(SECRET, reissue_time=None))
        for name, view in VIEWS.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        config.add_view(handled_view, context=Handled)
        config.registry["test.gate"] = Gate()
        if extra is not None:
            extra(config)
    return config.make_wsgi_app()


def main(global_config: Any, **settings: Any) -> Router:
    """PasteDeploy entry point for the bootstrap test."""
    return make_app(settings)
