"""The buildout end to end, as a Zope user runs it: build, add a connection with zconsole,
re-run with another DSN and plainly again; the ZODB and its connection survive every run.

Slow the first time (buildout fetches Zope's eggs from PyPI into a cache kept under
``~/.cache/dbmother/buildout-eggs``; a few minutes), under a minute a run after that:
buildout runs in non-newest mode (``buildout:newest=false``, as ``-N`` does), so it takes
the cached eggs that satisfy the requirements instead of asking the index for newer
releases of each (about a minute per buildout run otherwise). What buildout does to the
instance, which is what this test is about, is the same either way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support import ROOT

EGGS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dbmother" / "buildout-eggs"
CHECK = """\
app = globals()["app"]
from mother.zope import get_database
print("connection:", "mother_db" in app.objectIds())
print("dsn:", get_database("default").settings.dsn)
print("test:", app.mother_db.test_connection()["ok"])
"""


def _source(target: Path) -> None:
    """The project's files as a fresh clone has them (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others",
                             "--exclude-standard", "-z"], check=True, capture_output=True)
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)


def _url(conninfo: str) -> str:
    """The server as a URL with two query parameters (an ``&`` the ZCML must escape)."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = params.get("user", "postgres")
    return (f"postgresql://{user}@{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}"
            f"/{params.get('dbname', 'postgres')}?sslmode=disable&application_name=buildout")


def _run(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.mark.timeout(1500)
def test_buildout_never_destroys_the_instance(tmp_path: Path, pg_server: str) -> None:
    tree = tmp_path / "src"
    _source(tree)
    EGGS.mkdir(parents=True, exist_ok=True)
    _run(sys.executable, "-m", "venv", "bo", cwd=tree)
    _run(tree / "bo" / "bin" / "pip", "install", "-q", "zc.buildout", cwd=tree)
    buildout = [tree / "bo" / "bin" / "buildout", f"buildout:eggs-directory={EGGS}",
                "buildout:newest=false", "-q"]
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
