"""The product in a real Zope: installation, ZMI forms and tabs, permissions, restart."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import transaction
from Acquisition import aq_base
from mother_zope_testapp.checks import rows
from mother_zope_testapp.zmi import connection_form
from zope.component import getUtilitiesFor

import mother
from mother.zope.connection import ADD_PERMISSION, META_TYPE, MotherConnection
from mother.zope.interfaces import IMotherDatabase
from mother.zope.meta import register_database

ADD_URL = "/manage_addProduct/mother.zope/manage_addMotherConnection"


@pytest.fixture
def app(zope_instance: dict[str, Any]) -> Iterator[Any]:
    import Zope2

    app = Zope2.app()
    yield app
    transaction.abort()
    app._p_jar.close()


def _add(manager: Any, dsn: str, id: str = "mydb", status: Any = None, **extra: Any) -> Any:
    return manager.post(ADD_URL, connection_form(dsn, id, **extra), status=status)


def _form(page: Any, action: str) -> Any:
    [form] = [form for form in page.forms.values() if form.action == action]
    return form


@pytest.fixture
def added(manager: Any, zope_tables: dict[str, Any]) -> Iterator[str]:
    """A connection ``/mydb`` to the PostgreSQL database, added through the add form."""
    _add(manager, zope_tables["pg"])
    yield "mydb"
    manager.post("/manage_delObjects", {"ids:list": "mydb"})


def test_product_is_installed_with_its_meta_type_and_add_permission(app: Any) -> None:
    meta_types = {m["name"]: m for m in app.all_meta_types()}
    assert meta_types[META_TYPE]["permission"] == ADD_PERMISSION
    assert meta_types[META_TYPE]["instance"] is MotherConnection
    assert "mother.zope" in app.manage_addProduct.__dict__ or app.manage_addProduct["mother.zope"]
    permissions = [p[0] for p in app.ac_inherited_permissions(1)]
    assert ADD_PERMISSION in permissions
    assert "Use Database Methods" in permissions


def test_add_form_renders(manager: Any) -> None:
    page = manager.get("/manage_addProduct/mother.zope/manage_addMotherConnectionForm")
    assert "Add Mother Database Connection" in page.text
    form = page.forms[0]
    assert form.action == "manage_addMotherConnection"
    for field in ("id", "title", "dsn", "pool_min", "pool_max", "pool_timeout",
                  "pool_type", "twophase"):
        assert field in form.fields


def test_adding_through_the_form_stores_settings_and_never_a_connection(
        manager: Any, zope_tables: dict[str, Any], app: Any) -> None:
    response = _add(manager, zope_tables["pg"], id="stored")
    assert response.status_int == 302
    assert response.location.endswith("/stored/manage_main")
    app._p_jar.sync()
    connection = app.stored
    assert connection.meta_type == META_TYPE
    assert (connection.title, connection.dsn, connection.pool_max, connection.twophase) == (
        "My database", zope_tables["pg"], 3, "auto")
    state = aq_base(connection).__getstate__()
    assert not [key for key in state if key.startswith("_v_")]
    assert all(isinstance(value, (str, int, float, bool, type(None), list, tuple, dict))
               for value in state.values())
    manager.post("/manage_delObjects", {"ids:list": "stored"})


@pytest.mark.parametrize(("key", "extra"), [
    ("pool_max", {"pool_max": "0"}),
    ("pool_min", {"pool_min": "many"}),
    ("pool_timeout", {"pool_timeout": "soon"}),
    ("pool_type", {"pool_type": "huge"}),
    ("twophase", {"twophase": "maybe"}),
    ("dsn", {"dsn": "run"}),
    ("id", {"id": "bad<id>"}),
    ("id", {"id": "acl_users"}),
])
def test_add_form_shows_a_bad_setting_by_name_and_adds_nothing(
        key: str, extra: dict[str, str], manager: Any, app: Any) -> None:
    form = {**connection_form("sqlite:///x.db", "bad"), **extra}
    page = manager.post(ADD_URL, form, status=400)
    assert page.html.select_one(".mother-error-key").text == key
    assert "Not saved" in page.html.select_one(".mother-form-error").text
    refilled = _form(page, "manage_addMotherConnection")
    assert all(refilled[name].value == value for name, value in form.items()
               if name not in ("pool_type", "twophase") or name not in extra)
    app._p_jar.sync()
    assert form["id"] not in app.objectIds() or form["id"] == "acl_users"


def test_properties_form_shows_a_bad_setting_by_name_and_keeps_the_old_ones(
        manager: Any, added: str, app: Any, zope_tables: dict[str, Any]) -> None:
    form = connection_form("sqlite:///elsewhere.db", added, pool_max="0")
    del form["id"]
    page = manager.post(f"/{added}/manage_edit", form, status=400)
    assert page.html.select_one(".mother-error-key").text == "pool_max"
    assert _form(page, "manage_edit")["dsn"].value == "sqlite:///elsewhere.db"
    app._p_jar.sync()
    assert (app[added].dsn, app[added].pool_max) == (zope_tables["pg"], 3)


def test_management_tabs_render(manager: Any, added: str, zope_tables: dict[str, Any]) -> None:
    main = manager.get(f"/{added}/manage_main")
    assert zope_tables["pg"] in main.text
    assert all(tab in main.text for tab in ("Properties", "Test", "Status"))
    test = manager.get(f"/{added}/manage_testForm")
    assert "Test the connection" in test.text and "Server version" not in test.text
    test = manager.post(f"/{added}/manage_testForm", {"run": "1"})
    assert "PostgreSQL 15" in test.html.select_one(".mother-version").text
    assert test.html.select_one(".mother-twophase").text == "enabled"
    status = manager.get(f"/{added}/manage_status")
    assert "limited pool:" in status.html.select_one(".mother-status").text


def test_test_tab_reports_a_failed_connection(manager: Any, added: str, tmp_path: Any) -> None:
    manager.post(f"/{added}/manage_edit", {
        "title": "gone", "dsn": "host=127.0.0.1 port=1 dbname=nothing connect_timeout=2",
        "pool_min": "0", "pool_max": "2", "pool_timeout": "2", "pool_type": "limited",
        "twophase": "off"})
    page = manager.post(f"/{added}/manage_testForm", {"run": "1"})
    assert "OperationalError" in page.html.select_one(".mother-connect-error").text


def test_editing_properties_recreates_the_pool(manager: Any, added: str, app: Any,
                                               zope_tables: dict[str, Any]) -> None:
    manager.get("/@@mother-via-connection", {"path": added, "body": "first"})
    app._p_jar.sync()
    name = app[added].database_name
    first = mother.get_database(name)
    assert first.settings.pool_max == 3
    page = manager.post(f"/{added}/manage_edit", {
        "title": "t", "dsn": zope_tables["pg"], "pool_min": "1", "pool_max": "4",
        "pool_timeout": "5", "pool_type": "elastic", "twophase": "on"})
    assert "Saved changes." in page.text
    manager.get("/@@mother-via-connection", {"path": added, "body": "second"})
    second = mother.get_database(name)
    assert second is not first
    assert (second.settings.pool_max, second.settings.pool_type, second.settings.twophase) == (
        4, "elastic", True)
    assert rows(zope_tables["pg"]) == ["first", "second"]


def test_pool_is_recreated_after_a_restart(manager: Any, added: str, app: Any,
                                           zope_tables: dict[str, Any]) -> None:
    manager.get("/@@mother-via-connection", {"path": added, "body": "before"})
    app._p_jar.sync()
    name = app[added].database_name
    before = mother.get_database(name)
    zcml = dict(getUtilitiesFor(IMotherDatabase))
    mother.close_all()  # a restarted process: no database, no pool in memory
    try:
        with pytest.raises(mother.ConfigError):
            mother.get_database(name)
        manager.get("/@@mother-via-connection", {"path": added, "body": "after"})
        assert mother.get_database(name) is not before
        assert rows(zope_tables["pg"]) == ["before", "after"]
    finally:  # what site.zcml does at startup
        for zcml_name, database in zcml.items():
            register_database(zcml_name, dataclasses.asdict(database.settings))


def test_session_of_a_connection_is_the_transaction_session(app: Any, added: str) -> None:
    app._p_jar.sync()
    connection = app[added]
    transaction.begin()
    session = connection.session()
    assert connection.session() is session
    assert session.manager is not None
    transaction.abort()
    assert session.closed


def test_anonymous_cannot_add_a_connection(browser: Any, app: Any,
                                           zope_tables: dict[str, Any]) -> None:
    form = browser.get("/manage_addProduct/mother.zope/manage_addMotherConnectionForm",
                       status=401)
    assert form.status_int == 401
    response = browser.post(ADD_URL, {"id": "sneaky", "dsn": zope_tables["pg"]}, status=401)
    assert response.status_int == 401
    app._p_jar.sync()
    assert "sneaky" not in app.objectIds()


def test_anonymous_cannot_use_a_connection(browser: Any, manager: Any, added: str,
                                           zope_tables: dict[str, Any]) -> None:
    response = browser.get("/@@mother-via-connection", {"path": added, "body": "anon"},
                           status=401)
    assert response.status_int == 401
    for tab in ("manage_main", "manage_testForm", "manage_status"):
        browser.get(f"/{added}/{tab}", status=401)
    browser.post(f"/{added}/manage_edit", {"dsn": "sqlite:///evil.db"}, status=401)
    manager.get("/@@mother-via-connection", {"path": added, "body": "manager"})
    assert rows(zope_tables["pg"]) == ["manager"]
