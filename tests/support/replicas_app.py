"""The Pyramid application of tests/pyramid/test_replicas.py, served by pserve: stars written
by POST, counted by GET, with the server that answered (asked of it)."""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.router import Router

from mother import MO_SAVE
from mother.pyramid import create_websession_table, get_session
from tests.support.classes import ClsStars


def add(request: Any) -> dict[str, Any]:
    star = ClsStars({"star_name": request.params["name"]}, MO_SAVE,
                    session=request.mother_session)
    return {"added": star.getField("star_id")}


def count(request: Any) -> dict[str, Any]:
    session = request.mother_session
    return {**session.or_query(
        "SELECT count(*) AS stars, pg_catalog.pg_is_in_recovery() AS standby, "
        "pg_catalog.current_setting('port')::int AS port FROM stars WHERE star_name = %(n)s",
        {"n": request.params["name"]}), "readonly": session.readonly}


def add_then_read(request: Any) -> dict[str, Any]:
    """Write and commit in a transaction of its own, then read in the next one."""
    added = add(request)
    request.tm.commit()
    request.tm.begin()
    return {**added, **count(request)}


def visit(request: Any) -> dict[str, Any]:
    """Count the client's visits in its web session (written on GET), and say where the
    request's reads and the web session's ran."""
    request.session["visits"] = request.session.get("visits", 0) + 1
    web = get_session(request, primary=True)
    return {"visits": request.session["visits"], "readonly": request.mother_session.readonly,
            "standby": request.mother_session.ov_query(
                "SELECT pg_catalog.pg_is_in_recovery() AS r WHERE %(yes)s", {"yes": True}),
            "web_session_standby": web.ov_query(
                "SELECT pg_catalog.pg_is_in_recovery() AS r WHERE %(yes)s", {"yes": True})}


def reading_first(request: Any) -> None:
    """A route's context factory (or a view's decorator) that reads before the view runs."""
    request.mother_session.ov_query("SELECT count(*) FROM stars WHERE %(yes)s", {"yes": True})


def read_then(view: Any) -> Any:
    def decorated(context: Any, request: Any) -> Any:
        reading_first(request)
        return view(context, request)
    return decorated


def refused(error: Exception, request: Any) -> Response:
    return Response(f"{type(error).__name__}: {error}", status=409)


def main(global_config: Any, **settings: Any) -> Router:
    config = Configurator(settings=settings)
    config.include("mother.pyramid")
    config.add_route("stars", "/stars")
    config.add_route("add_on_get", "/add-on-get")
    config.add_view(add, route_name="stars", request_method="POST", renderer="json")
    config.add_view(count, route_name="stars", request_method="GET", renderer="json")
    config.add_view(add, route_name="add_on_get", renderer="json", mother_writes=True)
    # the session asked for before the view: by the route's factory, by a decorator
    config.add_route("add_then_read", "/add-then-read")
    config.add_view(add_then_read, route_name="add_then_read", request_method="POST",
                    renderer="json")
    config.add_route("add_after_factory", "/add-after-factory", factory=reading_first)
    config.add_view(add, route_name="add_after_factory", renderer="json", mother_writes=True)
    config.add_route("add_after_decorator", "/add-after-decorator")
    config.add_view(add, route_name="add_after_decorator", renderer="json", mother_writes=True,
                    decorator=read_then)
    config.add_route("add_by_get", "/add-by-get")
    config.add_view(add, route_name="add_by_get", renderer="json")
    config.add_view(refused, context="mother.ReadOnlySessionError")
    if "mother.websession.secret" in settings:
        create_websession_table()
        config.add_route("visit", "/visit")
        config.add_view(visit, route_name="visit", renderer="json")
    config.add_route("home", "/")
    config.add_view(lambda request: Response("ok"), route_name="home")
    return config.make_wsgi_app()
