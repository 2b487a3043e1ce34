"""Sessions: naming, application_name, commit/rollback/endSession, context manager,
SessionClosedError, caller-owned connections, raw query helpers, a killed backend."""

from __future__ import annotations

import re

import psycopg
import pytest
import transaction

from mother import (
    MO_SAVE,
    ArgumentError,
    ConnectionLostError,
    MoFilter,
    MotherError,
    MotherPoolStatus,
    MotherSession,
    NotUniqueError,
    SessionClosedError,
    init_mother,
    tutorial,
)
from mother.database import Database
from mother.tm import join
from tests.support.classes import ClsStars
from tests.support.databases import count


def ph(db: Database, name: str) -> str:
    return db.dialect.placeholder(name)


def insert_star(session, db: Database, name: str) -> None:
    session.oc_query(f"INSERT INTO stars (star_name) VALUES ({ph(db, 'n')})", {"n": name})


def test_generated_name_follows_the_rule(db: Database) -> None:
    names = {MotherSession().name for _ in range(5)}
    assert all(re.fullmatch(r"MoSession-\d+", name) for name in names)
    assert len(names) > 1
    assert MotherSession("Explicit").name == "Explicit"


def test_an_unnamed_session_takes_the_name_its_connection_carries(pg_dsns: list[str]) -> None:
    """Unnamed sessions one after the other on one pooled connection: the first draws its
    name; the next, whose name nobody asked before its first statement, takes it from the
    connection (tests/test_roundtrips.py shows no ``SET`` is sent then); after a named
    session an unnamed one draws a new name. Behind a pooler the name goes with every
    transaction anyway, so each unnamed session draws its own."""
    database = init_mother(dsn=pg_dsns[0], pool_min=1, pool_max=1, recover_interval=None)
    pooled = database.settings.pooler is not None
    with MotherSession() as first:
        assert first.ov_query("SELECT current_setting('application_name') AS a") == first.name
    assert re.fullmatch(r"MoSession-\d+", first.name)

    with MotherSession() as second:
        carried = second.ov_query("SELECT current_setting('application_name') AS a")
    assert carried == second.name and (second.name != first.name) is pooled

    with MotherSession("Observatory") as named:
        named.ov_query("SELECT 1 AS x")
    with MotherSession() as third:
        carried = third.ov_query("SELECT current_setting('application_name') AS a")
    assert carried == third.name and re.fullmatch(r"MoSession-\d+", third.name)
    assert third.name != first.name


def test_a_name_asked_before_the_first_statement_is_drawn_then(pgdb: Database) -> None:
    with MotherSession() as first:
        first.ov_query("SELECT 1 AS x")
    second = MotherSession()
    drawn = second.name  # asked first: drawn now, and kept
    assert second.ov_query("SELECT current_setting('application_name') AS a") == drawn
    assert second.name == drawn != first.name
    second.endSession()


def test_session_name_setting_is_the_prefix(dsn: str) -> None:
    init_mother(dsn=dsn, session_name="Astro")
    assert re.fullmatch(r"Astro-\d+", MotherSession().name)


def test_naming_keeps_the_isolation_level_choosable(pgdb: Database) -> None:
    """The name is set with the transaction's BEGIN, which takes no snapshot."""
    session = MotherSession("Isolated-7")
    session.oc_query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    assert session.ov_query("SELECT current_setting('transaction_isolation') AS i") \
        == "serializable"
    assert session.ov_query("SELECT current_setting('application_name') AS a") == "Isolated-7"
    session.rollback()
    # the rollback took the name back: the next transaction sets it again
    assert session.ov_query("SELECT current_setting('application_name') AS a") == "Isolated-7"
    session.endSession()


def test_application_name_in_pg_stat_activity(pgdb: Database, pg_server: str) -> None:
    session = MotherSession("Observatory-42")
    pid = session.ov_query("SELECT pg_backend_pid() AS pid")
    with psycopg.connect(pg_server) as admin:
        seen = admin.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s",
                             (pid,)).fetchone()[0]
    assert seen == "Observatory-42"
    session.rollback()  # the name survives a rollback
    assert session.ov_query("SELECT current_setting('application_name') AS a") == "Observatory-42"
    session.endSession()


def test_commit_keeps_the_session_usable(db: Database) -> None:
    session = MotherSession()
    insert_star(session, db, "one")
    session.commit()
    assert count(db, "stars") == 1
    insert_star(session, db, "two")
    assert count(db, "stars") == 1  # not yet committed
    session.endSession()
    assert count(db, "stars") == 2
    assert MotherPoolStatus().in_use == 0


def test_rollback_undoes_and_keeps_the_session_usable(db: Database) -> None:
    session = MotherSession()
    insert_star(session, db, "gone")
    session.rollback()
    assert session.ov_query("SELECT COUNT(*) AS n FROM stars") == 0
    insert_star(session, db, "kept")
    session.endSession()
    assert count(db, "stars") == 1


