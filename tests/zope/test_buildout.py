"""The buildout's instance step (zope/instance.py, run by the [instance] part): it makes the
instance once with Zope's real ``mkwsgiinstance`` and never removes or resets it."""

from __future__ import annotations

import configparser
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support import ROOT

SCRIPT = ROOT / "zope" / "instance.py"
# beside the interpreter in a virtualenv; in the buildout's bin/ under its bin/test
MKWSGIINSTANCE = next(path for path in (Path(sys.executable).parent / "mkwsgiinstance",
                                        ROOT / "bin" / "mkwsgiinstance") if path.exists())
MOTHER_NS = "{http://namespaces.zope.org/mother}database"
NASTY_DSN = "postgresql://app@db.example/astro?sslmode=disable&application_name=a\"b<c>'d"


def _run(home: Path, dsn: str | None = None) -> str:
    args = [sys.executable, str(SCRIPT), "--home", str(home),
            "--mkwsgiinstance", str(MKWSGIINSTANCE), "--user", "admin:admin"]
    if dsn is not None:
        args += ["--dsn", dsn]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _dsn(home: Path) -> str:
    tree = ET.parse(home / "etc" / "package-includes" / "mother-configure.zcml")
    [directive] = tree.getroot().iter(MOTHER_NS)
    return directive.get("dsn")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "var" / "instance"
    _run(home)
    return home


def test_first_run_makes_an_instance_with_sqlite(home: Path) -> None:
    assert (home / "etc" / "zope.conf").exists()
    assert (home / "etc" / "zope.ini").exists()
    assert (home / "inituser").exists()
    assert (home / "Extensions").is_dir()
    assert _dsn(home) == f"sqlite:///{home / 'var' / 'mother.db'}"


def test_a_new_dsn_keeps_the_instance_and_is_xml_escaped(home: Path) -> None:
    (home / "var" / "Data.fs").write_bytes(b"the ZODB")
    (home / "Extensions" / "mine.py").write_text("def hello(self): return 'hi'\n")
    conf = (home / "etc" / "zope.conf").read_text()
    _run(home, NASTY_DSN)
    assert _dsn(home) == NASTY_DSN
    assert (home / "var" / "Data.fs").read_bytes() == b"the ZODB"
    assert (home / "Extensions" / "mine.py").exists()
    assert (home / "etc" / "zope.conf").read_text() == conf


def test_a_plain_rerun_keeps_the_dsn(home: Path) -> None:
    _run(home, NASTY_DSN)
    output = _run(home)
    assert "kept the database" in output
    assert _dsn(home) == NASTY_DSN


def test_the_instance_part_owns_no_location() -> None:
    """buildout deletes the paths a part's install returns, which for plone.recipe.command
    is its ``location``: the [instance] part must have none."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "buildout.cfg")
    assert "location" not in config["instance"]
    assert "zope/instance.py" in config["instance"]["command"]
    assert config["instance"]["update-command"] == "${:command}"
    for egg in ("Products.ExternalMethod", "Products.PythonScripts", "Products.ZSQLMethods"):
        assert egg in config["zope"]["eggs"].split()
