"""mother.dialects.postgres facing the driver: psycopg.sql queries everywhere a query is,
and one result shape (dicts) whatever the connection's row factory (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.numeric import FloatLoader

from mother import ArgumentError, MotherSession, get_database
from mother.database import Database
from mother.executor import shared
from tests.support.classes import ClsStars
from tests.support.databases import add_stars

#: a query composed with psycopg.sql: an identifier quoted and a value bound
COMPOSED = sql.SQL("SELECT {col} FROM {table} WHERE star_name = {name} ORDER BY 1").format(
    col=sql.Identifier("star_name"), table=sql.Identifier("stars"), name=sql.Placeholder("n"))


@pytest.fixture
def starry(pgdb: Database) -> Database:
    add_stars("Sol", "it's")
    return pgdb


def _via_session(run: Callable[[Any], Any]) -> Any:
    with MotherSession() as session:
        return run(session)


def _via_record(run: Callable[[Any], Any]) -> Any:
    with MotherSession() as session:
        return run(ClsStars(session=session))


def _via_shared(run: Callable[[Any], Any]) -> Any:
    return run(shared(get_database()))


@pytest.mark.parametrize("via", [_via_session, _via_record, _via_shared],
                         ids=["session", "record", "shared"])
def test_composed_queries_are_accepted_by_every_raw_helper(starry: Database, via: Any) -> None:
    assert via(lambda x: x.mr_query(COMPOSED, {"n": "Sol"})) == [{"star_name": "Sol"}]
    assert via(lambda x: x.or_query(COMPOSED, {"n": "it's"})) == {"star_name": "it's"}
    assert via(lambda x: x.ov_query(COMPOSED, {"n": "Sol"})) == "Sol"
    # without parameters (a literal rendered with the connection's quoting)
    literal = sql.SQL("SELECT {v} AS v").format(v=sql.Literal("it's"))
    assert via(lambda x: x.mr_query(literal)) == [{"v": "it's"}]
    insert = sql.SQL("INSERT INTO {t} (star_id, star_name, star_age) VALUES (%s, %s, 0)").format(
        t=sql.Identifier("stars"))
    via(lambda x: x.mq_query(insert, [(10, "Vega"), (11, "Rigel")]))
    via(lambda x: x.oc_query(sql.SQL("UPDATE stars SET star_age = 1 WHERE star_id = %s"), (10,)))
    returning = sql.SQL("UPDATE stars SET star_age = star_age + 1 WHERE star_id = %s "
                        "RETURNING star_age")
    assert via(lambda x: x.mg_query(returning, [(10,), (11,)])) == [
        {"star_age": 2}, {"star_age": 1}]


def test_a_query_that_is_neither_text_nor_composed_is_refused(pgdb: Database) -> None:
    with MotherSession() as session, pytest.raises(ArgumentError, match="not builtins.bytes"):
        session.mr_query(b"SELECT 1")


@pytest.fixture
def own_conn(pgdb: Database) -> Iterator[psycopg.Connection]:
    """A caller's own connection: tuples as rows, and numeric loaded as float."""
    conn = psycopg.connect(pgdb.settings.dsn, row_factory=tuple_row)
    conn.adapters.register_loader("numeric", FloatLoader)
    yield conn
    conn.close()


@pytest.mark.parametrize("params", [None, {"x": 2}], ids=["without-params", "with-params"])
def test_rows_are_dicts_and_loaded_by_the_connection_adapters(
        own_conn: psycopg.Connection, params: Any) -> None:
    text = "SELECT 1.5::numeric AS n, 'a' AS s" + (" WHERE %(x)s::int = 2" if params else "")
    with MotherSession("mine", pg_conn=own_conn) as session:
        rows = session.mr_query(text, params)
        row = session.or_query(sql.SQL(text), params)
    assert rows == [{"n": 1.5, "s": "a"}] and row == {"n": 1.5, "s": "a"}
    assert isinstance(rows[0]["n"], float)  # the connection's loader, in both paths
    assert own_conn.row_factory is tuple_row  # the caller's setting is left alone


def test_a_callers_connection_keeps_prepared_statements_across_a_rollback(
        pgdb: Database) -> None:
    with psycopg.connect(pgdb.settings.dsn) as conn:  # psycopg's own preparation is on
        session = MotherSession("mine", pg_conn=conn)
        for turn in range(8):
            assert session.mr_query("SELECT 1 AS one") == [{"one": 1}]
            assert session.mr_query("SELECT %(x)s::int AS x", {"x": turn}) == [{"x": turn}]
        session.rollback()  # psycopg sends DEALLOCATE ALL here if it prepared anything
        assert session.mr_query("SELECT %(x)s::int AS x", {"x": 9}) == [{"x": 9}]
        session.endSession()


def test_next_keys_takes_distinct_keys_from_the_sequence_of_a_numbered_column_only(
        pgdb: Database) -> None:
    with MotherSession() as session:
        session.oc_query('CREATE TABLE "Odd%Keys" (n SERIAL PRIMARY KEY, label TEXT)')
        try:
            for column, wanted in (("n", 5), ("label", None)):
                text, params = pgdb.dialect.next_keys("Odd%Keys", column, 5)
                [row] = session.mr_query(text, params)
                keys = row["k"]
                assert (keys if wanted is None else len(set(keys))) == wanted
        finally:
            session.rollback()


def test_an_update_from_arrays_quotes_its_names_and_refuses_array_columns(
        pgdb: Database) -> None:
    dialect = pgdb.dialect
    text = dialect.update_from_arrays('a"b%', ["v%"], ["id"], ["text", "integer"])
    assert text is not None
    assert text.startswith('UPDATE "a""b%%" SET "v%%" = mo_v.a0 FROM ROWS FROM (')
    assert "pg_catalog.unnest(%(a0)s::text[]), pg_catalog.unnest(%(a1)s::integer[])" in text
    assert text.endswith('WITH ORDINALITY AS mo_v(a0, a1, mo_n) WHERE "a""b%%"."id" = mo_v.a1')
    assert dialect.update_from_arrays("t", ["tags"], ["id"], ["text[]", "integer"]) is None
