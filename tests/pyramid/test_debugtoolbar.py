"""The dbmother panel of pyramid_debugtoolbar, in a real browser on an application that
pserve serves: sessions, round trips, phases, pools and the repeated-statement warning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from mother.errors import ConfigError
from tests.support.browser import chromium, free_port, pserve, screenshot
from tests.support.databases import make_dsn

INI = """\
[app:main]
use = call:tests.support.debugtoolbar_app:main
mother.dsn = {dsn}
mother.pool_max = 4
mother.other.dsn = {other}
mother.other.pool_max = 4
pyramid.includes = pyramid_debugtoolbar
debugtoolbar.includes = mother.pyramid.debugtoolbar
debugtoolbar.hosts = 127.0.0.1
{extra}

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{port}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def app_url(kind: str, pg_dsns: list[str], tmp_path: Path) -> Iterator[str]:
    """The panel's test application under ``pserve``, on two databases of ``kind``."""
    port = free_port()
    ini = tmp_path / "toolbar.ini"
    ini.write_text(INI.format(dsn=make_dsn(kind, pg_dsns, tmp_path, 0),
                              other=make_dsn(kind, pg_dsns, tmp_path, 1), port=port, extra=""))
    with pserve(ini, port) as url:
        yield url


def open_panel(browser: Browser, url: str) -> Page:
    """Load ``url``, follow the toolbar's button to its page, open the dbmother tab."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    toolbar = page.locator("#pShowToolBarButton").get_attribute("href")
    assert toolbar is not None and "/_debug_toolbar/" in toolbar
    page.goto(toolbar)
    page.click("#pDebugPanel-mother a")
    expect(page.locator("#pDebugPanel-mother-content")).to_be_visible()
    return page


def cells(page: Page, table: str, column: int) -> list[str]:
    return page.locator(f"#pDebugPanel-mother-content table.{table} tbody tr "
                        f"td:nth-child({column})").all_inner_texts()


def test_panel_shows_each_session_statement_phase_and_pool(
        browser: Browser, app_url: str, kind: str) -> None:
    page = open_panel(browser, f"{app_url}/both?name=Twin")
    screenshot(page, f"debugtoolbar-both-{kind}")
    content = page.locator("#pDebugPanel-mother-content")
    assert cells(page, "mother-sessions", 2) == ["default", "other"]
    vote = "two-phase" if kind == "postgresql" else "one-phase"
    assert cells(page, "mother-sessions", 3) == [vote, vote]
    assert cells(page, "mother-sessions", 4) == ["committed", "committed"]
    assert all(name.startswith("GET /both #") for name in cells(page, "mother-sessions", 1))
    expect(content.locator(".mother-outcome")).to_have_text("committed")
    inserts = [text for text in cells(page, "mother-statements", 5) if "INSERT INTO stars" in text]
    assert len(inserts) == 2
    assert cells(page, "mother-statements", 6).count("{'name': 'Twin'}") == 2
    sent = cells(page, "mother-statements", 5)
    if kind == "postgresql":
        assert sum(text.startswith("PREPARE TRANSACTION") for text in sent) == 2
        assert sum(text.startswith("COMMIT PREPARED") for text in sent) == 2
    phases = cells(page, "mother-phases", 3)
    for database in ("default", "other"):
        mine = [phase for phase, owner in zip(phases, cells(page, "mother-phases", 4))
                if owner == database]
        assert mine == ["tpc_begin", "commit", "tpc_vote", "tpc_finish"]
    assert all(float(ms) >= 0 for ms in cells(page, "mother-phases", 6))
    assert cells(page, "mother-pools", 1) == ["default", "other"]
    assert cells(page, "mother-pools", 4) == ["0", "0"]  # every connection given back
    expect(content.locator(".mother-repeats")).to_have_count(0)


def test_panel_warns_of_a_statement_repeated_past_the_threshold(
        browser: Browser, app_url: str, kind: str) -> None:
    page = open_panel(browser, f"{app_url}/galaxy")
    screenshot(page, f"debugtoolbar-galaxy-{kind}")
    warning = page.locator("#pDebugPanel-mother-content .mother-repeats")
    expect(warning).to_be_visible()
    repeats = warning.locator(".mother-repeat").all_inner_texts()
    assert len(repeats) == 1
    assert repeats[0].startswith("6\u00d7 SELECT planet_name FROM planets WHERE star_id = ?")
    assert "on default" in repeats[0]
    expect(page.locator("#pDebugPanel-mother .badge")).to_have_class(
        "badge pull-right progress-bar-warning")


def test_panel_shows_a_rolled_back_request(browser: Browser, app_url: str) -> None:
    page = open_panel(browser, f"{app_url}/fail")
    content = page.locator("#pDebugPanel-mother-content")
    expect(content.locator(".mother-outcome")).to_have_text("rolled back")
    assert cells(page, "mother-sessions", 4) == ["rolled back"]
    expect(content.locator("table.mother-sessions tbody tr")).to_have_class("danger")
    assert "tpc_vote" not in cells(page, "mother-phases", 3)


def test_a_wrong_repeat_threshold_fails_at_startup() -> None:
    from pyramid.config import Configurator

    for wrong in ("1", "many"):
        settings = {"debugtoolbar.includes": "mother.pyramid.debugtoolbar",
                    "debugtoolbar.mother.repeat_threshold": wrong}
        with (pytest.raises(ConfigError, match="debugtoolbar.mother.repeat_threshold"),
              Configurator(settings=settings) as config):
            config.include("pyramid_debugtoolbar")
