"""A real Zope instance for the tests: zope.conf + site.zcml written to a temporary
instance home, started with ``make_wsgi_app`` exactly as ``runwsgi`` does, then driven
through its WSGI application with WebTest.

Zope starts once per process, so the instance is session-scoped; each test gets
fresh tables. Its PostgreSQL database runs at REPEATABLE READ by default, so a
concurrent update is a real SQLSTATE 40001.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import transaction
import webtest

import mother
import mother.zope
from tests.support.pgserver import create_databases, drop_databases
from tests.support.zopeapp.instance import ADMIN, LITE_DDL, PG_DDL, SITE_ZCML, ZOPE_CONF
from tests.support.zopeapp.zmi import CONNECTION_ADD, connection_form, delete, dsn_of


@pytest.fixture(scope="session")
def zope_pg(pg_server: str) -> Iterator[str]:
    """A PostgreSQL database of its own for the Zope instance (REPEATABLE READ by default)."""
    name = f"mother_zope_{uuid.uuid4().hex[:10]}"
    [dsn] = create_databases(pg_server, [name])
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation "
                     "= 'repeatable read'")
    yield dsn
    mother.close_all()
    drop_databases(pg_server, [name])


@pytest.fixture(scope="session")
def zope_instance(zope_pg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Start Zope once: the WSGI app, the instance home and the databases' DSNs."""
    from Zope2.Startup.run import make_wsgi_app
    from ZPublisher.httpexceptions import HTTPExceptionHandler

    home = tmp_path_factory.mktemp("zope-instance")
    lite = home / "lite.db"
    (home / "etc").mkdir()
    (home / "var").mkdir()
    (home / "etc" / "zope.conf").write_text(ZOPE_CONF.format(home=home))
    (home / "etc" / "site.zcml").write_text(SITE_ZCML.format(pg=zope_pg, lite=lite))
    from tests.support.zopeapp import views

    views.SETTINGS["pg"] = zope_pg
    wsgi = HTTPExceptionHandler(make_wsgi_app({}, str(home / "etc" / "zope.conf")))

    import Zope2
    from persistent.mapping import PersistentMapping

    app = Zope2.app()
    try:
        app.acl_users._doAddUser(ADMIN[0], ADMIN[1], ["Manager"], [])
        app.mother_box = PersistentMapping()
        transaction.commit()
    finally:
        app._p_jar.close()
    return {"wsgi": wsgi, "home": Path(home), "pg": zope_pg, "lite": f"sqlite:///{lite}"}


@pytest.fixture
def zope_tables(zope_instance: dict[str, Any]) -> dict[str, Any]:
    """Fresh tables in both databases; attempt and failure records cleared."""
    from tests.support.zopeapp import views

    with psycopg.connect(zope_instance["pg"], autocommit=True) as conn:
        conn.execute(PG_DDL)
    lite = mother.zope.get_database("lite")
    conn = lite.dialect.connect()
    try:
        conn.executescript(LITE_DDL)
    finally:
        conn.close()
    for name in ("default", "lite"):
        mother.zope.get_database(name).refresh_schema()
    views.ATTEMPTS.clear()
    views.FAILURES.clear()
    return zope_instance


@pytest.fixture
def browser(zope_tables: dict[str, Any]) -> webtest.TestApp:
    """An anonymous WebTest client of the instance."""
    return webtest.TestApp(zope_tables["wsgi"])


@pytest.fixture
def manager(zope_tables: dict[str, Any]) -> webtest.TestApp:
    """A WebTest client logged in as a Manager."""
    client = webtest.TestApp(zope_tables["wsgi"])
    client.authorization = ("Basic", ADMIN)
    return client


@pytest.fixture
def zmi_db(kind: str, manager: webtest.TestApp, zope_tables: dict[str, Any]
           ) -> Iterator[str]:
    """A Mother Database Connection ``/zdb`` (PostgreSQL or SQLite), added through the ZMI."""
    response = manager.post(CONNECTION_ADD, connection_form(dsn_of(kind, zope_tables), "zdb"))
    assert response.status_int == 302, response.text
    yield "zdb"
    delete(manager, "zdb")
