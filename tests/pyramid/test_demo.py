"""The demo on two databases: each page shows its request's trace; a transfer commits on
both, a crash rolls both back, the report of the outcome is honest and cannot be forged.

The first tests drive the application in this process (WebTest); the browser tests
start ``mother demo`` for real and click through its pages in Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest
from playwright.sync_api import Browser, Page, expect

import mother
from mother.pyramid.demo import main
from mother.pyramid.demo.models import GALAXIES
from mother.pyramid.demo.reports import COOKIE
from mother.pyramid.websession import DEFAULT_TABLE
from tests.support.browser import BIN, chromium, free_port, screenshot, server
from tests.support.databases import count, make_dsn

DEMO_TABLES = ("hangars", DEFAULT_TABLE, *mother.tutorial.TABLES)


def fresh(dsn: str, name: str) -> mother.Database:
    """Database ``name`` on ``dsn`` without the demo's tables (the demo creates them)."""
    database = mother.init_mother(dsn=dsn, name=name, pool_min=1, pool_max=8,
                                  recover_interval=None)
    conn = database.dialect.connect()
    try:
        for table in DEMO_TABLES:
            database.dialect.begin(conn)
            database.dialect.execute(conn, f"DROP TABLE IF EXISTS {database.dialect.quote(table)}")
            database.dialect.commit(conn)
    finally:
        conn.close()
    database.refresh_schema()
    return database


@pytest.fixture
def dsns(kind: str, pg_dsns: list[str], tmp_path: Path) -> Iterator[list[str]]:
    """Two databases of ``kind`` without the demo's tables, configured here as the demo's."""
    found = [make_dsn(kind, pg_dsns, tmp_path, index) for index in range(2)]
    for dsn, name in zip(found, GALAXIES):
        fresh(dsn, name)
    yield found
    mother.close_all()


def held(name: str) -> int:
    """The ships a fresh connection finds in database ``name``'s hangar."""
    database = mother.get_database(name)
    conn = database.dialect.connect()
    try:
        return database.dialect.execute(conn, "SELECT ships FROM hangars").fetchone()["ships"]
    finally:
        conn.close()


def ships_of(page: webtest.TestResponse) -> dict[str, int]:
    return {name: int(number) for name, number in re.findall(
        r'class="card hangar" data-database="(\w+)">.*?class="big ships">(\d+)<', page.text,
        re.DOTALL)}


# -- in this process -------------------------------------------------------------------------
@pytest.fixture
def app(dsns: list[str]) -> webtest.TestApp:
    return webtest.TestApp(main({}))


def test_every_page_shows_its_own_request_after_its_transaction_ended(
        app: webtest.TestApp, kind: str) -> None:
    page = app.get("/")
    # two SQLite files commit one after the other: the page says so
    assert ('id="one-phase-note"' in page.text) == (kind == "sqlite")
    own = page.text.split("This page's own request", 1)[1]
    assert "<!-- mother:own-trace -->" not in page.text
    assert "SELECT star_id, star_name" in own  # what the page read
    assert re.search(r"voted <strong>(one-phase|two-phase)</strong>,\s*<strong class=\"ok\">"
                     r"committed</strong>", own)  # the visit counter was written and committed


def test_transfer_commits_on_both_and_reports_what_the_databases_hold(
        app: webtest.TestApp, kind: str) -> None:
    page = app.get("/")
    assert ships_of(page) == {"default": 7, "andromeda": 5}
    form = page.forms["transfer"]
    form["ships"] = "4"
    done = form.submit().follow()
    assert (held("default"), held("andromeda")) == (3, 9)
    assert ships_of(done) == {"default": 3, "andromeda": 9}
    report = done.text.split('id="report"', 1)[1].split("</section>", 1)[0]
    assert 'class="report ok"' in done.text and "Committed" in report
    assert 'data-database="default">3<' in report and 'data-database="andromeda">9<' in report
    assert 'class="claim holds"' in report
    assert report.count("UPDATE hangars SET ships = ships +") == 2
    if kind == "postgresql":
        assert report.count("PREPARE TRANSACTION") == 2 and report.count("COMMIT PREPARED") == 2
    assert 'id="report"' not in app.get("/").text  # shown once


def test_crash_rolls_both_back_and_is_reported_in_the_failure_colour(
        app: webtest.TestApp, dsns: list[str]) -> None:
    page = app.get("/")
    stars = count(mother.get_database("default"), "stars")
    crashed = page.forms["crash"].submit().follow()
    assert count(mother.get_database("default"), "stars") == stars
    assert (held("default"), held("andromeda")) == (7, 5)
    assert 'class="report bad"' in crashed.text and "The request crashed" in crashed.text
    report = crashed.text.split('id="report"', 1)[1].split("</section>", 1)[0]
    assert 'class="num stars-after">0<' in report
    assert 'data-database="default">7<' in report and 'data-database="andromeda">5<' in report
    assert "CrashError: crashed on purpose" in report
    assert report.count("ended (rolled back)") == 2 and "ended (committed)" not in report
    assert "line-ok" not in report and 'class="ok"' not in report  # nothing in green
    assert 'class="claim holds"' in report
    assert "you never see it" not in crashed.text  # the crashed request's flash rolled back
    assert re.search(r'class="big">2<', crashed.text)  # the counter of the page before survived


