"""Z SQL Methods on a Mother Database Connection, added and called as a Zope user does."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import transaction
from transaction.interfaces import TransientError

import mother.zope
from mother.zope.adapter import QuotingError, ResultError, string_literal
from tests.support.zopeapp import views
from tests.support.zopeapp.checks import rows
from tests.support.zopeapp.zmi import add_script, add_zsql, delete, dsn_of

NASTY = ["O'Brien", "back\\slash", "100% sure", "two\r\nlines", "'; DROP TABLE notes; --",
         "ünïcödé", "\\'", ""]


@pytest.fixture
def app(zope_instance: dict[str, Any]) -> Iterator[Any]:
    import Zope2
    from Testing.makerequest import makerequest

    app = makerequest(Zope2.app())
    yield app
    transaction.abort()
    app._p_jar.close()


@pytest.fixture
def methods(manager: Any, zmi_db: str) -> Iterator[list[str]]:
    """Z SQL Methods on ``/zdb``, added through the ZMI: add_note, notes, note_count,
    notes_in (sqltest)."""
    add_zsql(manager, "add_note", zmi_db, "body",
             "INSERT INTO notes (body) VALUES (<dtml-sqlvar body type=\"string\">)")
    add_zsql(manager, "notes", zmi_db, "", "SELECT id, body FROM notes ORDER BY id")
    add_zsql(manager, "note_count", zmi_db, "", "SELECT count(*) AS n FROM notes")
    add_zsql(manager, "notes_in", zmi_db, "body:string:list",
             "SELECT body FROM notes WHERE <dtml-sqltest body type=\"string\" multiple> "
             "ORDER BY id")
    ids = ["add_note", "notes", "note_count", "notes_in"]
    yield ids
    delete(manager, *ids)


def test_connection_is_listed_and_offered_by_the_zsql_add_form(manager: Any, zmi_db: str,
                                                               app: Any) -> None:
    from Products.ZSQLMethods.SQL import SQLConnectionIDs

    app._p_jar.sync()
    assert zmi_db in [id for _title, id in SQLConnectionIDs(app)]
    form = manager.get("/manage_addProduct/ZSQLMethods/add")  # the ZMI add list action
    options = [option[0] for option in form.forms[0]["connection_id"].options]
    assert zmi_db in options


def test_zsql_method_binds_to_the_connection(methods: list[str], app: Any, zmi_db: str) -> None:
    app._p_jar.sync()
    method = app.add_note
    assert method.connection_id == zmi_db
    assert method.connectionIsValid()
    assert len(app.notes()) == 0
    assert app[zmi_db].connected()


def test_zsql_method_inserts_and_selects_through_the_connection(
        methods: list[str], app: Any, kind: str, zope_tables: dict[str, Any]) -> None:
    app._p_jar.sync()
    app.add_note(body="first")
    app.add_note(body="second")
    result = app.notes()
    assert [(r.id, r.body) for r in result] == [(1, "first"), (2, "second")]
    assert result.names() == ["id", "body"]
    assert [c["type"] for c in result._searchable_result_columns()] == ["i", "s"]
    assert rows(dsn_of(kind, zope_tables)) == []  # not committed yet
    transaction.commit()
    assert rows(dsn_of(kind, zope_tables)) == ["first", "second"]


@pytest.mark.parametrize("value", NASTY)
def test_sqlvar_quotes_every_string_exactly(value: str, methods: list[str], app: Any, kind: str,
                                           zope_tables: dict[str, Any]) -> None:
    app._p_jar.sync()
    app.add_note(body=value)
    transaction.commit()
    assert rows(dsn_of(kind, zope_tables)) == [value]  # exactly, and no table was dropped


def test_sqltest_quotes_and_lists(methods: list[str], app: Any) -> None:
    app._p_jar.sync()
    for value in NASTY:
        app.add_note(body=value)
    wanted = ["O'Brien", "back\\slash", "\\'"]
    assert [r.body for r in app.notes_in(body=wanted)] == wanted
    assert [r.body for r in app.notes_in(body=["'; DROP TABLE notes; --"])] == [
        "'; DROP TABLE notes; --"]


def test_a_nul_character_is_refused_not_dropped(methods: list[str], app: Any) -> None:
    app._p_jar.sync()
    with pytest.raises(QuotingError, match="NUL"):
        app.add_note(body="a\0b")


def test_a_database_reading_backslash_escapes_is_refused() -> None:
    with pytest.raises(QuotingError, match="standard_conforming_strings"):
        string_literal("x", plain_backslashes=False)


def test_sqlvar_on_a_server_with_backslash_escapes_is_refused(
        manager: Any, zope_tables: dict[str, Any], app: Any) -> None:
    """A real server setting: standard_conforming_strings = off for the connection's role."""
    dsn = zope_tables["pg"] + " options='-c standard_conforming_strings=off'"
    manager.post("/manage_addProduct/mother.zope/manage_addMotherConnection", {
        "id": "escaping", "dsn": dsn, "pool_min": "0", "pool_max": "2", "pool_timeout": "5",
        "pool_type": "limited", "twophase": "auto"})
    add_zsql(manager, "add_escaped", "escaping", "body",
             "INSERT INTO notes (body) VALUES (<dtml-sqlvar body type=\"string\">)")
    try:
        app._p_jar.sync()
        with pytest.raises(QuotingError, match="standard_conforming_strings"):
            app.add_escaped(body="a\\'b")
    finally:
        transaction.abort()
        delete(manager, "add_escaped", "escaping")
    assert rows(zope_tables["pg"]) == []


