"""config.include("mother.pyramid"): settings, transaction manager hook, bootstrap and pshell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import transaction
import webtest
from pyramid.config import Configurator
from pyramid.paster import bootstrap

import mother
from mother import ConfigError
from mother.pyramid.settings import database_settings
from tests.support import ROOT
from tests.support.databases import count


def _include(settings: dict[str, Any]) -> Configurator:
    config = Configurator(settings=settings)
    config.include("mother.pyramid")
    config.commit()
    return config


def test_settings_configure_default_and_named_databases(dsn: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    try:
        _include({"mother.dsn": dsn, "mother.pool_max": "7", "mother.persistent_one": "off",
                  "mother.archive.dsn": other, "mother.archive.paranoid": "yes",
                  "mother.isolation_level": "Repeatable  Read"})
        default = mother.get_database()
        assert default.settings.pool_max == 7 and default.settings.persistent_one is False
        assert default.settings.isolation_level == "repeatable read"
        archive = mother.get_database("archive")
        assert archive.settings.isolation_level is None
        assert archive.settings.dsn == other and archive.settings.paranoid is True
    finally:
        mother.close_all()


@pytest.mark.parametrize(("key", "value"), [
    ("mother.pool_max", "many"),
    ("mother.persistent_one", "perhaps"),
    ("mother.pool_type", "infinite"),
    ("mother.pool_timeout", "-1"),
    ("mother.archive.pool_min", "x"),
    ("mother.colour", "blue"),
    ("mother.isolation_level", "chaos"),
    ("mother.archive.isolation_level", "read uncommitted"),
    ("mother.a.b.dsn", "sqlite://"),
    ("mother.dsn", "sqlite:relative.db"),
    ("mother.archive.dsn", "mysql://x"),
    ("mother.archive.dsn", "host='unterminated"),
    ("mother.pool_max", "0"),
    ("retry.attempts", "twice"),
    ("retry.attempts", "0"),
    ("mother.websession.timeout", "soon"),
    ("mother.websession.colour", "blue"),
])
def test_bad_setting_raises_config_error_naming_it(key: str, value: str) -> None:
    settings = {"mother.dsn": "sqlite://", "mother.archive.dsn": "sqlite://", key: value}
    if key.startswith("mother.websession."):
        settings["mother.websession.secret"] = "s"
    with pytest.raises(ConfigError) as info:
        _include(settings)
    assert info.value.key == key
    assert key in str(info.value)
    mother.close_all()


def test_a_refused_setting_keeps_its_value_and_reason_whole() -> None:
    """The Pyramid name comes from the error's attributes; a value with ``: `` in it once
    cut the reason short when the message was parsed."""
    with pytest.raises(ConfigError) as info:
        _include({"mother.dsn": "sqlite://", "mother.archive.dsn": "sqlite://",
                  "mother.archive.pool_type": "a: b"})
    error = info.value
    assert (error.key, error.value) == ("mother.archive.pool_type", "a: b")
    assert error.reason == "expected one of ('limited', 'elastic', 'growing')"
    assert str(error) == f"setting 'mother.archive.pool_type' = 'a: b': {error.reason}"
    mother.close_all()


def test_websession_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match="mother.websession.secret"):
        _include({"mother.dsn": "sqlite://", "mother.websession.timeout": "60"})
    mother.close_all()


def test_missing_dsn_is_a_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    mother.close_all()
    monkeypatch.delenv("MOTHER_DSN", raising=False)
    with pytest.raises(ConfigError, match="mother.dsn"):
        _include({})


def test_database_configured_in_code_is_kept(db: mother.Database) -> None:
    _include({})
    assert mother.get_database() is db


def test_settings_values_are_converted() -> None:
    found = database_settings({"mother.pool_min": "2", "mother.paranoid": "true",
                               "mother.twophase": "auto", "mother.dsn": "sqlite://",
                               "unrelated": "x"})
    assert found == {"default": {"pool_min": 2, "paranoid": True, "twophase": None,
                                 "dsn": "sqlite://"}}


def test_settings_take_the_pooler() -> None:
    found = database_settings({"mother.dsn": "sqlite://", "mother.pooler": "PgBouncer-Transaction"})
    assert found == {"default": {"dsn": "sqlite://", "pooler": "pgbouncer-transaction"}}
    with pytest.raises(ConfigError) as info:
        database_settings({"mother.dsn": "sqlite://", "mother.pooler": "odyssey"})
    assert (info.value.key, info.value.value) == ("mother.pooler", "odyssey")


def test_explicit_manager_unless_the_app_chose_one(db: mother.Database) -> None:
    config = _include({})
    assert config.registry.settings["tm.manager_hook"] is __import__("pyramid_tm").explicit_manager
    assert config.registry.settings["retry.attempts"] == 3

    def mine(request: Any) -> Any:
        return transaction.TransactionManager(explicit=True)

    config = _include({"tm.manager_hook": mine, "retry.attempts": "5"})
    assert config.registry.settings["tm.manager_hook"] is mine
    assert config.registry.settings["retry.attempts"] == 5


def test_session_per_database(db: mother.Database, tmp_path: Path) -> None:
    from pyramid.response import Response

    from mother.pyramid import get_session

    archive = mother.init_mother(name="archive", dsn=f"sqlite:///{tmp_path / 'archive.db'}")
    mother.tutorial.create(archive)

    def view(request: Any) -> Response:
        main, other = request.mother_session, get_session(request, "archive")
        assert main is request.mother_session and other is get_session(request, "archive")
        main.oc_query("INSERT INTO stars (star_name) VALUES ('both')")
        other.oc_query("INSERT INTO stars (star_name) VALUES ('both')")
        return Response(f"{main.database.name} {other.database.name} {other.name}")

    config = Configurator(settings={})
    config.include("mother.pyramid")
    config.add_route("v", "/v")
    config.add_view(view, route_name="v")
    text = webtest.TestApp(config.make_wsgi_app()).get("/v").text
    assert text.startswith("default archive GET /v #") and text.endswith("@archive")
    assert count(db, "stars", "WHERE star_name = 'both'") == 1
    assert count(archive, "stars", "WHERE star_name = 'both'") == 1


def _ini(tmp_path: Path, dsn: str) -> Path:
    ini = tmp_path / "app.ini"
    ini.write_text(f"""[app:main]