def test_end_session_commits_and_returns_the_connection(db: Database) -> None:
    session = MotherSession()
    insert_star(session, db, "x")
    assert MotherPoolStatus().in_use == 1
    session.endSession()
    assert session.closed
    assert MotherPoolStatus().in_use == 0
    assert count(db, "stars") == 1


def test_context_manager_commits(db: Database) -> None:
    with MotherSession() as session:
        insert_star(session, db, "ctx")
    assert session.closed and count(db, "stars") == 1


def test_context_manager_rolls_back_and_reraises(db: Database) -> None:
    with pytest.raises(KeyError), MotherSession() as session:
        insert_star(session, db, "ctx")
        raise KeyError("boom")
    assert session.closed and count(db, "stars") == 0
    assert MotherPoolStatus().in_use == 0


def test_close_rolls_back(db: Database) -> None:
    session = MotherSession()
    insert_star(session, db, "never")
    session.close()
    session.close()  # harmless twice
    assert count(db, "stars") == 0


CLOSED_CALLS = [
    ("oc_query", ("SELECT 1",)), ("ov_query", ("SELECT 1",)), ("or_query", ("SELECT 1",)),
    ("mr_query", ("SELECT 1",)), ("mq_query", ("SELECT 1", [{}])),
    ("mg_query", ("SELECT 1", [{}])), ("commit", ()), ("rollback", ()), ("endSession", ()),
    ("beginTrans", ()), ("flush", ()), ("connection", ()), ("savepoint", ()),
    ("get", (ClsStars, 1)),
]


@pytest.mark.parametrize(("method", "args"), CLOSED_CALLS, ids=[c[0] for c in CLOSED_CALLS])
def test_any_use_after_end_raises(db: Database, method: str, args: tuple) -> None:
    session = MotherSession()
    session.endSession()
    with pytest.raises(SessionClosedError, match=session.name):
        getattr(session, method)(*args)


def test_records_of_an_ended_session_refuse_work(db: Database) -> None:
    session = MotherSession()
    star = ClsStars({"star_name": "late"}, MO_SAVE, session=session)
    session.endSession()
    with pytest.raises(SessionClosedError):
        ClsStars({"star_name": "later"}, MO_SAVE, session=session)
    with pytest.raises(SessionClosedError):
        star.update({"star_mass": 3})
    with pytest.raises(SessionClosedError):
        star.oc_query("SELECT 1")
    with pytest.raises(SessionClosedError), session.begin_nested():
        pass
    assert count(db, "stars") == 1


def test_caller_owned_connection_is_committed_never_closed(db: Database) -> None:
    conn = db.dialect.connect()
    try:
        session = MotherSession("borrowed", pg_conn=conn)
        insert_star(session, db, "mine")
        session.endSession()
        assert count(db, "stars") == 1
        assert not db.dialect.is_broken(conn)
        assert db.dialect.execute(conn, "SELECT COUNT(*) AS n FROM stars").fetchone()["n"] == 1
        assert MotherPoolStatus().in_use == 0
    finally:
        conn.close()


def test_caller_owned_connection_shows_the_session_name(pgdb: Database) -> None:
    conn = pgdb.dialect.connect()
    try:
        with MotherSession("BorrowedName", pg_conn=conn) as session:
            assert session.ov_query("SELECT current_setting('application_name') AS a") \
                == "BorrowedName"
        assert not conn.closed
    finally:
        conn.close()


def _autocommit_named(pgdb: Database, name: str) -> psycopg.Connection:
    """A caller's autocommit connection whose application_name already is ``name``."""
    conn = pgdb.dialect.connect()
    conn.autocommit = True
    conn.execute("SELECT set_config('application_name', %s, false)", (name,))
    return conn


def test_caller_autocommit_connection_runs_in_the_sessions_transaction(
        pgdb: Database, clean_transaction: None) -> None:
    conn = _autocommit_named(pgdb, "worker")
    try:
        session = MotherSession("worker", pg_conn=conn)
        insert_star(session, pgdb, "rolled back")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        session.rollback()
        session.endSession()
        session = MotherSession("worker", pg_conn=conn)
        join(session)
        insert_star(session, pgdb, "aborted")
        transaction.abort()
        assert count(pgdb, "stars") == 0
        session = MotherSession("worker", pg_conn=conn)
        join(session)
        insert_star(session, pgdb, "committed")
        transaction.commit()
        assert count(pgdb, "stars") == 1
    finally:
        conn.close()


def test_caller_autocommit_is_given_back_when_the_session_ends(pgdb: Database) -> None:
    conn = _autocommit_named(pgdb, "elsewhere")
    try:
        with MotherSession("worker", pg_conn=conn) as session:
            insert_star(session, pgdb, "the session's")
            assert not conn.autocommit
        assert conn.autocommit
        # the caller's own statement commits by itself again, as before the session
        conn.execute("INSERT INTO stars (star_name) VALUES ('the caller''s')")
        assert count(pgdb, "stars") == 2
        session = MotherSession("worker", pg_conn=conn)
        insert_star(session, pgdb, "closed")
        session.close()
        assert conn.autocommit and count(pgdb, "stars") == 2
    finally:
        conn.close()