def test_max_rows_limits_the_result(methods: list[str], app: Any) -> None:
    app._p_jar.sync()
    for n in range(5):
        app.add_note(body=f"n{n}")
    app.notes.manage_advanced(max_rows=2, max_cache=100, cache_time=0, class_name="",
                              class_file="")
    assert [r.body for r in app.notes()] == ["n0", "n1"]
    app.notes.manage_advanced(max_rows=0, max_cache=100, cache_time=0, class_name="",
                              class_file="")
    assert len(app.notes()) == 5


def test_result_columns_have_names_and_types(manager: Any, zmi_db: str, app: Any) -> None:
    add_zsql(manager, "typed", zmi_db, "",
             "SELECT 7 AS whole, CAST(1.5 AS REAL) AS ratio, 'x' AS word, NULL AS missing")
    try:
        app._p_jar.sync()
        result = app.typed()
        columns = {c["name"]: c["type"] for c in result._searchable_result_columns()}
        assert columns == {"whole": "i", "ratio": "n", "word": "s", "missing": "s"}
        row = result[0]
        assert (row.whole, row.ratio, row.word, row.missing) == (7, 1.5, "x", None)
        assert (row.WHOLE, row.WORD) == (7, "x")  # Zope's upper case aliases
        assert result.dictionaries() == [{"whole": 7, "ratio": 1.5, "word": "x", "missing": None}]
    finally:
        delete(manager, "typed")


def test_postgresql_dates_and_numerics_have_zope_types(manager: Any, zope_tables: dict[str, Any],
                                                       app: Any) -> None:
    manager.post("/manage_addProduct/mother.zope/manage_addMotherConnection", {
        "id": "pgdb", "dsn": zope_tables["pg"], "pool_min": "0", "pool_max": "2",
        "pool_timeout": "5", "pool_type": "limited", "twophase": "auto"})
    add_zsql(manager, "dated", "pgdb", "",
             "SELECT DATE '2026-12-01' AS day, TIMESTAMP '2026-12-01 10:00' AS stamp, "
             "1.25::numeric AS price, true AS flag")
    try:
        app._p_jar.sync()
        result = app.dated()
        columns = {c["name"]: c["type"] for c in result._searchable_result_columns()}
        assert columns == {"day": "d", "stamp": "d", "price": "n", "flag": "n"}
        row = result[0]
        assert row.day == datetime.date(2026, 12, 1)
        assert row.price == decimal.Decimal("1.25")
    finally:
        delete(manager, "dated", "pgdb")


def test_two_columns_with_one_name_are_refused(manager: Any, zmi_db: str, app: Any) -> None:
    add_zsql(manager, "twice", zmi_db, "", "SELECT 1 AS a, 2 AS a")
    try:
        app._p_jar.sync()
        with pytest.raises(ResultError, match="'a'"):
            app.twice()
    finally:
        delete(manager, "twice")


def test_brains_give_result_rows_their_class(manager: Any, methods: list[str], app: Any,
                                            zope_instance: dict[str, Any]) -> None:
    extensions = zope_instance["home"] / "Extensions"
    extensions.mkdir(exist_ok=True)
    (extensions / "mother_brains.py").write_text(
        "class Note:\n"
        "    def shout(self):\n"
        "        return self.body.upper()\n")
    app._p_jar.sync()
    app.add_note(body="brainy")
    app.notes.manage_advanced(max_rows=1000, max_cache=100, cache_time=0, class_name="Note",
                              class_file="mother_brains")
    [row] = app.notes()
    assert row.shout() == "BRAINY"


