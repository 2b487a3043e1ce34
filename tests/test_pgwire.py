"""mother.dialects.pgwire: placeholders, pipelines, prepared statements, failures (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from mother import MotherSession
from mother.database import Database
from mother.dialects import pgwire

IDLE, INTRANS, INERROR = (TransactionStatus.IDLE, TransactionStatus.INTRANS,
                          TransactionStatus.INERROR)


@pytest.fixture
def conn(pgdb: Database) -> Iterator[psycopg.Connection]:
    """A connection to the test database made the way the dialect makes them."""
    connection = pgdb.dialect.connect()
    yield connection
    connection.close()


def prepared_names(conn: psycopg.Connection) -> list[str]:
    """dbmother's prepared statements on the connection, as the server lists them."""
    idle = conn.pgconn.transaction_status == IDLE
    rows = conn.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE '\\_mo\\_%' "
                        "ORDER BY name", prepare=False).fetchall()
    if idle:
        conn.rollback()
    return [row["name"] for row in rows]


def stored(pgdb: Database) -> list[str]:
    with psycopg.connect(pgdb.settings.dsn) as other:
        return [name for name, in other.execute("SELECT star_name FROM stars ORDER BY 1")]


# -- placeholders --------------------------------------------------------------------------
def test_named_placeholders_repeat_and_keep_literal_percent(conn: psycopg.Connection) -> None:
    tpl = pgwire.template("SELECT %(a)s + %(b)s + %(a)s, '100%%'", "utf-8")
    assert tpl.query == b"SELECT $1 + $2 + $1, '100%'"
    assert tpl.names == ("a", "b")
    [result] = pgwire.run(conn, [("SELECT %(a)s::int + %(b)s::int + %(a)s::int AS total, "
                                  "'100%%' AS pct", {"a": 2, "b": 5})])
    assert result.rows == [{"total": 9, "pct": "100%"}]


def test_positional_placeholders_and_formats(conn: psycopg.Connection) -> None:
    [result] = pgwire.run(conn, [("SELECT %s::text AS t, %b::bytea AS b, %t::int AS n",
                                  ("x", b"\x00\xff", 7))])
    assert result.rows == [{"t": "x", "b": b"\x00\xff", "n": 7}]


@pytest.mark.parametrize(("sql", "params", "message"), [
    ("SELECT %(a)s, %s", {"a": 1}, "cannot be mixed"),
    ("SELECT %d", (1,), "only '%s', '%b', '%t'"),
    ("SELECT 5 %", (), "only '%s', '%b', '%t'"),
    ("SELECT %(a)s", {"b": 1}, "query parameter missing: a"),
    ("SELECT %(a)s", (1,), "need a mapping"),
    ("SELECT %s, %s", (1,), "2 placeholders but 1 parameters"),
    ("SELECT %s", {"a": 1}, "need a sequence"),
])
def test_bad_placeholders_fail_before_anything_is_sent(
        conn: psycopg.Connection, sql: str, params: object, message: str) -> None:
    pgwire.begin(conn, None)
    with pytest.raises(psycopg.ProgrammingError, match=message):
        pgwire.run(conn, [(sql, params)])
    # nothing went out, not even the queued BEGIN: the connection is idle and usable
    assert conn.pgconn.transaction_status == IDLE
    assert pgwire.run(conn, [("SELECT %s::int AS one", (1,))])[0].rows == [{"one": 1}]


def test_statement_without_placeholders_takes_any_empty_parameters(
        conn: psycopg.Connection) -> None:
    for params in ({}, (), []):
        assert pgwire.run(conn, [("SELECT 1 AS one", params)])[0].fetchone() == {"one": 1}


