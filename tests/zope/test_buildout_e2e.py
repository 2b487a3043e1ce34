"""The buildout end to end, as a Zope user runs it: build, add a connection with zconsole,
re-run with another DSN and plainly again; the ZODB and its connection survive every run.

Slow the first time (buildout fetches Zope's eggs from PyPI into a cache kept under
``~/.cache/dbmother/buildout-eggs``; about four minutes), under a minute a run after that:
buildout runs in non-newest mode (``buildout:newest=false``, as ``-N`` does), so it takes
the cached eggs that satisfy the requirements instead of asking the index for newer
releases of each (about a minute per buildout run otherwise). What buildout does to the
instance, which is what this test is about, is the same either way. ``make test`` fills
the cache in the background before the tests start (``tools/buildout_eggs.py``): the
test waits for that warm-up, holding the cache's lock while it runs buildout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tools import buildout_eggs
from tools.buildout_eggs import run as _run

CHECK = """\
app = globals()["app"]
from mother.zope import get_database
print("connection:", "mother_db" in app.objectIds())
print("dsn:", get_database("default").settings.dsn)
print("test:", app.mother_db.test_connection()["ok"])
"""


def _url(conninfo: str) -> str:
    """The server as a URL with two query parameters (an ``&`` the ZCML must escape)."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = params.get("user", "postgres")
    return (f"postgresql://{user}@{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}"
            f"/{params.get('dbname', 'postgres')}?sslmode=disable&application_name=buildout")


@pytest.mark.timeout(1500)
def test_buildout_never_destroys_the_instance(tmp_path: Path, pg_server: str) -> None:
    tree = tmp_path / "src"
    buildout_eggs.bootstrap(tree)
    with buildout_eggs.locked(timeout=1200):
        _build_and_rebuild(tree, tmp_path, pg_server)


def _build_and_rebuild(tree: Path, tmp_path: Path, pg_server: str) -> None:
    buildout = [*buildout_eggs.buildout(tree), "-q"]
    home = tree / "var" / "instance"
    zcml = home / "etc" / "package-includes" / "mother-configure.zcml"
    zconsole = [tree / "bin" / "zconsole", "run", home / "etc" / "zope.conf"]
    (tmp_path / "check.py").write_text(CHECK)

    _run(*buildout, cwd=tree)
    for script in ("py", "test", "mother", "runwsgi", "zconsole", "mkwsgiinstance"):
        assert (tree / "bin" / script).exists(), script
    assert "sqlite:///" in zcml.read_text()
    assert "added /mother_db" in _run(*zconsole, "zope/add_connection.py", cwd=tree)
    (home / "Extensions" / "site_method.py").write_text("def hello(self):\n    return 'hi'\n")
    data = (home / "var" / "Data.fs").stat().st_size

    dsn = _url(pg_server)
    _run(*buildout, f"instance:dsn={dsn}", cwd=tree)
    assert "&amp;application_name=buildout" in zcml.read_text()
    checked = _run(*zconsole, tmp_path / "check.py", cwd=tree)
    assert "connection: True" in checked and f"dsn: {dsn}\n" in checked
    assert "test: True" in checked  # the stored connection (SQLite) still answers
    assert (home / "Extensions" / "site_method.py").exists()
    assert (home / "var" / "Data.fs").stat().st_size >= data  # the same ZODB, not a new one

    output = _run(*buildout[:-1], cwd=tree)
    assert "kept the database" in output
    checked = _run(*zconsole, tmp_path / "check.py", cwd=tree)
    assert "connection: True" in checked and f"dsn: {dsn}\n" in checked

    (tmp_path / "products.py").write_text(
        "app = globals()['app']\n"
        "print(sorted(m['name'] for m in app.all_meta_types()))\n")
    products = _run(*zconsole, tmp_path / "products.py", cwd=tree)
    for meta_type in ("External Method", "Script (Python)", "Z SQL Method",
                      "Mother Database Connection"):
        assert f"'{meta_type}'" in products


def test_the_cache_lock_keeps_a_second_holder_waiting_and_a_second_warm_up_away(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(buildout_eggs, "CACHE", tmp_path)
    monkeypatch.setattr(buildout_eggs, "LOCK", tmp_path / "eggs.lock")
    monkeypatch.setattr(buildout_eggs, "LOG", tmp_path / "warm.log")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"lock = open({str(tmp_path / 'eggs.lock')!r}, 'a')\n"
         "fcntl.flock(lock, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(TimeoutError, match="warm.log"), buildout_eggs.locked(timeout=1):
            pass
        buildout_eggs.start()
        assert "no warm-up started" in capsys.readouterr().out
        assert not (tmp_path / "warm.log").exists()
    finally:
        holder.kill()
        holder.wait()
    with buildout_eggs.locked(timeout=10):  # free once its holder is gone
        pass