def test_cached_results_are_reused_until_they_expire(methods: list[str], app: Any, kind: str,
                                                     zope_tables: dict[str, Any]) -> None:
    app._p_jar.sync()
    app.note_count.manage_advanced(max_rows=1000, max_cache=10, cache_time=3600,
                                   class_name="", class_file="")
    assert app.note_count()[0].n == 0
    app.add_note(body="behind the cache's back")
    assert app.note_count()[0].n == 0  # the cached result, as Z SQL Methods promise
    app.note_count.manage_advanced(max_rows=1000, max_cache=10, cache_time=0,
                                   class_name="", class_file="")
    assert app.note_count()[0].n == 1


def test_zsql_runs_on_the_session_get_session_returns(methods: list[str], app: Any) -> None:
    app._p_jar.sync()
    connection = app.zdb
    app.add_note(body="shared")
    session = mother.zope.get_session(connection.database_name)
    assert session is connection.session()
    assert [r["body"] for r in session.mr_query("SELECT body FROM notes")] == ["shared"]
    session.oc_query("DELETE FROM notes")
    assert len(app.notes()) == 0


SCRIPT = """\
##parameters=body, fail=''
context.add_note(body=body)
context.tally.manage_changeProperties(hits=context.tally.hits + 1)
count = context.note_count()[0].n
if fail:
    raise ValueError('the script failed after writing')
return 'notes: %d' % count
"""


@pytest.fixture
def script(manager: Any, methods: list[str]) -> Iterator[str]:
    """A Script (Python) that writes through a Z SQL Method and changes a ZODB object."""
    manager.post("/manage_addFolder", {"id": "tally"})
    manager.post("/tally/manage_addProperty", {"id": "hits", "value": "0", "type": "int"})
    add_script(manager, "write_both", SCRIPT)
    yield "write_both"
    delete(manager, "write_both", "tally")


def _hits() -> int:
    import Zope2

    app = Zope2.app()
    try:
        return app.tally.hits
    finally:
        app._p_jar.close()


def test_script_commits_zsql_and_zodb_together(manager: Any, script: str, kind: str,
                                               zope_tables: dict[str, Any]) -> None:
    before = _hits()
    response = manager.get(f"/{script}", {"body": "from a script"})
    assert response.text == "notes: 1"
    assert rows(dsn_of(kind, zope_tables)) == ["from a script"]
    assert _hits() == before + 1


def test_failing_script_aborts_zsql_and_zodb_together(manager: Any, script: str, kind: str,
                                                      zope_tables: dict[str, Any]) -> None:
    before = _hits()
    with pytest.raises(ValueError, match="failed after writing"):
        manager.get(f"/{script}", {"body": "lost", "fail": "1"})
    assert rows(dsn_of(kind, zope_tables)) == []
    assert _hits() == before


def test_view_failing_after_zsql_and_get_session_aborts_both(
        manager: Any, methods: list[str], kind: str, zope_tables: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="failed after writing"):
        manager.get("/@@mother-zsql-mixed", {"path": "zdb", "fail": "1"})
    assert rows(dsn_of(kind, zope_tables)) == []
    response = manager.get("/@@mother-zsql-mixed", {"path": "zdb"})
    assert response.text == "zsql, python"
    assert rows(dsn_of(kind, zope_tables)) == ["zsql", "python"]


@pytest.mark.parametrize("kind", ["postgresql"])
def test_serialization_failure_in_a_zsql_method_is_retried_with_fresh_data(
        kind: str, manager: Any, zmi_db: str, zope_tables: dict[str, Any]) -> None:
    add_zsql(manager, "read_counter", zmi_db, "", "SELECT n FROM counters WHERE id = 1")
    add_zsql(manager, "bump_counter", zmi_db, "",
             "UPDATE counters SET n = n + 1 WHERE id = 1")
    try:
        response = manager.get("/@@mother-zsql-serial")
    finally:
        delete(manager, "read_counter", "bump_counter")
    assert views.ATTEMPTS["zsql_serial"] == 2
    assert response.text == "attempt 2 read 100"  # the retry saw the other commit
    with psycopg.connect(zope_tables["pg"]) as conn:
        assert conn.execute("SELECT n FROM counters WHERE id = 1").fetchone()[0] == 101
    [failure] = views.FAILURES
    assert isinstance(failure["error"], TransientError)
    assert isinstance(failure["cause"], psycopg.errors.SerializationFailure)
    assert failure["retry"] is True
