"""The demo's views: each request is one transaction."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from ... import MO_SAVE
from .models import Civilization, Lifeform, Planet, Star, galaxy, totals


class CrashError(RuntimeError):
    """Raised on purpose by the "crash this request" action, after it added rows."""

    def __init__(self, added: dict[str, list[int]]) -> None:
        super().__init__(f"crashed on purpose after adding {added}")
        self.added = added


@view_config(route_name="home", renderer="templates/home.jinja2")
def home(request: Request) -> dict[str, Any]:
    """The galaxy, the web-session counter and the report of the last crash."""
    session = request.mother_session
    visits = request.session.get("visits", 0) + 1
    request.session["visits"] = visits
    crash = None
    if "crashed" in request.GET:
        star_ids = [int(part) for part in request.GET.getall("star") if part.isdigit()]
        kept = 0
        where = "SELECT COUNT(*) AS n FROM stars WHERE star_id = "
        for star_id in star_ids:
            kept += session.ov_query(where + session.database.dialect.placeholder("id"),
                                     {"id": star_id})
        crash = {"name": request.GET.get("crashed", ""), "ids": star_ids, "kept": kept,
                 "planets": int(request.GET.get("planets", "0") or 0)}
    return {"stars": galaxy(session), "totals": totals(session), "visits": visits,
            "messages": request.session.pop_flash(), "crash": crash,
            "session_name": session.name}


@view_config(route_name="add_star", request_method="POST")
def add_star(request: Request) -> HTTPSeeOther:
    """Add a star (and optionally a planet): committed when the request ends well."""
    name = request.POST.get("star_name", "").strip() or "Nameless star"
    star = Star({"star_name": name[:80], "star_age": 1, "star_mass": 1}, MO_SAVE,
                session=request.mother_session)
    planet_name = request.POST.get("planet_name", "").strip()
    if planet_name:
        Planet({"star_id": star.getField("star_id"), "planet_name": planet_name[:80],
                "planet_mass": 1}, MO_SAVE, session=request.mother_session)
    request.session.flash(f"Star {name!r} added in request {request.mother_session.name!r} "
                          "and committed with it.")
    return HTTPSeeOther(request.route_url("home"))


@view_config(route_name="crash", request_method="POST")
def crash(request: Request) -> None:
    """Add a star with planets and a lifeform, then fail: the transaction is aborted."""
    session = request.mother_session
    name = request.POST.get("star_name", "").strip() or "Doomed star"
    star = Star({"star_name": name[:80], "star_age": 0, "star_mass": 0}, MO_SAVE, session=session)
    star_id = star.getField("star_id")
    planets = [Planet({"star_id": star_id, "planet_name": f"{name} {n}", "planet_mass": n},
                      MO_SAVE, session=session).getField("planet_id") for n in (1, 2)]
    life = Lifeform({"life_name": "Ephemerals", "life_age": 0}, MO_SAVE, session=session)
    Civilization({"life_id": life.getField("life_id"), "planet_id": planets[0], "age": 0},
                 MO_SAVE, session=session)
    request.session.flash("This message was flashed by the crashed request: you never see it.")
    raise CrashError({"stars": [star_id], "planets": planets})


@view_config(context=CrashError)
def crashed(error: CrashError, request: Request) -> HTTPSeeOther:
    """Exception view: the transaction is aborted; the home page then shows what was kept.

    pyramid_tm aborts a request whose view raised; dooming the transaction
    makes sure of it even when the application sets a ``tm.commit_veto``
    (which would otherwise judge this redirect a success).
    """
    request.tm.doom()
    query = [("crashed", request.POST.get("star_name", "") or "Doomed star"),
             ("planets", str(len(error.added["planets"])))]
    query += [("star", str(star_id)) for star_id in error.added["stars"]]
    return HTTPSeeOther(request.route_url("home", _query=query))


@view_config(route_name="forget", request_method="POST")
def forget(request: Request) -> HTTPSeeOther:
    """Invalidate the web session (its row is deleted when this request commits)."""
    request.session.invalidate()
    return HTTPSeeOther(request.route_url("home"))