# -- results ----------------------------------------------------------------------------------
def test_result_is_cursor_like(pgdb: Database, conn: psycopg.Connection) -> None:
    pgwire.begin(conn, None)
    insert, select, update = pgwire.run(conn, [
        ("INSERT INTO stars (star_name) VALUES (%(n)s), (%(m)s) RETURNING star_name",
         {"n": "a", "m": "b"}),
        ("SELECT star_name FROM stars ORDER BY star_name", {}),
        ("UPDATE stars SET star_age = 1 WHERE star_name = %s", ("zzz",)),
    ])
    assert insert.rowcount == 2 and insert.description == ("star_name",)
    assert select.fetchone() == {"star_name": "a"}
    assert select.fetchall() == [{"star_name": "b"}]
    assert select.fetchone() is None
    assert update.rowcount == 0 and update.description is None and update.fetchall() == []
    conn.rollback()


# -- BEGIN riding with the first statement -------------------------------------------------------
def test_begin_and_name_ride_with_the_first_statement(conn: psycopg.Connection) -> None:
    pgwire.begin(conn, "wire-test")
    assert conn.pgconn.transaction_status == IDLE  # queued, not sent
    [result] = pgwire.run(conn, [("SELECT current_setting('application_name') AS name, "
                                  "now() = statement_timestamp() AS fresh", ())])
    assert conn.pgconn.transaction_status == INTRANS
    assert result.rows[0]["name"] == "wire-test"
    # the second statement is in the same transaction: now() no longer moves
    [again] = pgwire.run(conn, [("SELECT now() = statement_timestamp() AS fresh", ())])
    assert again.rows == [{"fresh": False}]
    conn.rollback()


def test_commit_of_a_transaction_that_never_ran_sends_nothing(pgdb: Database,
                                                             conn: psycopg.Connection) -> None:
    pgdb.dialect.begin(conn, "never-ran")
    pgdb.dialect.commit(conn)
    assert conn.pgconn.transaction_status == IDLE
    # and the next statement does not inherit the discarded BEGIN: it runs in autocommit
    conn.autocommit = True
    pgwire.run(conn, [("INSERT INTO stars (star_name) VALUES (%s)", ("kept",))])
    assert stored(pgdb) == ["kept"]


# -- pipelines and failures -------------------------------------------------------------------
def test_failure_in_a_pipeline_stops_the_rest_and_commits_nothing(
        pgdb: Database, conn: psycopg.Connection) -> None:
    pgwire.begin(conn, None)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        pgwire.run(conn, [
            ("INSERT INTO stars (star_name) VALUES (%s)", ("first",)),
            ("INSERT INTO planets (star_id, planet_name) VALUES (%s, %s)", (999, "orphan")),
            ("INSERT INTO stars (star_name) VALUES (%s)", ("after",)),
        ], end=b"COMMIT")
    assert conn.pgconn.transaction_status == INERROR  # the COMMIT did not run
    conn.rollback()
    assert stored(pgdb) == []
    assert pgwire.run(conn, [("SELECT 1 AS one", ())])[0].rows == [{"one": 1}]