def test_caller_autocommit_connection_inside_its_own_begin_is_refused(pgdb: Database) -> None:
    conn = _autocommit_named(pgdb, "worker")
    try:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO stars (star_name) VALUES ('the caller''s')")
        with pytest.raises(ArgumentError, match="autocommit mode inside a transaction"):
            MotherSession("worker", pg_conn=conn)
        assert conn.autocommit  # untouched: the caller's transaction is its own
        conn.execute("COMMIT")
        assert count(pgdb, "stars") == 1
    finally:
        conn.close()


@pytest.fixture
def filled(db: Database) -> Database:
    with MotherSession() as session:
        session.mq_query(f"INSERT INTO stars (star_name, star_mass) VALUES "
                         f"({ph(db, 'n')}, {ph(db, 'm')})",
                         [{"n": "a", "m": 1}, {"n": "b", "m": 2}, {"n": "c", "m": 2}])
    return db


def test_raw_query_helpers(filled: Database) -> None:
    db = filled
    with MotherSession() as s:
        rows = s.mr_query("SELECT star_name, star_mass FROM stars ORDER BY star_name")
        assert rows == [{"star_name": "a", "star_mass": 1}, {"star_name": "b", "star_mass": 2},
                        {"star_name": "c", "star_mass": 2}]
        assert s.or_query(f"SELECT star_name FROM stars WHERE star_mass = {ph(db, 'm')}",
                          {"m": 1}) == {"star_name": "a"}
        assert s.ov_query(f"SELECT star_mass FROM stars WHERE star_name = {ph(db, 'n')}",
                          {"n": "c"}) == 2
        assert s.oc_query("UPDATE stars SET star_age = 9") is None
        got = s.mg_query(f"SELECT star_name FROM stars WHERE star_mass = {ph(db, 'm')} "
                         "ORDER BY star_name", [{"m": 2}, {"m": 1}])
        assert got == [{"star_name": "b"}, {"star_name": "c"}, {"star_name": "a"}]
        assert s.mq_query("UPDATE stars SET star_age = 1", []) is None
        assert s.mr_query("SELECT star_name FROM stars WHERE star_name = 'none'") == []
        # a MoFilter adds its conditions with bound parameters
        flt = MoFilter({"star_mass": 2}).add_filter(f"star_name <> {ph(db, 'skip')}",
                                                     store={"skip": "b"})
        assert s.mr_query("SELECT star_name FROM stars", flt) == [{"star_name": "c"}]
    assert count(db, "stars", "WHERE star_age = 9") == 3


def test_exactly_one_semantics(filled: Database) -> None:
    db = filled
    with MotherSession() as s:
        with pytest.raises(NotUniqueError) as none:
            s.or_query("SELECT * FROM stars WHERE star_mass = 99")
        assert none.value.count == 0
        with pytest.raises(NotUniqueError) as many:
            s.or_query(f"SELECT * FROM stars WHERE star_mass = {ph(db, 'm')}", {"m": 2})
        assert many.value.count == 2
        with pytest.raises(NotUniqueError):
            s.ov_query("SELECT star_name FROM stars")
        with pytest.raises(NotUniqueError, match="one column"):
            s.ov_query("SELECT star_name, star_mass FROM stars WHERE star_mass = 1")
        assert isinstance(many.value, MotherError)
        # the session is still usable after those errors
        assert s.ov_query("SELECT COUNT(*) AS n FROM stars") == 3


def test_driver_errors_pass_through_and_rollback_recovers(db: Database) -> None:
    import sqlite3

    session = MotherSession()
    insert_star(session, db, "before")
    with pytest.raises((psycopg.Error, sqlite3.Error)):
        session.oc_query("INSERT INTO no_such_table VALUES (1)")
    session.rollback()
    insert_star(session, db, "after")
    session.endSession()
    with MotherSession() as s:
        assert s.mr_query("SELECT star_name FROM stars") == [{"star_name": "after"}]


def test_killed_backend_mid_session(pg_server: str, pg_dsns: list[str]) -> None:
    database = init_mother(dsn=pg_dsns[0], pool_min=1, pool_max=2, pool_timeout=10)
    tutorial.create(database)
    session = MotherSession("doomed")
    insert_star(session, database, "lost with the backend")
    pid = session.ov_query("SELECT pg_backend_pid() AS pid")
    with psycopg.connect(pg_server, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    with pytest.raises(psycopg.OperationalError):
        session.ov_query("SELECT 1 AS one")  # the driver's own error passes through
    with pytest.raises(ConnectionLostError, match="doomed"):
        session.ov_query("SELECT 1 AS one")
    with pytest.raises(ConnectionLostError):
        session.commit()
    assert MotherPoolStatus().in_use == 0  # the broken connection went back (and was dropped)
    session.rollback()  # starts again on a new connection
    assert session.ov_query("SELECT pg_backend_pid() AS pid") != pid
    insert_star(session, database, "after the kill")
    session.endSession()
    with MotherSession("next") as nxt:
        assert nxt.mr_query("SELECT star_name FROM stars") == [{"star_name": "after the kill"}]
    assert MotherPoolStatus().in_use == 0
