"""The views, called directly and through WebTest, inside a doomed transaction."""

import pytest
from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound, HTTPSeeOther

from mother_quickstart.views import add_star, home, star


def test_add_star_stores_it_with_its_planets(dummy_request, dbsession):
    dummy_request.method = "POST"
    dummy_request.POST.update({"name": "Vega", "planets": "b, c"})
    response = add_star(dummy_request)
    assert isinstance(response, HTTPSeeOther)
    assert dbsession.ov_query("SELECT COUNT(*) AS n FROM planets p JOIN stars s "
                              "ON s.star_id = p.star_id WHERE s.star_name = 'Vega'") == 2


def test_add_star_without_a_name_is_refused(dummy_request, dbsession):
    before = dbsession.ov_query("SELECT COUNT(*) AS n FROM stars")
    dummy_request.method = "POST"
    dummy_request.POST.update({"name": "  ", "planets": "b"})
    with pytest.raises(HTTPBadRequest):
        add_star(dummy_request)
    assert dbsession.ov_query("SELECT COUNT(*) AS n FROM stars") == before


def test_home_lists_stars_with_their_planet_counts(dummy_request, dbsession):
    dbsession.oc_query("INSERT INTO stars (star_name) VALUES ('Altair')")
    altair = dbsession.ov_query("SELECT star_id FROM stars WHERE star_name = 'Altair'")
    assert {"star_id": altair, "star_name": "Altair", "planets": 0} in home(dummy_request)["stars"]


def test_unknown_star_is_not_found(dummy_request):
    dummy_request.matchdict["star_id"] = "424242"
    with pytest.raises(HTTPNotFound):
        star(dummy_request)


def test_pages_render(testapp, dbsession):
    assert "Deneb" not in testapp.get("/").text
    page = testapp.post("/stars", {"name": "Deneb", "planets": "x"}).follow()
    assert "<h1>Deneb</h1>" in page.text and "<li>x</li>" in page.text
    assert "Deneb</a>\n      (1 planets)" in testapp.get("/").text