def test_lost_connection_during_a_pipeline(pgdb: Database, conn: psycopg.Connection) -> None:
    pid = conn.info.backend_pid
    with psycopg.connect(pgdb.settings.dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    pgwire.begin(conn, None)
    with pytest.raises(psycopg.OperationalError):
        pgwire.run(conn, [("INSERT INTO stars (star_name) VALUES (%s)", ("lost",)),
                          ("SELECT 1", ())], end=b"COMMIT")
    assert pgdb.dialect.is_broken(conn)
    assert stored(pgdb) == []


# -- prepared statements ---------------------------------------------------------------------------
def test_statement_is_prepared_after_the_threshold(conn: psycopg.Connection) -> None:
    conn.prepare_threshold = 2
    sql = "SELECT %(k)s::int * 2 AS twice"
    for run in range(1, 5):
        assert pgwire.run(conn, [(sql, {"k": run})])[0].rows == [{"twice": 2 * run}]
        assert len(prepared_names(conn)) == (1 if run > 2 else 0)


def test_prepare_threshold_none_never_prepares(conn: psycopg.Connection) -> None:
    conn.prepare_threshold = None
    for run in range(10):
        pgwire.run(conn, [("SELECT %s::int AS n", (run,))])
    assert prepared_names(conn) == []


def test_parameter_types_are_part_of_the_prepared_key(conn: psycopg.Connection) -> None:
    conn.prepare_threshold = 0
    # psycopg sends a small int as int2 and a large one as int8: two statements
    small = pgwire.run(conn, [("SELECT %s AS v", (7,))])[0].rows
    large = pgwire.run(conn, [("SELECT %s AS v", (2**40,))])[0].rows
    assert small == [{"v": 7}] and large == [{"v": 2**40}]
    assert len(prepared_names(conn)) == 2


def test_prepared_statements_are_capped_per_connection(
        conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgwire, "MAX_PREPARED", 3)
    conn.prepare_threshold = 0
    for number in range(6):
        [result] = pgwire.run(conn, [(f"SELECT %s::int + {number} AS n", (1,))])
        assert result.rows == [{"n": 1 + number}]
    assert len(prepared_names(conn)) == 3


def test_prepare_failing_in_a_pipeline_is_not_remembered(conn: psycopg.Connection) -> None:
    conn.prepare_threshold = 0
    pgwire.begin(conn, None)
    with pytest.raises(psycopg.errors.DivisionByZero):
        pgwire.run(conn, [("SELECT 1 / %s::int AS x", (0,)),
                          ("SELECT %s::int AS later", (1,))])
    conn.rollback()
    # the second statement's PREPARE was skipped by the server: it must be prepared again
    assert pgwire.run(conn, [("SELECT %s::int AS later", (1,))])[0].rows == [{"later": 1}]


def test_deallocate_all_through_a_session_forgets_prepared(pgdb: Database) -> None:
    session = MotherSession()
    conn = session.connection()
    conn.prepare_threshold = 0
    session.mr_query("SELECT %(k)s::int AS k", {"k": 1})
    session.oc_query("DEALLOCATE ALL")
    assert session.mr_query("SELECT %(k)s::int AS k", {"k": 2}) == [{"k": 2}]
    session.endSession()


def test_prepared_dropped_behind_our_back_fails_once_then_recovers(
        conn: psycopg.Connection) -> None:
    conn.prepare_threshold = 0
    sql = "SELECT %s::int AS n"
    pgwire.run(conn, [(sql, (1,))])
    conn.execute("DEALLOCATE ALL")  # not through dbmother: it cannot know
    conn.rollback()
    with pytest.raises(psycopg.errors.InvalidSqlStatementName):
        pgwire.run(conn, [(sql, (2,))])
    assert pgwire.run(conn, [(sql, (3,))])[0].rows == [{"n": 3}]


def test_rows_load_through_the_connection_adapters(pgdb: Database) -> None:
    with psycopg.connect(pgdb.settings.dsn, row_factory=dict_row) as conn:
        [result] = pgwire.run(conn, [("SELECT %s::numeric AS n, %s::date AS d, "
                                      "%s::jsonb AS j", ("1.5", "2026-11-20", '{"a": 1}'))])
    row = result.rows[0]
    assert str(row["n"]) == "1.5" and row["d"].isoformat() == "2026-11-20"
    assert row["j"] == {"a": 1}


@pytest.mark.parametrize("value", ["it's", "back\\slash", "é'\\'"])
def test_literal_round_trips_quotes_and_backslashes(conn: psycopg.Connection, value: str) -> None:
    conn.autocommit = True
    pgwire.run(conn, [], end=b"SET search_path = " + pgwire.literal(conn, value))
    assert pgwire.run(conn, [("SELECT current_setting('search_path') AS v", ())])[0].rows == [
        {"v": '"' + value + '"'}]


def test_prepared_statement_whose_result_type_changed_fails_once_then_recovers(
        pgdb: Database, conn: psycopg.Connection) -> None:
    conn.prepare_threshold = 0
    sql = "SELECT star_age FROM stars WHERE star_id = %s"
    pgwire.run(conn, [(sql, (1,))])
    with psycopg.connect(pgdb.settings.dsn, autocommit=True) as other:
        other.execute("ALTER TABLE stars ALTER COLUMN star_age TYPE bigint")
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        pgwire.run(conn, [(sql, (1,))])  # "cached plan must not change result type"
    conn.rollback()
    assert pgwire.run(conn, [(sql, (1,))])[0].rows == []