def test_adding_a_star_commits_it_and_reports_it(app: webtest.TestApp) -> None:
    stars = count(mother.get_database("default"), "stars")
    form = app.get("/").forms["add-star"]
    form["star_name"], form["planet_name"] = "Vega", "Vega b"
    added = form.submit().follow()
    assert count(mother.get_database("default"), "stars") == stars + 1
    assert 'class="report ok"' in added.text and "add the star &#39;Vega&#39;" in added.text
    assert 'class="num stars-after">1<' in added.text
    assert "Vega b" in added.text.split("The galaxy", 1)[1]


def test_a_refused_transfer_rolls_both_back(app: webtest.TestApp) -> None:
    form = app.get("/").forms["transfer"]
    form["ships"] = "50"  # the Milky Way has 7: the CHECK constraint refuses
    refused = form.submit().follow()
    assert (held("default"), held("andromeda")) == (7, 5)
    assert 'class="report bad"' in refused.text and "Failed" in refused.text
    assert "IntegrityError" in refused.text or "CheckViolation" in refused.text


def test_the_report_cannot_be_forged(app: webtest.TestApp) -> None:
    app.get("/")
    for forged in ("/?crashed=Evil+star&planets=9&star=1", "/?report=1"):
        assert 'id="report"' not in app.get(forged).text
    app.set_cookie(COOKIE, "made-up-token")
    page = app.get("/")
    assert 'id="report"' not in page.text
    app.post("/crash", {"star_name": "no token"}, status=400)  # CSRF token required
    assert (held("default"), held("andromeda")) == (7, 5)


def test_the_demo_takes_at_most_two_dsns_and_defaults_to_two_sqlite_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mother.cli import CommandError
    from mother.pyramid.demo.serve import configure

    with pytest.raises(CommandError, match="give --dsn at most 2 times"):
        configure(["sqlite://", "sqlite://", "sqlite://"])
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    try:
        used = configure([f"sqlite:///{tmp_path / 'first.db'}"])
    finally:
        mother.close_all()
    assert used == [f"sqlite:///{tmp_path / 'first.db'}",
                    f"sqlite:///{tmp_path / 'dbmother' / 'demo-andromeda.db'}"]


# -- in a real browser, on the real server -----------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def demo(dsns: list[str]) -> Iterator[str]:
    """``mother demo`` for real on the two databases: its URL."""
    mother.close_all()  # the demo process owns the databases now
    port = free_port()
    argv = [str(BIN / "mother"), "demo", "--port", str(port), "--dsn", dsns[0], "--dsn", dsns[1]]
    with server(argv, port) as url:
        for dsn, name in zip(dsns, GALAXIES):
            mother.init_mother(dsn=dsn, name=name, pool_min=1, recover_interval=None)
        yield url


def hangar(page: Page, name: str) -> int:
    return int(page.locator(f".card.hangar[data-database='{name}'] .ships").inner_text())


def test_browser_transfer_then_crash(browser: Browser, demo: str, kind: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(demo)
    assert (hangar(page, "default"), hangar(page, "andromeda")) == (7, 5)
    expect(page.locator("section.own-trace table.trace tbody tr").first).to_be_visible()

    page.fill("#transfer input[name=ships]", "2")
    page.click("#transfer button")
    report = page.locator("#report")
    expect(report).to_have_class("report ok")
    expect(report.locator("h2")).to_contain_text("Committed")
    assert (hangar(page, "default"), hangar(page, "andromeda")) == (5, 7)
    assert (held("default"), held("andromeda")) == (5, 7)
    assert report.locator(".ships-after").all_inner_texts() == ["5", "7"]
    sent = report.locator("tr.line-statement").all_inner_texts()
    assert sum("UPDATE hangars" in line for line in sent) == 2
    assert {"Milky Way", "Andromeda"} <= {line.split("\t")[1] for line in sent}
    endings = report.locator("tr.line-ok").all_inner_texts()
    assert len(endings) == 2 and all("ended (committed)" in line for line in endings)
    if kind == "postgresql":
        assert sum("PREPARE TRANSACTION" in line for line in sent) == 2
        assert sum("COMMIT PREPARED" in line for line in sent) == 2
    screenshot(page, f"demo-transfer-{kind}")

    page.click("#crash button")
    report = page.locator("#report")
    expect(report).to_have_class("report bad")
    expect(report.locator("h2")).to_contain_text("crashed")
    expect(report.locator(".claim")).to_have_class("claim holds")  # nothing kept, as claimed
    assert (hangar(page, "default"), hangar(page, "andromeda")) == (5, 7)
    assert (held("default"), held("andromeda")) == (5, 7)
    assert report.locator(".stars-after").inner_text() == "0"
    endings = report.locator("tr.line-bad").all_inner_texts()
    assert sum("ended (rolled back)" in line for line in endings) == 2
    assert report.locator("tr.line-ok").count() == 0
    screenshot(page, f"demo-crash-{kind}")

    page.goto(demo + "/?crashed=Forged+star&planets=9&star=1")
    expect(page.locator("#report")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Forged star")
