"""mother.dialects.pgwire: placeholders, pipelines, prepared statements, failures (PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from mother import MotherSession, events
from mother.database import Database
from mother.dialects import pgwire
from mother.dialects.base import EndLost
from mother.errors import PreparedStatementLostError, RolledBackError
from tests.support import pooler

IDLE, INTRANS, INERROR = (TransactionStatus.IDLE, TransactionStatus.INTRANS,
                          TransactionStatus.INERROR)


@pytest.fixture
def conn(pgdb: Database) -> Iterator[psycopg.Connection]:
    """A connection to the test database made the way the dialect makes them."""
    connection = pgdb.dialect.connect()
    yield connection
    connection.close()


#: a name dbmother prepares a statement under: its connection's token, then a number
NAME = re.compile(r"_mo_([0-9a-f]{16})_(\d+)")


def numbered(names: list[str]) -> list[str]:
    """``names`` (of one connection's statements) without their connection's token."""
    return [f"_mo_{NAME.fullmatch(name)[2]}" for name in names]  # type: ignore[index]


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
    with pytest.raises(EndLost) as lost:
        pgwire.run(conn, [("INSERT INTO stars (star_name) VALUES (%s)", ("lost",)),
                          ("SELECT 1", ())], end=b"COMMIT", probe=True)
    # the server said it was going away before it answered the statements: no COMMIT ran
    assert lost.value.ran is False
    assert isinstance(lost.value.cause, psycopg.OperationalError)
    assert pgdb.dialect.is_broken(conn)
    assert stored(pgdb) == []


# -- prepared statements ---------------------------------------------------------------------------
def test_statement_is_prepared_after_the_threshold(conn: psycopg.Connection) -> None:
    pgwire.set_prepare_threshold(conn, 2)
    sql = "SELECT %(k)s::int * 2 AS twice"
    for run in range(1, 5):
        assert pgwire.run(conn, [(sql, {"k": run})])[0].rows == [{"twice": 2 * run}]
        assert len(prepared_names(conn)) == (1 if run > 2 else 0)


def test_prepare_threshold_none_never_prepares(conn: psycopg.Connection) -> None:
    pgwire.set_prepare_threshold(conn, None)
    for run in range(10):
        pgwire.run(conn, [("SELECT %s::int AS n", (run,))])
    assert prepared_names(conn) == []


def test_parameter_types_are_part_of_the_prepared_key(conn: psycopg.Connection) -> None:
    pgwire.set_prepare_threshold(conn, 0)
    # psycopg sends a small int as int2 and a large one as int8: two statements
    small = pgwire.run(conn, [("SELECT %s AS v", (7,))])[0].rows
    large = pgwire.run(conn, [("SELECT %s AS v", (2**40,))])[0].rows
    assert small == [{"v": 7}] and large == [{"v": 2**40}]
    assert len(prepared_names(conn)) == 2


def _five(conn: psycopg.Connection, rounds: int, check: Any) -> None:
    """Run five distinct statements ``rounds`` times each, checking every result and,
    after each statement, ``check()``."""
    for turn in range(rounds):
        for number in range(5):
            [result] = pgwire.run(conn, [(f"SELECT %s::int + {number} AS n", (turn,))])
            assert result.rows == [{"n": turn + number}]
            check()


def test_prepared_statements_follow_prepared_max_outside_transactions(
        conn: psycopg.Connection) -> None:
    conn.prepared_max = 2
    pgwire.set_prepare_threshold(conn, 0)
    seen: set[str] = set()

    def check() -> None:
        names = prepared_names(conn)
        assert len(names) <= 2
        seen.update(names)

    _five(conn, 4, check)
    assert len(prepared_names(conn)) == 2
    assert len(seen) > 5  # evicted statements were deallocated, others prepared again


def test_prepared_statements_follow_prepared_max_inside_a_transaction(
        conn: psycopg.Connection) -> None:
    conn.prepared_max = 2
    pgwire.set_prepare_threshold(conn, 0)
    pgwire.begin(conn, None)
    _five(conn, 3, lambda: assert_at_most(conn, 2))
    assert conn.pgconn.transaction_status == INTRANS  # never left the transaction
    conn.commit()
    before = set(prepared_names(conn))
    _five(conn, 2, lambda: assert_at_most(conn, 2))  # evicted ones go once idle
    assert set(prepared_names(conn)) != before


def assert_at_most(conn: psycopg.Connection, limit: int) -> None:
    assert len(prepared_names(conn)) <= limit


def test_prepared_max_none_has_no_limit_and_zero_prepares_nothing(
        conn: psycopg.Connection) -> None:
    pgwire.set_prepare_threshold(conn, 0)
    conn.prepared_max = 0
    _five(conn, 1, lambda: None)
    assert prepared_names(conn) == []
    conn.prepared_max = 1000 if psycopg.__version__ < "3.2" else None
    _five(conn, 1, lambda: None)
    assert len(prepared_names(conn)) == 5


def test_a_statement_run_many_times_in_one_round_trip_is_prepared_once(
        conn: psycopg.Connection) -> None:
    pgwire.set_prepare_threshold(conn, 0)
    results = pgwire.run(conn, [("SELECT %s::int AS n", (n,)) for n in range(20)])
    assert [result.rows for result in results] == [[{"n": n}] for n in range(20)]
    assert len(prepared_names(conn)) == 1


def test_evicted_statements_are_deallocated_within_a_round_trip(
        conn: psycopg.Connection) -> None:
    conn.prepared_max = 1
    pgwire.set_prepare_threshold(conn, 0)
    statements: list[Any] = []
    with events.listening(statements.append):
        pgwire.run(conn, [("SELECT %s::int AS a", (1,))])
        pgwire.run(conn, [("SELECT %s::int AS b", (2,))])
    assert [len(event.statements) for event in statements] == [1, 2]
    assert numbered([statements[1].statements[0].sql.removeprefix("DEALLOCATE ")]) == ["_mo_1"]
    assert numbered(prepared_names(conn)) == ["_mo_2"]


def test_prepare_failing_in_a_pipeline_is_not_remembered(conn: psycopg.Connection) -> None:
    pgwire.set_prepare_threshold(conn, 0)
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
    pgwire.set_prepare_threshold(conn, 0)
    session.mr_query("SELECT %(k)s::int AS k", {"k": 1})
    session.oc_query("DEALLOCATE ALL")
    assert session.mr_query("SELECT %(k)s::int AS k", {"k": 2}) == [{"k": 2}]
    session.endSession()


def test_prepared_dropped_behind_our_back_fails_once_then_recovers(
        conn: psycopg.Connection) -> None:
    pgwire.set_prepare_threshold(conn, 0)
    sql = "SELECT %s::int AS n"
    pgwire.run(conn, [(sql, (1,))])
    conn.execute("DEALLOCATE ALL")  # not through dbmother: it cannot know
    conn.rollback()
    with pytest.raises(PreparedStatementLostError, match="pooler = pgbouncer-transaction") as lost:
        pgwire.run(conn, [(sql, (2,))])
    assert isinstance(lost.value.__cause__, psycopg.errors.InvalidSqlStatementName)
    assert pgwire.run(conn, [(sql, (3,))])[0].rows == [{"n": 3}]


def test_a_missing_statement_not_prepared_by_dbmother_passes_through(
        conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidSqlStatementName):
        pgwire.run(conn, [("EXECUTE nobody_prepared_this(%s)", (1,))])


def test_statement_names_are_unique_to_their_connection(pgdb: Database) -> None:
    """Behind a pooler in transaction mode, two clients' statements may meet on one server
    connection: a name never stands for another client's statement."""
    tokens = set()
    for _ in range(2):
        with pgdb.dialect.connect() as conn:
            pgwire.set_prepare_threshold(conn, 0)
            pgwire.run(conn, [("SELECT %s::int AS n", (1,))])
            [name] = prepared_names(conn)
            tokens.add(NAME.fullmatch(name)[1])  # type: ignore[index]
    assert len(tokens) == 2


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
    pgwire.set_prepare_threshold(conn, 0)
    sql = "SELECT star_age FROM stars WHERE star_id = %s"
    pgwire.run(conn, [(sql, (1,))])
    with psycopg.connect(pgdb.settings.dsn, autocommit=True) as other:
        other.execute("ALTER TABLE stars ALTER COLUMN star_age TYPE bigint")
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        pgwire.run(conn, [(sql, (1,))])  # "cached plan must not change result type"
    conn.rollback()
    assert pgwire.run(conn, [(sql, (1,))])[0].rows == []


# -- closing commands: checked replies, lost replies ------------------------------------------
def test_commit_of_a_failed_transaction_raises_rolled_back(pgdb: Database,
                                                           conn: psycopg.Connection) -> None:
    pgwire.begin(conn, None)
    pgwire.run(conn, [("INSERT INTO stars (star_name) VALUES (%s)", ("lost",))])
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # caught by the application
        pgwire.run(conn, [("INSERT INTO planets (star_id, planet_name) VALUES (%s, %s)",
                           (999, "orphan"))])
    with pytest.raises(RolledBackError, match="cannot commit"):
        pgdb.dialect.commit(conn)
    conn.rollback()
    assert stored(pgdb) == []


def test_prepare_of_a_failed_transaction_raises_rolled_back(pgdb: Database,
                                                            conn: psycopg.Connection) -> None:
    pgwire.begin(conn, None)
    pgwire.run(conn, [("INSERT INTO stars (star_name) VALUES (%s)", ("lost",))])
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        pgwire.run(conn, [("INSERT INTO planets (star_id, planet_name) VALUES (%s, %s)",
                           (999, "orphan"))])
    with pytest.raises(RolledBackError, match="cannot commit"):
        pgdb.dialect.start_batch(conn, [], gid="mother-test-failed")()
    with psycopg.connect(pgdb.settings.dsn) as other:
        assert other.execute("SELECT count(*) FROM pg_prepared_xacts "
                             "WHERE gid = 'mother-test-failed'").fetchone()[0] == 0


def test_a_transaction_that_wrote_is_not_taken_for_a_read(
        pgdb: Database, conn: psycopg.Connection) -> None:
    pgwire.begin(conn, None)
    # looks like a read, writes: a data-modifying CTE
    pgwire.run(conn, [("WITH w AS (INSERT INTO stars (star_name) VALUES (%s) RETURNING 1) "
                       "SELECT count(*) FROM w", ("cte",))])
    assert pgdb.dialect.wrote_nothing(conn) is False
    assert conn.pgconn.transaction_status == INTRANS  # still there, nothing lost
    pgdb.dialect.commit(conn)
    assert stored(pgdb) == ["cte"]


def test_a_transaction_that_only_read_is_said_so_and_stays_open(
        pgdb: Database, conn: psycopg.Connection) -> None:
    pgwire.begin(conn, None)
    pgwire.run(conn, [("SELECT pg_advisory_xact_lock(4242)", ())])
    assert pgdb.dialect.wrote_nothing(conn) is True
    assert conn.pgconn.transaction_status == INTRANS  # the reads' transaction goes on
    with psycopg.connect(pgdb.settings.dsn) as other:  # its advisory lock still held
        assert other.execute("SELECT pg_try_advisory_xact_lock(4242)").fetchone()[0] is False


def _terminate_when_committing(pgdb: Database, conn: psycopg.Connection) -> None:
    """Make the next COMMIT on ``conn`` wait, then kill its backend while it waits:
    a deferred trigger sleeps at COMMIT, another connection terminates the backend
    (call it before ``conn`` touches the table: the trigger's DDL needs its lock)."""
    pid = conn.info.backend_pid
    with psycopg.connect(pgdb.settings.dsn, autocommit=True) as admin:
        admin.execute("CREATE OR REPLACE FUNCTION mother_test_sleep() RETURNS trigger "
                      "LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(10); RETURN NULL; END $$")
        admin.execute("DROP TRIGGER IF EXISTS mother_test_slow ON stars")
        admin.execute("CREATE CONSTRAINT TRIGGER mother_test_slow AFTER INSERT ON stars "
                      "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                      "EXECUTE FUNCTION mother_test_sleep()")
    import threading
    import time

    def kill() -> None:
        with psycopg.connect(pgdb.settings.dsn, autocommit=True) as admin:
            for _ in range(200):
                row = admin.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s",
                                    (pid,)).fetchone()
                if row and row[0] == "PgSleep":
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    return
                time.sleep(0.05)

    threading.Thread(target=kill, daemon=True).start()


def test_commit_whose_backend_dies_during_it_did_not_run_and_says_so(
        pgdb: Database, conn: psycopg.Connection, request: pytest.FixtureRequest) -> None:
    request.addfinalizer(lambda: _drop_slow_trigger(pgdb))
    _terminate_when_committing(pgdb, conn)
    pgwire.begin(conn, None)
    pgwire.run(conn, [("INSERT INTO stars (star_name) VALUES (%s)", ("dying",))])
    with pytest.raises(EndLost) as lost:
        pgdb.dialect.commit(conn)
    # the probe was answered before the COMMIT ran: the transaction id is known
    assert lost.value.xid is not None and lost.value.ran is None
    assert pgdb.dialect.outcome(lost.value.xid) == "aborted"
    assert stored(pgdb) == []


def _drop_slow_trigger(pgdb: Database) -> None:
    with psycopg.connect(pgdb.settings.dsn, autocommit=True) as admin:
        admin.execute("DROP TRIGGER IF EXISTS mother_test_slow ON stars")


def test_outcome_of_a_committed_transaction(pgdb: Database, conn: psycopg.Connection) -> None:
    pgwire.begin(conn, None)
    pgwire.run(conn, [("INSERT INTO stars (star_name) VALUES (%s)", ("kept",))])
    [probe] = pgwire.run(conn, [(pgwire.XID_PROBE, ())])
    xid = int(probe.rows[0]["pg_current_xact_id_if_assigned"])
    pgdb.dialect.commit(conn)
    assert pgdb.dialect.outcome(xid) == "committed"


def test_psycopg_never_deallocates_our_statements_after_a_rollback(
        pgdb: Database, conn: psycopg.Connection) -> None:
    # a query without parameters run often would make psycopg prepare it, and its
    # rollback then sends DEALLOCATE ALL, dropping dbmother's statements too
    pgwire.set_prepare_threshold(conn, 0)
    pgwire.run(conn, [("SELECT %s::int AS n", (1,))])
    assert numbered(prepared_names(conn)) == ["_mo_1"]
    for _ in range(8):
        conn.execute("SELECT 1")
    conn.rollback()
    assert numbered(prepared_names(conn)) == ["_mo_1"]
    assert pgwire.run(conn, [("SELECT %s::int AS n", (2,))])[0].rows == [{"n": 2}]


def test_a_session_keeps_at_most_prepared_max_statements_across_commits(
        pgdb: Database) -> None:
    session = MotherSession()
    conn = session.connection()
    conn.prepared_max = 2
    pgwire.set_prepare_threshold(conn, 1)
    ours = "SELECT COUNT(*) AS n FROM pg_prepared_statements WHERE name LIKE '\\_mo\\_%'"
    try:
        for turn in range(4):
            for number in range(5):
                assert session.mr_query(f"SELECT %(t)s::int + {number} AS n",
                                        {"t": turn}) == [{"n": turn + number}]
                assert session.ov_query(ours) <= 2
            session.commit()
        assert 1 <= session.ov_query(ours) <= 2  # still prepared, evicted ones deallocated
    finally:
        session.endSession()


# -- the client's work while the server works (run_while) ----------------------------------------
def test_run_while_works_between_sending_and_reading_in_one_round_trip(
        conn: psycopg.Connection) -> None:
    pgwire.begin(conn, "overlap")
    seen: list[TransactionStatus] = []

    def meanwhile() -> str:
        seen.append(conn.pgconn.transaction_status)  # sent, its result not read yet
        return "done"

    with events.capture() as trace:
        [result], done = pgwire.run_while(conn, [("SELECT %s::int AS n", (7,))], meanwhile)
    assert (result.rows, done, seen) == ([{"n": 7}], "done", [TransactionStatus.ACTIVE])
    [trip] = [e for e in trace.events if isinstance(e, events.RoundTrip)]
    assert [s.sql for s in trip.statements][0] == "BEGIN"  # the queued BEGIN rode with it
    assert trip.statements[-1].sql == "SELECT %s::int AS n" and trip.error is None
    assert conn.pgconn.transaction_status == INTRANS
    conn.rollback()


def test_run_while_reads_the_results_when_the_work_fails(conn: psycopg.Connection) -> None:
    def meanwhile() -> None:
        raise ValueError("the client's work failed")

    pgwire.begin(conn, None)
    with events.capture() as trace, pytest.raises(ValueError, match="client's work"):
        pgwire.run_while(conn, [("INSERT INTO stars (star_name) VALUES (%s)", ("x",))],
                         meanwhile)
    [trip] = [e for e in trace.events if isinstance(e, events.RoundTrip)]
    # the round trip is reported as the server answered it: the INSERT ran
    assert trip.error is None and trip.statements[-1].rows == 1
    # the reply was read: the connection goes on, in its transaction
    assert conn.pgconn.transaction_status == INTRANS
    assert pgwire.run(conn, [("SELECT count(*) AS n FROM stars", ())])[0].rows == [{"n": 1}]
    conn.rollback()


def test_run_while_with_a_failing_statement_raises_its_error(
        pgdb: Database, conn: psycopg.Connection) -> None:
    pgwire.begin(conn, None)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        pgwire.run_while(conn, [("INSERT INTO planets (star_id, planet_name) VALUES (%s, %s)",
                                 (999, "orphan"))], lambda: None)
    assert conn.pgconn.transaction_status == INERROR
    conn.rollback()
    assert stored(pgdb) == []


def test_run_while_on_a_connection_lost_meanwhile(conn: psycopg.Connection) -> None:
    pgwire.begin(conn, None)
    [found] = pgwire.run(conn, [("SELECT pg_backend_pid() AS pid", ())])
    pid = found.rows[0]["pid"]  # the server's backend, even through a pooler

    with events.capture() as trace, pytest.raises(psycopg.OperationalError):
        pgwire.run_while(conn, [("SELECT pg_sleep(5)", ())], lambda: pooler.terminate(pid))
    [trip] = [e for e in trace.events if isinstance(e, events.RoundTrip)
              and e.statements[-1].sql == "SELECT pg_sleep(5)"]
    assert isinstance(trip.error, psycopg.OperationalError)


def test_a_changed_client_encoding_encodes_the_next_statements(conn: psycopg.Connection) -> None:
    conn.execute("SET client_encoding TO 'LATIN1'")
    [result] = pgwire.run(conn, [("SELECT %s || 'ü' AS word, octet_length(%s) AS n",
                                  ("é", "é"))])
    assert result.rows == [{"word": "éü", "n": 2}]  # two bytes in the database's UTF-8
    conn.execute("RESET client_encoding")