use = call:tests.support.pyramid_app:main
mother.dsn = {dsn}
mother.pool_max = 5
""")
    return ini


def test_bootstrap_script_commits_and_aborts(db: mother.Database, tmp_path: Path) -> None:
    env = bootstrap(str(_ini(tmp_path, db.settings.dsn)))
    try:
        request = env["request"]
        with request.tm:
            request.mother_session.oc_query("INSERT INTO stars (star_name) VALUES ('script')")
        with pytest.raises(RuntimeError), request.tm:
            request.mother_session.oc_query("INSERT INTO stars (star_name) VALUES ('undone')")
            raise RuntimeError("abort this block")
        with request.tm:  # a new transaction gets a new session
            assert request.mother_session.ov_query(
                "SELECT COUNT(*) AS n FROM stars WHERE star_name = 'script'") == 1
    finally:
        env["closer"]()
    database = mother.get_database()
    assert count(database, "stars", "WHERE star_name = 'script'") == 1
    assert count(database, "stars", "WHERE star_name = 'undone'") == 0


def test_pshell_session(db: mother.Database, tmp_path: Path) -> None:
    ini = _ini(tmp_path, db.settings.dsn)
    script = ("with request.tm:\n"
              "    request.mother_session.oc_query(\"INSERT INTO stars (star_name) "
              "VALUES ('from pshell')\")\n\n"
              "print('done', request.mother_session.__class__.__name__)\n")
    # Pyramid's pshell (the module its console script runs) from the checkout's root, where
    # ``python -m`` finds the application's package; the caller's path (the mother under test)
    env = {"PATH": str(Path(sys.executable).parent)}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    result = subprocess.run([sys.executable, "-m", "pyramid.scripts.pshell", "-p", "python",
                             str(ini)], input=script, text=True, capture_output=True, env=env,
                            timeout=120, cwd=ROOT)
    assert count(db, "stars", "WHERE star_name = 'from pshell'") == 1, result.stderr
    assert "NoActiveTransactionError" in result.stdout + result.stderr  # outside request.tm
