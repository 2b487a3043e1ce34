"""Views. Each request is one transaction (pyramid_tm): what a view writes through
``request.mother_session`` is committed when it returns, rolled back when it raises."""

from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config

from mother import MO_LOAD, MO_SAVE, MotherBox

from .models import Planet, Star


@view_config(route_name="home", renderer="templates/home.jinja2")
def home(request):
    stars = request.mother_session.mr_query(
        "SELECT s.star_id, s.star_name, COUNT(p.planet_id) AS planets "
        "FROM stars s LEFT JOIN planets p ON p.star_id = s.star_id "
        "GROUP BY s.star_id, s.star_name ORDER BY s.star_name")
    return {"stars": stars}


@view_config(route_name="add_star", request_method="POST")
def add_star(request):
    name = request.POST.get("name", "").strip()
    if not name:
        raise HTTPBadRequest("a star needs a name")
    session = request.mother_session
    star = Star({"star_name": name}, MO_SAVE, session=session)
    for planet in request.POST.get("planets", "").split(","):
        if planet.strip():
            Planet({"star_id": star.getField("star_id"), "planet_name": planet.strip()},
                   MO_SAVE, session=session)
    return HTTPSeeOther(request.route_url("star", star_id=star.getField("star_id")))


@view_config(route_name="star", renderer="templates/star.jinja2")
def star(request):
    found = request.mother_session.get(Star, int(request.matchdict["star_id"]))
    if found is None:
        raise HTTPNotFound("no such star")
    planets = MotherBox(Planet, {"star_id": found.getField("star_id")}, MO_LOAD,
                        order=["planet_name"], session=request.mother_session)
    return {"star": found.getFields(), "planets": planets.getRecords()}
