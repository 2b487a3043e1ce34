"""Screenshots of a Mother Database Connection's ZMI tabs, taken in headless Chromium.

    python zope/screenshots.py var/instance/etc/zope.conf [--connection mother_db]
        [--user admin:admin] [--out zope/screenshots]

Run it with the instance stopped (it opens the ZODB itself, as ``zconsole`` does) and
with Debian's ``chromium`` installed. It serves the instance on a free loopback port,
logged in as ``--user`` (the server adds the credentials to every request), and saves
one PNG per tab. Nothing is changed: the Test tab's statement is rolled back.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--window-size=1280,860")


def pages(connection: str) -> list[tuple[str, str]]:
    """(file name, path) of every screenshot."""
    test = urlencode({"sql": "SELECT 1 AS one, 'two' AS two, CURRENT_TIMESTAMP AS now"})
    return [
        ("properties", f"/{connection}/manage_main"),
        ("properties-error", f"/{connection}/manage_edit?" + urlencode({
            "title": "refused", "dsn": "sqlite:///x.db", "pool_min": "1", "pool_max": "0",
            "pool_timeout": "5", "pool_type": "limited", "twophase": "auto"})),
        ("test", f"/{connection}/manage_testForm?{test}"),
        ("status", f"/{connection}/manage_status"),
        ("zsql-add", "/manage_addProduct/ZSQLMethods/add"),
    ]


def logged_in(app: Callable[..., Any], user: str) -> Callable[..., Any]:
    """The WSGI app with HTTP basic credentials added to every request."""
    header = "Basic " + base64.b64encode(user.encode()).decode()

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["HTTP_AUTHORIZATION"] = header
        return app(environ, start_response)
    return wrapper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("conf", help="the instance's zope.conf")
    parser.add_argument("--connection", default="mother_db")
    parser.add_argument("--user", default="admin:admin")
    parser.add_argument("--out", type=Path, default=HERE / "screenshots")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args(argv)

    import waitress
    from Zope2.Startup.run import make_wsgi_app

    app = logged_in(make_wsgi_app({}, args.conf), args.user)
    server = waitress.create_server(app, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.effective_port}"
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for name, path in pages(args.connection):
            target = args.out / f"{name}.png"
            with tempfile.TemporaryDirectory() as profile:
                subprocess.run([args.chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                f"--screenshot={target}", base + path],
                               check=True, capture_output=True, timeout=120)
            print(f"{target} <- {path}")
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
