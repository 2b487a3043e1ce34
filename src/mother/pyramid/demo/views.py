"""The demo's views: each request is one transaction over the demo's two databases."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPException, HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from ... import MO_SAVE, get_database
from .. import get_session
from .models import (
    GALAXIES,
    Civilization,
    Lifeform,
    Planet,
    Star,
    galaxy,
    move_ships,
    ships,
    totals,
)
from .reports import ACTION, COOKIE, Action

#: the most ships one transfer may move (the form's limit; the database refuses overdrafts)
MOST_SHIPS = 99


class CrashError(RuntimeError):
    """Raised on purpose by the "crash" action, after it wrote to both databases."""


def _redirect(request: Request) -> HTTPSeeOther:
    return HTTPSeeOther(request.route_url("home"))


def _ships(request: Request) -> dict[str, int]:
    """Each hangar's ships, read in this request's sessions."""
    return {name: ships(get_session(request, name)) for name in GALAXIES}


def _transfer(request: Request, action: Action) -> None:
    """Move the requested ships between the two hangars, in this request's transaction."""
    try:
        count = int(request.POST.get("ships", "1"))
    except ValueError:
        count = 0
    count = max(1, min(count, MOST_SHIPS))
    source, target = list(GALAXIES)
    if request.POST.get("to") == source:
        source, target = target, source
    action.title = f"move {count} ships from {GALAXIES[source]} to {GALAXIES[target]}"
    action.before = _ships(request)
    action.ships = {source: action.before[source] - count,
                    target: action.before[target] + count}
    move_ships(get_session(request, source), -count)
    move_ships(get_session(request, target), count)


@view_config(route_name="home", renderer="templates/home.jinja2")
def home(request: Request) -> dict[str, Any]:
    """Both galaxies, the web-session counter and the report of this browser's last action."""
    session = request.mother_session
    visits = request.session.get("visits", 0) + 1
    request.session["visits"] = visits
    report = request.registry["mother.demo.reports"].pop(request.cookies.get(COOKIE))
    if COOKIE in request.cookies:
        request.response.delete_cookie(COOKIE)
    hangars = [{"name": name, "galaxy": label, "ships": ships(get_session(request, name)),
                "dialect": get_database(name).dialect.name,
                "twophase": get_database(name).twophase} for name, label in GALAXIES.items()]
    return {"stars": galaxy(session), "totals": totals(session), "visits": visits,
            "hangars": hangars, "galaxies": GALAXIES, "report": report,
            "messages": request.session.pop_flash(), "session_name": session.name,
            "most_ships": MOST_SHIPS}


@view_config(route_name="add_star", request_method="POST")
def add_star(request: Request) -> HTTPSeeOther:
    """Add a star (and optionally a planet): committed when the request ends well."""
    name = (request.POST.get("star_name", "").strip() or "Nameless star")[:80]
    action = request.environ[ACTION] = Action("add_star", f"add the star {name!r}")
    action.before = action.ships = _ships(request)
    star = Star({"star_name": name, "star_age": 1, "star_mass": 1}, MO_SAVE,
                session=request.mother_session)
    action.stars.append(star.getField("star_id"))
    planet_name = request.POST.get("planet_name", "").strip()
    if planet_name:
        Planet({"star_id": star.getField("star_id"), "planet_name": planet_name[:80],
                "planet_mass": 1}, MO_SAVE, session=request.mother_session)
    return _redirect(request)


@view_config(route_name="transfer", request_method="POST")
def transfer(request: Request) -> HTTPSeeOther:
    """Move ships from one database's hangar to the other's: both commit, or neither."""
    _transfer(request, request.environ.setdefault(ACTION, Action("transfer", "transfer")))
    return _redirect(request)


@view_config(route_name="crash", request_method="POST")
def crash(request: Request) -> None:
    """Write to both databases (a star with planets and a lifeform, a transfer), then fail."""
    session = request.mother_session
    action = request.environ[ACTION] = Action("crash", "crash")
    _transfer(request, action)
    name = (request.POST.get("star_name", "").strip() or "Doomed star")[:80]
    action.title = f"add the star {name!r} with two planets and a lifeform, {action.title}"
    star = Star({"star_name": name, "star_age": 0, "star_mass": 0}, MO_SAVE, session=session)
    star_id = star.getField("star_id")
    action.stars.append(star_id)
    planets = [Planet({"star_id": star_id, "planet_name": f"{name} {n}", "planet_mass": n},
                      MO_SAVE, session=session).getField("planet_id") for n in (1, 2)]
    life = Lifeform({"life_name": "Ephemerals", "life_age": 0}, MO_SAVE, session=session)
    Civilization({"life_id": life.getField("life_id"), "planet_id": planets[0], "age": 0},
                 MO_SAVE, session=session)
    request.session.flash("This message was flashed by the crashed request: you never see it.")
    raise CrashError(f"crashed on purpose after it wrote to {' and '.join(GALAXIES.values())}")


@view_config(context=Exception, route_name="transfer")
@view_config(context=Exception, route_name="crash")
def failed(error: Exception, request: Request) -> Response:
    """An action failed (the crash, or a database that refused a transfer): the transaction
    is aborted and the next page reports it.

    pyramid_tm aborts a request whose view raised; dooming the transaction
    makes sure of it even when the application sets a ``tm.commit_veto``
    (which would otherwise judge this redirect a success). HTTP errors raised
    before the action began (a missing CSRF token) are answered as they are.
    """
    if isinstance(error, HTTPException):
        return error
    action = request.environ.get(ACTION)
    if action is None:
        raise error
    action.error = f"{type(error).__name__}: {' '.join(str(error).split())}"
    request.tm.doom()
    return _redirect(request)


@view_config(route_name="forget", request_method="POST")
def forget(request: Request) -> HTTPSeeOther:
    """Invalidate the web session (its row is deleted when this request commits)."""
    request.session.invalidate()
    return _redirect(request)
