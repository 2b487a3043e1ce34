"""A small application with pyramid_debugtoolbar and the dbmother panel, served by pserve
in the panel's browser tests (``use = call:tests.support.debugtoolbar_app:main``)."""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.router import Router

from mother import MotherSession, tutorial
from mother.database import get_database
from mother.pyramid import get_session

#: stars of the galaxy page: one planet query each, past the panel's repeat threshold
STARS = ("Sun", "Sirius", "Vega", "Altair", "Deneb", "Rigel")


class Boom(Exception):
    """Raised by the failing view, after it wrote."""


def page(body: str) -> Response:
    return Response(f"<!DOCTYPE html><html><head><title>panel test</title></head>"
                    f"<body>{body}</body></html>")


def galaxy(request: Any) -> Response:
    """Each star, then each star's planets in a query of its own: an N+1 pattern."""
    session = request.mother_session
    mark = session.database.dialect.placeholder("star")
    lines = []
    for star in session.mr_query("SELECT star_id, star_name FROM stars ORDER BY star_id"):
        planets = session.mr_query(f"SELECT planet_name FROM planets WHERE star_id = {mark}",
                                   {"star": star["star_id"]})
        lines.append(f"<li>{star['star_name']}: {len(planets)} planets</li>")
    return page(f"<ul>{''.join(lines)}</ul>")


def both(request: Any) -> Response:
    """A star written in each of the two databases, committed together."""
    for name in ("default", "other"):
        session = get_session(request, name)
        session.oc_query(f"INSERT INTO stars (star_name, star_age) VALUES "
                         f"({session.database.dialect.placeholder('name')}, 1)",
                         {"name": request.params.get("name", "Both")})
    return page("<p>written to both databases</p>")


def fail(request: Any) -> Response:
    get_session(request, "default").oc_query(
        "INSERT INTO stars (star_name, star_age) VALUES ('Lost', 1)")
    raise Boom("failing after the insert")


def boom_view(error: Boom, request: Any) -> Response:
    response = page(f"<p>failed: {error}</p>")
    response.status = 500
    return response


def main(global_config: Any, **settings: Any) -> Router:
    """The application: fresh tutorial tables in both databases, the sample stars in the first."""
    with Configurator(settings=settings) as config:
        config.include("mother.pyramid")
        for name in ("default", "other"):
            tutorial.create(get_database(name))
        with MotherSession("sample stars") as session:
            mark = session.database.dialect.placeholder("name")
            session.mq_query(f"INSERT INTO stars (star_name, star_age) VALUES ({mark}, 1)",
                             [{"name": star} for star in STARS])
        for name, view in (("galaxy", galaxy), ("both", both), ("fail", fail)):
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        config.add_view(boom_view, context=Boom)
    return config.make_wsgi_app()
