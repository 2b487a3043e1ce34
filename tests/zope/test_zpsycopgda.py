"""Side by side: the same Z SQL Methods on a ZPsycopgDA connection and on a Mother connection.

A Zope user switches by changing the Z SQL Methods' connection id, so every
test runs identical templates through both and compares what they give; where
they differ (quoting of carriage returns, types of NULL-only columns, what a
failure at commit leaves behind) the test says which way and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import transaction

from tests.support.zopeapp import views
from tests.support.zopeapp.checks import prepared, rollback_prepared, rows
from tests.support.zopeapp.zmi import add_script, add_zsql, connection_form, delete

ADAPTERS = {"zpsycopg": "zpg", "mother": "zmo"}
TEMPLATES = {
    "add": ("body", "INSERT INTO notes (body) VALUES (<dtml-sqlvar body type=\"string\">)"),
    "list": ("", "SELECT id, body FROM notes ORDER BY id"),
    "find": ("body:string:list",
             "SELECT id, body FROM notes WHERE <dtml-sqltest body type=\"string\" multiple> "
             "ORDER BY id"),
    "typed": ("", "SELECT 7 AS whole, 1.25::numeric AS price, 2.5::float8 AS ratio, "
                  "true AS flag, 'x'::text AS word, DATE '2026-12-01' AS day, "
                  "TIMESTAMP '2026-12-01 10:30' AS stamp"),
    "nulls": ("", "SELECT CAST(NULL AS integer) AS missing"),
    "empty": ("", "SELECT id, body FROM notes WHERE false"),
    "orphan": ("", "INSERT INTO guarded (ref, body) VALUES (-1, 'orphan')"),
    "read_counter": ("", "SELECT n FROM counters WHERE id = 1"),
    "bump_counter": ("", "UPDATE counters SET n = n + 1 WHERE id = 1"),
}
HALVES = """\
##parameters=prefix
getattr(context, prefix + '_add')(body='first half')
getattr(context, prefix + '2_orphan')()
return 'done'
"""


@pytest.fixture
def side_by_side(manager: Any, zope_tables: dict[str, Any]) -> Iterator[dict[str, str]]:
    """A ZPsycopgDA connection ``zpg`` and a Mother connection ``zmo`` to the same PostgreSQL
    database, each with the Z SQL Methods of :data:`TEMPLATES` (``zpsycopg_add``, ``mother_add``
    ...), all added through the ZMI forms."""
    response = manager.post("/manage_addProduct/ZPsycopgDA/manage_addZPsycopgConnection", {
        "id": "zpg", "title": "ZPsycopgDA", "connection_string": zope_tables["pg"],
        "check": "yes", "tilevel": "2", "encoding": "UTF-8"})  # zdatetime off: Python dates
    assert response.status_int == 302, response.text
    manager.post("/manage_addProduct/mother.zope/manage_addMotherConnection",
                 connection_form(zope_tables["pg"], "zmo"))
    ids = []
    for prefix, connection in ADAPTERS.items():
        for name, (arguments, template) in TEMPLATES.items():
            add_zsql(manager, f"{prefix}_{name}", connection, arguments, template)
            ids.append(f"{prefix}_{name}")
    yield ADAPTERS
    delete(manager, *ids, "zpg", "zmo")


@pytest.fixture
def app(zope_instance: dict[str, Any]) -> Iterator[Any]:
    import Zope2
    from Testing.makerequest import makerequest

    app = makerequest(Zope2.app())
    yield app
    transaction.abort()
    app._p_jar.close()


def _each(app: Any, name: str, **kw: Any) -> dict[str, Any]:
    app._p_jar.sync()
    results = {prefix: getattr(app, f"{prefix}_{name}")(**kw) for prefix in ADAPTERS}
    transaction.commit()
    return results


def _shape(result: Any) -> tuple[list[str], list[tuple[Any, ...]], list[str]]:
    return (result.names(), [tuple(row) for row in result],
            [column["type"] for column in result._searchable_result_columns()])


def _same(results: dict[str, Any]) -> bool:
    """Same column names and same rows (values and their Python types)."""
    mother, zpsycopg = (_shape(results[prefix]) for prefix in ("mother", "zpsycopg"))
    return mother[:2] == zpsycopg[:2] and [
        [type(value) for value in row] for row in mother[1]] == [
        [type(value) for value in row] for row in zpsycopg[1]]


def test_both_list_as_sql_connections(side_by_side: dict[str, str], app: Any) -> None:
    from Products.ZSQLMethods.SQL import SQLConnectionIDs

    app._p_jar.sync()
    listed = [id for _title, id in SQLConnectionIDs(app)]
    assert {"zpg", "zmo"} <= set(listed)


def test_same_rows_names_and_types(side_by_side: dict[str, str], app: Any) -> None:
    for body in ("one", "O'Brien", "back\\slash"):
        _each(app, "add", body=body)
    listed = _each(app, "list")
    assert _same(listed)
    assert len(listed["mother"]) == 6
    found = _each(app, "find", body=["O'Brien", "back\\slash"])
    assert _same(found)
    assert [row.body for row in found["mother"]] == ["O'Brien"] * 2 + ["back\\slash"] * 2
    typed = _each(app, "typed")
    assert _same(typed)
    assert _shape(typed["mother"])[2] == ["i", "n", "n", "n", "s", "d", "d"]
    # ZPsycopgDA calls integers numbers: its table of type codes maps int4 to 'n' last
    assert _shape(typed["zpsycopg"])[2] == ["n", "n", "n", "n", "s", "d", "d"]


def test_max_rows_is_applied_by_both(side_by_side: dict[str, str], app: Any) -> None:
    app._p_jar.sync()
    for n in range(4):
        app.mother_add(body=f"n{n}")
    transaction.commit()
    for prefix in ADAPTERS:
        getattr(app, f"{prefix}_list").manage_advanced(
            max_rows=3, max_cache=100, cache_time=0, class_name="", class_file="")
    transaction.commit()
    listed = _each(app, "list")
    assert len(listed["mother"]) == len(listed["zpsycopg"]) == 3


def test_difference_carriage_returns_are_kept_only_by_mother(
        side_by_side: dict[str, str], app: Any, zope_tables: dict[str, Any]) -> None:
    """Zope's ``sql_quote`` (which ZPsycopgDA uses) drops ``\\r``; Mother quotes without
    changing the value."""
    _each(app, "add", body="two\r\nlines")
    assert sorted(rows(zope_tables["pg"])) == ["two\nlines", "two\r\nlines"]


def test_difference_types_of_columns_without_values(side_by_side: dict[str, str],
                                                    app: Any) -> None:
    """ZPsycopgDA reads types from the driver's type codes; Mother from the values, the same
    way on every database, so a column holding only NULLs (or an empty result) is a string."""
    nulls = _each(app, "nulls")
    assert [tuple(r) for r in nulls["mother"]] == [tuple(r) for r in nulls["zpsycopg"]] == [
        (None,)]
    assert _shape(nulls["zpsycopg"])[2] == ["n"]
    assert _shape(nulls["mother"])[2] == ["s"]
    empty = _each(app, "empty")
    assert len(empty["mother"]) == len(empty["zpsycopg"]) == 0
    assert _shape(empty["mother"])[0] == _shape(empty["zpsycopg"])[0] == ["id", "body"]


@pytest.fixture
def halves(manager: Any, side_by_side: dict[str, str], zope_tables: dict[str, Any]
           ) -> Iterator[str]:
    """A second connection of each kind to the same database (its own connections: for
    ZPsycopgDA another DSN, since it shares one connection per DSN and thread), with a Z SQL
    Method that violates a deferred foreign key, and a script writing through both."""
    other = zope_tables["pg"] + " application_name=second"
    manager.post("/manage_addProduct/ZPsycopgDA/manage_addZPsycopgConnection", {
        "id": "zpg2", "title": "", "connection_string": other, "check": "yes",
        "tilevel": "2", "encoding": "UTF-8"})
    manager.post("/manage_addProduct/mother.zope/manage_addMotherConnection",
                 connection_form(other, "zmo2"))
    arguments, template = TEMPLATES["orphan"]
    add_zsql(manager, "zpsycopg2_orphan", "zpg2", arguments, template)
    add_zsql(manager, "mother2_orphan", "zmo2", arguments, template)
    add_script(manager, "halves", HALVES)
    yield "halves"
    rollback_prepared(zope_tables["pg"])  # whatever a failed test left, so no lock stays
    delete(manager, "halves", "zpsycopg2_orphan", "mother2_orphan", "zpg2", "zmo2")


def _order_branches(first: str, second: str) -> None:
    """Make ``first``'s branch sort before ``second``'s (branches sort by database name,
    which holds the connection's random uid)."""
    import Zope2

    app = Zope2.app()
    try:
        app[first]._uid, app[second]._uid = "0" * 32, "f" * 32
        transaction.commit()
    finally:
        app._p_jar.close()


@pytest.mark.parametrize("first", ["zmo", "zmo2"])  # either branch failing, first or last
def test_mother_a_failure_at_commit_across_two_connections_rolls_back_both(
        first: str, manager: Any, halves: str, zope_tables: dict[str, Any]) -> None:
    """A deferred constraint fails when the second connection prepares: Mother prepares
    every branch in the vote, so the first connection's work is rolled back too."""
    _order_branches(first, "zmo2" if first == "zmo" else "zmo")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        manager.get(f"/{halves}", {"prefix": "mother"})
    assert prepared(zope_tables["pg"]) == []
    assert rows(zope_tables["pg"]) == []


def test_difference_a_failure_at_commit_across_two_connections(
        manager: Any, halves: str, zope_tables: dict[str, Any]) -> None:
    """ZPsycopgDA commits each connection in ``tpc_finish``, one after the other: the first
    has committed when the second fails, and half of the request stays."""
    with pytest.raises(Exception, match="foreign key"):
        manager.get(f"/{halves}", {"prefix": "zpsycopg"})
    assert rows(zope_tables["pg"]) == ["first half"]
    assert rows(zope_tables["pg"], "guarded") == []


@pytest.mark.parametrize("prefix", sorted(ADAPTERS))
def test_both_retry_a_serialization_failure_with_fresh_data(
        prefix: str, manager: Any, side_by_side: dict[str, str],
        zope_tables: dict[str, Any]) -> None:
    response = manager.get("/@@mother-zsql-serial", {"prefix": prefix})
    assert views.ATTEMPTS["zsql_serial"] == 2
    assert response.text == "attempt 2 read 100"
    with psycopg.connect(zope_tables["pg"]) as conn:
        assert conn.execute("SELECT n FROM counters WHERE id = 1").fetchone()[0] == 101


def test_difference_scripts_read_the_dsn_only_of_zpsycopgda(
        manager: Any, side_by_side: dict[str, str], zope_tables: dict[str, Any]) -> None:
    """A Python Script can read ZPsycopgDA's connection string (passwords included);
    a Mother connection's settings are private to trusted code."""
    add_script(manager, "zpg_dsn", "return context.zpg.connection_string\n")
    add_script(manager, "zmo_dsn", "return context.zmo.dsn\n")
    try:
        assert manager.get("/zpg_dsn").text == zope_tables["pg"]
        manager.get("/zmo_dsn", status=401)
    finally:
        delete(manager, "zpg_dsn", "zmo_dsn")
