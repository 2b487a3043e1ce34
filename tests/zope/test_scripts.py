"""Python Scripts and Page Templates (restricted code) using a Mother Database Connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import transaction
import webtest

from tests.support.zopeapp.checks import insert, rows
from tests.support.zopeapp.zmi import add_script, delete, dsn_of

CLERK = ("clerk", "clerk-secret")

COUNT = "return str(context.zdb.script_session().ov_query('SELECT count(*) AS n FROM notes'))\n"

RECORDS = """\
##parameters=body
db = context.zdb.script_session()
stored = db.insert('notes', {'body': body})
again = db.load('notes', {'id': stored['id']})
db.update('notes', {'id': stored['id'], 'body': again['body'] + '!'})
listed = db.box('notes', {'body': body + '!'}, ['id', 'body'], ['-id'])
return '%s %s %d' % (again['body'], listed[0]['body'], len(listed))
"""

# each of these must be refused: the way from a script to the driver, the pool or the settings
REACHES = {
    "trusted_session": "return context.zdb.session()",
    "database": "return context.zdb.database()",
    "settings": "return context.zdb.dsn",
    "database_name": "return context.zdb.database_name",
    "adapter": "return context.zdb().query('SELECT 1')",
    "wrapped_session": "return getattr(context.zdb.script_session(), '_' + 'session')",
}
# the script session acquires nothing from the connection: names it lacks do not exist
MISSING = {
    "acquired_database": "return context.zdb.script_session().database",
    "acquired_settings": "return context.zdb.script_session().dsn",
    "driver_connection": "return context.zdb.script_session().connection()",
}


@pytest.fixture
def clerk(zope_tables: dict[str, Any]) -> Iterator[webtest.TestApp]:
    """A user with the role Clerk, which has no "Use Database Methods" unless granted."""
    import Zope2

    app = Zope2.app()
    try:
        app._addRole("Clerk")
        app.acl_users._doAddUser(CLERK[0], CLERK[1], ["Clerk"], [])
        transaction.commit()
    finally:
        app._p_jar.close()
    client = webtest.TestApp(zope_tables["wsgi"])
    client.authorization = ("Basic", CLERK)
    yield client
    app = Zope2.app()
    try:
        app.acl_users._doDelUsers([CLERK[0]])
        app.manage_permission("Use Database Methods", ["Manager"], acquire=0)
        app._delRoles(["Clerk"])
        transaction.commit()
    finally:
        app._p_jar.close()


@pytest.fixture
def count_script(manager: Any, zmi_db: str) -> Iterator[str]:
    add_script(manager, "count_notes", COUNT)
    yield "count_notes"
    delete(manager, "count_notes")


def test_manager_script_queries_through_the_connection(manager: Any, count_script: str,
                                                       kind: str, zope_tables: dict[str, Any]
                                                       ) -> None:
    assert manager.get(f"/{count_script}").text == "0"
    insert(dsn_of(kind, zope_tables), "one")
    assert manager.get(f"/{count_script}").text == "1"


def test_anonymous_is_refused(browser: Any, count_script: str) -> None:
    assert browser.get(f"/{count_script}", status=401).status_int == 401


def test_a_role_without_use_database_methods_is_refused_until_granted(
        clerk: Any, manager: Any, count_script: str) -> None:
    clerk.get(f"/{count_script}", status=401)
    manager.post("/manage_permission", {"permission_to_manage": "Use Database Methods",
                                        "roles:list": ["Manager", "Clerk"]})
    assert clerk.get(f"/{count_script}").text == "0"


def test_a_grant_on_another_folder_does_not_open_the_connection(
        clerk: Any, manager: Any, count_script: str) -> None:
    manager.post("/manage_addFolder", {"id": "elsewhere"})
    try:
        manager.post("/elsewhere/manage_permission", {
            "permission_to_manage": "Use Database Methods", "roles:list": ["Manager", "Clerk"]})
        clerk.get(f"/{count_script}", status=401)
    finally:
        delete(manager, "elsewhere")


def test_script_uses_records_and_record_sets(manager: Any, zmi_db: str, kind: str,
                                             zope_tables: dict[str, Any]) -> None:
    add_script(manager, "records", RECORDS)
    try:
        assert manager.get("/records", {"body": "hi"}).text == "hi hi! 1"
    finally:
        delete(manager, "records")
    assert rows(dsn_of(kind, zope_tables)) == ["hi!"]


def test_script_filters_must_be_mappings(manager: Any, zmi_db: str) -> None:
    from mother.zope.restricted import ScriptArgumentError

    add_script(manager, "sneaky_filter",
               "return context.zdb.script_session().box('notes', '1=1; DELETE FROM notes')")
    try:
        with pytest.raises(ScriptArgumentError, match="filter must be a mapping"):
            manager.get("/sneaky_filter")
    finally:
        delete(manager, "sneaky_filter")


def test_script_can_catch_mother_errors(manager: Any, zmi_db: str) -> None:
    add_script(manager, "catching", (
        "from mother.errors import NotUniqueError\n"
        "try:\n"
        "    context.zdb.script_session().load('notes', {'id': -1})\n"
        "except NotUniqueError:\n"
        "    return 'no such note'\n"))
    try:
        assert manager.get("/catching").text == "no such note"
    finally:
        delete(manager, "catching")


@pytest.mark.parametrize("name", sorted(REACHES))
def test_script_cannot_reach_the_driver_pool_or_settings(name: str, manager: Any,
                                                         zmi_db: str) -> None:
    add_script(manager, name, REACHES[name] + "\n")
    try:
        manager.get(f"/{name}", status=401)
    finally:
        delete(manager, name)


@pytest.mark.parametrize("name", sorted(MISSING))
def test_script_session_has_nothing_but_its_methods(name: str, manager: Any, zmi_db: str) -> None:
    add_script(manager, name, MISSING[name] + "\n")
    try:
        with pytest.raises(AttributeError):
            manager.get(f"/{name}")
    finally:
        delete(manager, name)


def test_page_template_uses_the_session_and_anonymous_is_refused(
        manager: Any, browser: Any, zmi_db: str) -> None:
    text = ('<p tal:content="python: context.zdb.script_session().ov_query('
            '\'SELECT count(*) + 1 AS n FROM notes\')">n</p>')
    manager.post("/manage_addProduct/PageTemplates/manage_addPageTemplate",
                 {"id": "counted", "text": text})
    try:
        assert manager.get("/counted").text.strip() == "<p>1</p>"
        browser.get("/counted", status=401)
    finally:
        delete(manager, "counted")
