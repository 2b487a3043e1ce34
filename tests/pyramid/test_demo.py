"""The demo application: sample data, the crash action keeps nothing, the counter survives."""

from __future__ import annotations

import re

import webtest

import mother
from mother.pyramid.demo import main
from tests.support.databases import count


def test_demo_crash_keeps_nothing_and_counter_survives(db: mother.Database) -> None:
    app = webtest.TestApp(main({}))
    page = app.get("/")
    assert "Proxima b" in page.text and re.search(r'class="big">1<', page.text)
    stars = count(db, "stars")
    crashed = page.forms[2].submit().follow()
    assert "The request crashed" in crashed.text
    assert "<strong>0</strong> of those stars" in crashed.text
    assert count(db, "stars") == stars
    assert re.search(r'class="big">2<', crashed.text)
    form = crashed.forms[1]
    form["star_name"] = "Vega"
    added = form.submit().follow()
    assert "Vega" in added.text and count(db, "stars") == stars + 1
    app.post("/stars", {"star_name": "no token"}, status=400)  # CSRF token required
