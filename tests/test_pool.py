"""Pool policies (limited, elastic, growing) and the cleaning of returned connections."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from mother import (
    MotherPoolStatus,
    MotherPoolStratus,
    MotherSession,
    PoolTimeoutError,
    close_all,
    init_mother,
    tutorial,
)
from mother.database import Database
from tests.support.databases import count


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    yield
    close_all()


def eventually(predicate: Callable[[], bool], limit: float = 60.0) -> bool:
    """Poll until ``predicate()`` holds (a generous deadline, not a timing assertion)."""
    end = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def busy_sessions(n: int) -> list:
    sessions = [MotherSession(f"busy-{i}") for i in range(n)]
    for session in sessions:
        # takes a connection from the pool (without a transaction: SQLite would
        # serialize the sessions on its write lock)
        session.connection()
    return sessions


def test_limited_times_out_with_a_clear_error(dsn: str) -> None:
    init_mother(dsn=dsn, pool_min=1, pool_max=2, pool_timeout=0.3)
    held = busy_sessions(2)
    with pytest.raises(PoolTimeoutError, match="pool_max=2"):
        MotherSession().connection()
    assert MotherPoolStatus().in_use == 2
    for session in held:
        session.endSession()
    assert MotherPoolStatus().in_use == 0


def test_limited_waits_for_a_returned_connection(dsn: str) -> None:
    init_mother(dsn=dsn, pool_min=1, pool_max=1, pool_timeout=60)
    first = busy_sessions(1)[0]
    got: list[object] = []

    def third() -> None:
        with MotherSession("waiter") as session:
            got.append(session.ov_query("SELECT 7 AS seven"))

    worker = threading.Thread(target=third)
    worker.start()
    assert eventually(lambda: MotherPoolStatus().waiting == 1)
    assert got == []  # still waiting: the only connection is held
    first.endSession()
    worker.join()
    assert got == [7]
    status = MotherPoolStatus()
    assert (status.size, status.in_use, status.waiting) == (1, 0, 0)


def test_elastic_shrinks_back_to_pool_min(dsn: str) -> None:
    init_mother(dsn=dsn, pool_min=1, pool_max=6, pool_type="elastic", pool_idle=0.1)
    held = busy_sessions(5)
    assert MotherPoolStatus().size >= 5
    for session in held:
        session.endSession()
    assert eventually(lambda: MotherPoolStatus().size == 1)
    status = MotherPoolStatus()
    assert (status.pool_type, status.in_use, status.minimum) == ("elastic", 0, 1)
    with MotherSession() as session:  # still works after shrinking
        assert session.ov_query("SELECT 3 AS three") == 3


def test_growing_has_no_upper_bound(dsn: str) -> None:
    init_mother(dsn=dsn, pool_min=1, pool_max=2, pool_type="growing", pool_timeout=5)
    held = busy_sessions(6)
    status = MotherPoolStatus()
    assert status.maximum is None
    assert status.in_use == 6 and status.size >= 6
    assert "unlimited" in MotherPoolStratus()
    for session in held:
        session.endSession()
    assert MotherPoolStatus().in_use == 0


def test_pool_stratus_is_readable(dsn: str) -> None:
    init_mother(dsn=dsn, pool_min=1, pool_max=3)
    held = busy_sessions(2)
    text = MotherPoolStratus()
    lines = text.splitlines()
    assert lines[0].split("~")[0].strip() == "Pool Type" and lines[0].endswith("limited")
    assert any(line.split("~")[0].strip() == "Connections Employed" and line.endswith(" 2")
               for line in lines)
    assert any(line.endswith(" 3") for line in lines if "Maximum" in line)
    for session in held:
        session.endSession()


@pytest.fixture
def onepool(dsn: str) -> Iterator[Database]:
    database = init_mother(dsn=dsn, pool_min=1, pool_max=1, pool_timeout=5)
    tutorial.create(database)
    yield database


def test_connection_returned_mid_transaction_is_rolled_back(onepool: Database) -> None:
    dialect = onepool.dialect
    conn = onepool.getconn()
    dialect.begin(conn)
    dialect.execute(conn, "INSERT INTO stars (star_name) VALUES ('uncommitted')")
    assert dialect.in_transaction(conn)
    onepool.putconn(conn)
    again = onepool.getconn()
    try:
        assert not dialect.in_transaction(again)
        assert dialect.execute(again, "SELECT COUNT(*) AS n FROM stars").fetchone()["n"] == 0
    finally:
        dialect.rollback(again)
        onepool.putconn(again)
    assert count(onepool, "stars") == 0


def test_connection_returned_in_error_is_cleaned(onepool: Database) -> None:
    dialect = onepool.dialect
    conn = onepool.getconn()
    dialect.begin(conn)
    with pytest.raises(Exception, match="no_such_table"):
        dialect.execute(conn, "SELECT * FROM no_such_table")
    onepool.putconn(conn)
    with MotherSession() as session:
        assert session.ov_query("SELECT COUNT(*) AS n FROM stars") == 0
    assert MotherPoolStatus().in_use == 0


def test_session_ended_after_an_error_leaves_a_clean_connection(onepool: Database) -> None:
    session = MotherSession()
    session.oc_query("INSERT INTO stars (star_name) VALUES ('lost')")
    with pytest.raises(Exception, match="no_such_table"):
        session.oc_query("SELECT * FROM no_such_table")
    session.close()
    with MotherSession() as session:
        assert session.ov_query("SELECT COUNT(*) AS n FROM stars") == 0


def test_closed_connection_is_replaced(onepool: Database) -> None:
    conn = onepool.getconn()
    conn.close()
    onepool.putconn(conn)
    with MotherSession() as session:
        assert session.ov_query("SELECT 5 AS five") == 5
        assert session.connection() is not conn
    status = MotherPoolStatus()
    assert status.size == 1 and status.in_use == 0


def test_idle_connection_killed_by_the_server_is_replaced(pg_dsns: list[str],
                                                          pg_server: str) -> None:
    init_mother(dsn=pg_dsns[0], pool_min=1, pool_max=1, pool_timeout=10)
    with MotherSession("soon-killed") as session:
        pid = session.ov_query("SELECT pg_backend_pid() AS pid")
    with psycopg.connect(pg_server, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    with MotherSession("after-kill") as session:
        assert session.ov_query("SELECT pg_backend_pid() AS pid") != pid
    assert MotherPoolStatus().in_use == 0
