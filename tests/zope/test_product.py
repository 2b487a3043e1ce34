"""The product in a real Zope: installation, ZMI forms and tabs, permissions, restart."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import transaction
from Acquisition import aq_base
from zope.component import getUtilitiesFor

import mother
from mother.zope.connection import ADD_PERMISSION, META_TYPE, MotherConnection
from mother.zope.interfaces import IMotherDatabase
from mother.zope.meta import register_database
from tests.support.zopeapp.checks import insert, rows
from tests.support.zopeapp.zmi import connection_form, dsn_of

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
    assert [field["name"] for field in page.html.select(".is-invalid")] == [key]
    assert "Not saved" in page.html.select_one(".mother-form-error").text
    refilled = _form(page, "manage_addMotherConnection")
    assert all(refilled[name].value == value for name, value in form.items()
               if name not in ("pool_type", "twophase") or name not in extra)
    app._p_jar.sync()
    assert form["id"] not in app.objectIds() or form["id"] == "acl_users"


@pytest.mark.parametrize(("key", "value"), [
    ("pool_type", "huge"), ("pool_timeout", "0"), ("pool_min", "-1"), ("pool_max", "0"),
    ("dsn", "mysql://x"),
])
def test_the_form_refuses_a_setting_as_init_mother_does(key: str, value: str,
                                                       manager: Any) -> None:
    """One settings reader: the form shows the reason ``init_mother`` gives for the value."""
    with pytest.raises(mother.ConfigError) as refused:
        mother.init_mother({"dsn": "sqlite:///x.db", "pool_min": 1, "pool_max": 3, key: value},
                           name="refused")
    page = manager.post(ADD_URL, {**connection_form("sqlite:///x.db", "refused"), key: value},
                        status=400)
    assert page.html.select_one(".mother-error-key").text == key
    assert str(refused.value) in page.html.select_one(".mother-form-error").text


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


# -- the Test tab: statements in the request's transaction ----------------------------------
def _run(manager: Any, path: str, sql: str, commit: bool = False) -> Any:
    form = {"sql": sql, "submit": "Run"}
    if commit:
        form["commit"] = "1"
    return manager.post(f"/{path}/manage_testForm", form)


def test_test_tab_shows_columns_rows_and_row_count(manager: Any, zmi_db: str, kind: str,
                                                   zope_tables: dict[str, Any]) -> None:
    insert(dsn_of(kind, zope_tables), "shown")
    insert(dsn_of(kind, zope_tables), "also shown")
    page = _run(manager, zmi_db, "SELECT id, body FROM notes ORDER BY id")
    assert [th.text for th in page.html.select(".mother-rows th")] == ["id", "body"]
    assert [[td.text for td in tr.select("td")] for tr in page.html.select(".mother-rows tbody tr")
            ] == [["1", "shown"], ["2", "also shown"]]
    assert page.html.select_one(".mother-rowcount").text == "2 rows"


def test_test_tab_rolls_back_unless_asked_to_commit(manager: Any, zmi_db: str, kind: str,
                                                    zope_tables: dict[str, Any]) -> None:
    page = _run(manager, zmi_db, "INSERT INTO notes (body) VALUES ('tried')")
    assert page.html.select_one(".mother-rowcount").text == "1 row affected"
    assert page.html.select_one(".mother-outcome").text == "Rolled back."
    assert rows(dsn_of(kind, zope_tables)) == []
    page = _run(manager, zmi_db, "INSERT INTO notes (body) VALUES ('kept')", commit=True)
    assert page.html.select_one(".mother-outcome").text == "Committed."
    assert rows(dsn_of(kind, zope_tables)) == ["kept"]


def test_test_tab_shows_a_failing_statement_and_status_lists_it(
        manager: Any, zmi_db: str, kind: str, zope_tables: dict[str, Any]) -> None:
    page = _run(manager, zmi_db, "SELECT body FROM nowhere", commit=True)
    error = page.html.select_one(".mother-error").text
    assert "nowhere" in error
    assert rows(dsn_of(kind, zope_tables)) == []
    status = manager.get(f"/{zmi_db}/manage_status")
    [first, *_] = status.html.select(".mother-errors tr")[1:]
    cells = [td.text for td in first.select("td")]
    assert cells[1] == "statement" and "nowhere" in cells[3]


def test_test_tab_needs_test_database_connections(browser: Any, zmi_db: str, kind: str,
                                                  zope_tables: dict[str, Any]) -> None:
    browser.post(f"/{zmi_db}/manage_testForm",
                 {"sql": "INSERT INTO notes (body) VALUES ('anon')", "commit": "1"}, status=401)
    assert rows(dsn_of(kind, zope_tables)) == []


# -- the Status tab --------------------------------------------------------------------------
def test_status_tab_shows_the_pool_and_no_prepared_transactions(manager: Any, zmi_db: str
                                                                ) -> None:
    page = manager.get(f"/{zmi_db}/manage_status")
    assert "limited pool:" in page.html.select_one(".mother-status").text
    assert page.html.select_one(".mother-prepared-none").text == "None."
    assert page.html.select_one(".mother-errors-none") is not None


def test_status_tab_lists_in_doubt_prepared_transactions(manager: Any, added: str,
                                                         zope_tables: dict[str, Any]) -> None:
    import psycopg

    import mother
    from mother import tm

    probe = mother.init_mother(dsn=zope_tables["pg"], name="zope-status-probe",
                               recover_interval=None)
    decider = tm.commitlog.database_id(probe, mother.MotherSession(database=probe))
    ours = tm.make_gid("ab" * 16, decider, 1)  # a branch whose decider is this database
    prepared = []
    try:
        for gid in (ours, "not-dbmother"):
            with psycopg.connect(zope_tables["pg"]) as conn:
                conn.execute("INSERT INTO notes (body) VALUES ('in doubt')")
                conn.execute(psycopg.sql.SQL("PREPARE TRANSACTION {}").format(gid))
                prepared.append(gid)
        page = manager.get(f"/{added}/manage_status")
        listed = {tr.select("td")[0].text: tr.select("td")[2].text
                  for tr in page.html.select(".mother-prepared tr")[1:]}
        # undecided and just prepared: recovery would leave it for later (min_age)
        assert listed == {ours: "waiting", "not-dbmother": "foreign"}
    finally:
        with psycopg.connect(zope_tables["pg"], autocommit=True) as conn:
            for gid in prepared:
                conn.execute(psycopg.sql.SQL("ROLLBACK PREPARED {}").format(gid))
    assert rows(zope_tables["pg"]) == []


def test_zrdb_entry_points_lead_to_our_tabs(manager: Any, zmi_db: str, kind: str,
                                            zope_tables: dict[str, Any]) -> None:
    """``manage_test`` and ``manage_properties`` of Shared.DC.ZRDB show the Test and
    Properties tabs, so the statement is rolled back there too."""
    page = manager.post(f"/{zmi_db}/manage_test",
                        {"query": "INSERT INTO notes (body) VALUES ('via manage_test')"})
    assert page.html.select_one(".mother-outcome").text == "Rolled back."
    assert rows(dsn_of(kind, zope_tables)) == []
    page = manager.get(f"/{zmi_db}/manage_properties")
    assert _form(page, "manage_edit")["dsn"].value == dsn_of(kind, zope_tables)
