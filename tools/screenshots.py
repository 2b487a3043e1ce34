"""Make the documentation's screenshots (``docs/_static/*.png``) in a real browser.

    .venv/bin/python tools/screenshots.py [--dsn DSN --dsn DSN] [--out FOLDER]

Serves the demo on two databases (two fresh SQLite files unless ``--dsn``
names two databases, whose demo tables it then drops and recreates), once
as it is and once with
pyramid_debugtoolbar and the dbmother panel (redirects intercepted, so that
the toolbar of a POST can be opened), drives Debian's headless Chromium
(``/usr/bin/chromium``, see ``make browser``) through it with Playwright, and
saves:

``demo-transfer.png``
    the report of a transfer that committed on both databases (the second one: the
    first creates the commit log table);
``demo-crash.png``
    the report of the crash that rolled both back;
``debugtoolbar-panel.png``
    the dbmother panel of the toolbar for the transfer's request.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import waitress
from playwright.sync_api import Page, sync_playwright

import mother
from mother.pyramid.demo import main as demo_app
from mother.pyramid.demo.models import GALAXIES
from mother.pyramid.websession import DEFAULT_TABLE

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ("demo-transfer.png", "demo-crash.png", "debugtoolbar-panel.png")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TOOLBAR = {"pyramid.includes": "pyramid_debugtoolbar",
           "debugtoolbar.includes": "mother.pyramid.debugtoolbar",
           "debugtoolbar.intercept_redirects": "true", "debugtoolbar.hosts": "127.0.0.1"}


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` served by waitress on a free loopback port, in a thread: its URL."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(10)


def transfer(page: Page, ships: int) -> None:
    page.fill("#transfer input[name=ships]", str(ships))
    page.click("#transfer button")


def shoot(out: Path, demo: str, toolbar: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(demo)
            transfer(page, 1)  # the first commit of a database creates its commit log
            transfer(page, 3)
            page.locator("#report").screenshot(path=str(out / "demo-transfer.png"))
            page.click("#crash button")
            page.locator("#report").screenshot(path=str(out / "demo-crash.png"))

            page = browser.new_page(viewport={"width": 1300, "height": 1100})
            page.goto(toolbar)
            transfer(page, 2)  # the toolbar stops at the redirect: its page is the POST's
            page.goto(page.locator("#pShowToolBarButton").get_attribute("href") or "")
            page.click("#pDebugPanel-mother a")
            page.locator("#pDebugPanel-mother-content").wait_for()
            page.screenshot(path=str(out / "debugtoolbar-panel.png"), full_page=True)
        finally:
            browser.close()


def fresh(dsn: str, name: str) -> None:
    """Configure database ``name`` without the demo's tables (the demo makes them anew)."""
    database = mother.init_mother(dsn=dsn, name=name, pool_min=1, recover_interval=None)
    conn = database.dialect.connect()
    try:
        for table in ("hangars", DEFAULT_TABLE, *mother.tutorial.TABLES):
            database.dialect.begin(conn)
            database.dialect.execute(conn, f"DROP TABLE IF EXISTS {database.dialect.quote(table)}")
            database.dialect.commit(conn)
    finally:
        conn.close()
    database.refresh_schema()


def run(out: Path, dsns: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for index, name in enumerate(GALAXIES):
            fresh(dsns[index] if dsns else f"sqlite:///{folder}/{name}.db", name)
        try:
            with served(demo_app({})) as demo, served(demo_app({}, **TOOLBAR)) as toolbar:
                shoot(out, demo, toolbar)
        finally:
            mother.close_all()
    for name in SHOTS:
        print(out / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", action="append", default=[],
                        help="the two databases (default: two fresh SQLite files)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "_static",
                        help="where the PNG files go (default: docs/_static)")
    args = parser.parse_args()
    if len(args.dsn) not in (0, len(GALAXIES)):
        parser.error(f"give --dsn {len(GALAXIES)} times, or not at all")
    run(args.out, args.dsn)


if __name__ == "__main__":
    main()
