"""PostgreSQL behind PgBouncer in transaction mode (``pooler = pgbouncer-transaction``): more
clients than server connections, nothing left on a server connection, the default settings
failing clearly, and the setting harmless without a pooler. A real PgBouncer (the
``pgbouncer`` fixture), asked through its admin console and the server's own views."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import mother
from mother import MotherSession, PreparedStatementLostError, events, executor, tutorial
from tests.support import pooler
from tests.support.databases import count
from tests.support.pooler import (
    POOLER,
    admin,
    clients,
    dbname,
    holding,
    server_pid,
    server_states,
    servers,
)
from tools import pgbouncer as tool

THREADS = 12
#: what a server connection holds once its clients are gone: nothing of theirs
CLEAN = {"lock_timeout": "0", "isolation": "read committed", "prepared": []}


@pytest.fixture
def pooled(pgbouncer: str, pg_databases: list[str]) -> Iterator[str]:
    """The first test database, through PgBouncer (its server connections new for each
    test: what a test leaves on one, on purpose, stays its own)."""
    dsn = tool.through(pg_databases[0])
    yield dsn
    mother.close_all()
    pooler.reconnect(dsn)


@pytest.fixture(autouse=True)
def closed() -> Iterator[None]:
    yield
    mother.close_all()


def _database(dsn: str, **settings: Any) -> mother.Database:
    database = mother.init_mother(dsn=dsn, pool_timeout=10, recover_interval=None, **settings)
    tutorial.create(database)
    return database


def _pool_servers(dsn: str) -> int:
    """The server connections PgBouncer's pool for the database of ``dsn`` has (SHOW POOLS)."""
    for row in admin("SHOW POOLS"):
        if row["database"] == dbname(dsn):
            return sum(row[key] for key in ("sv_active", "sv_idle", "sv_used", "sv_tested",
                                            "sv_login"))
    return 0


def _waiting(dsn: str) -> int:
    return sum(row["cl_waiting"] for row in admin("SHOW POOLS") if row["database"] == dbname(dsn))


@pytest.fixture
def sampled(pooled: str) -> Iterator[dict[str, int]]:
    """While the test runs, the most server connections and waiting clients PgBouncer's
    pool of the database had at once (SHOW POOLS every 10 ms)."""
    most = {"servers": 0, "waiting": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            most["servers"] = max(most["servers"], _pool_servers(pooled))
            most["waiting"] = max(most["waiting"], _waiting(pooled))
            stop.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    yield most
    stop.set()
    sampler.join()


def test_twelve_clients_share_four_server_connections_and_leave_nothing_on_them(
        pooled: str, sampled: dict[str, int], pg_server: str) -> None:
    database = _database(pooled, pooler=POOLER, pool_min=THREADS, pool_max=THREADS)
    start = threading.Barrier(THREADS)
    seen: dict[str, set[int]] = {"backends": set()}
    errors: list[BaseException] = []

    def client(number: int) -> None:
        try:
            start.wait()
            for run in range(8):  # the same statements each time: never prepared
                with MotherSession(f"leak-{number}-{run}", isolation_level="serializable",
                                   readonly=run % 2 == 1) as session:
                    pid = session.ov_query("SELECT pg_backend_pid() AS pid")
                    assert session.ov_query(
                        "SELECT current_setting('application_name') AS a") == session.name
                    session.ov_query("SELECT pg_sleep(0.01)::text AS slept")
                    if run % 2 == 0:
                        session.oc_query("INSERT INTO stars (star_name) VALUES (%(n)s)",
                                         {"n": session.name})
                    seen["backends"].add(pid)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # twelve clients connected at once, served by at most four server connections
    assert len(clients(pooled)) >= THREADS
    assert 1 <= len(servers(pooled)) <= tool.POOL_SIZE
    assert len(seen["backends"]) <= tool.POOL_SIZE
    assert sampled["servers"] <= tool.POOL_SIZE and sampled["waiting"] >= 1
    # every server connection, asked directly: no session's name, setting or statement
    states = server_states(pooled)
    assert {state["pid"] for state in states} >= seen["backends"]
    for state in states:
        assert not state["name"].startswith("leak-"), state
        assert {key: state[key] for key in CLEAN} == CLEAN, state
    with psycopg.connect(pg_server) as direct:
        names = [name for name, in direct.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = %s",
            (dbname(pooled),))]
    assert names and not any(name.startswith("leak-") for name in names)
    assert count(database, "stars") == THREADS * 4


def test_the_session_name_shows_while_its_transaction_runs(pooled: str, pg_server: str) -> None:
    _database(pooled, pooler=POOLER, pool_min=1)
    with MotherSession("Observatory-7") as session:
        pid = server_pid(session)
        with psycopg.connect(pg_server) as direct:
            [(name,)] = direct.execute(
                "SELECT application_name FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert name == "Observatory-7"
    [state] = [state for state in server_states(pooled) if state["pid"] == pid]
    assert state["name"] != "Observatory-7"


def test_the_shared_connection_is_named_in_each_transaction(pooled: str) -> None:
    shared = executor.shared(_database(pooled, pooler=POOLER, pool_min=1))
    for _ in range(3):
        assert shared.run("SELECT current_setting('application_name') AS a", None,
                          lambda cursor: cursor.fetchone()["a"]) == shared.name


def test_a_caller_connection_prepares_nothing(pooled: str) -> None:
    database = _database(pooled, pooler=POOLER, pool_min=1)
    with psycopg.connect(pooled, prepare_threshold=0) as conn:
        for run in range(8):
            with MotherSession(f"mine-{run}", pg_conn=conn) as session:
                assert session.ov_query("SELECT %(n)s::int AS n", {"n": run}) == run
                assert session.mr_query("SELECT name FROM pg_prepared_statements") == []
        assert conn.prepare_threshold is None
    assert count(database, "stars") == 0


def _statement(session: MotherSession, n: int) -> int:
    """One statement the same each time (so that it qualifies to be prepared); its backend."""
    row = session.or_query("SELECT %(n)s::int AS n, pg_backend_pid() AS pid", {"n": n})
    assert row["n"] == n
    return int(row["pid"])


def test_the_default_settings_behind_the_pooler_fail_clearly(pooled: str) -> None:
    """A statement prepared on one server connection (the default threshold: its sixth run)
    is missing on the next: the error says to set the pooler. Its name is unique to the
    client, so it never runs another client's statement of the same name."""
    _database(pooled, pooler="none", pool_min=1, pool_max=1)
    for n in range(5):
        with MotherSession() as session:
            _statement(session, n)
    with MotherSession() as session:
        prepared_on = _statement(session, 5)  # the sixth run: prepared now
    with holding(pooled, prepared_on), MotherSession() as session:
        with pytest.raises(PreparedStatementLostError,
                           match="set pooler = pgbouncer-transaction") as lost:
            _statement(session, 6)
        assert isinstance(lost.value.__cause__, psycopg.errors.InvalidSqlStatementName)
        session.rollback()
        assert _statement(session, 7) != prepared_on  # forgotten: runs unprepared again


def test_with_the_setting_the_same_work_runs_on_any_server_connection(pooled: str) -> None:
    _database(pooled, pooler=POOLER, pool_min=1, pool_max=1)
    for n in range(6):
        with MotherSession() as session:
            last = _statement(session, n)
    with holding(pooled, last), MotherSession() as session:
        assert _statement(session, 6) != last
    assert all(state["prepared"] == [] for state in server_states(pooled))


def _round_trips(work: Any) -> list[list[str]]:
    """The statements of each round trip ``work()`` sent."""
    trips: list[list[str]] = []
    with events.listening(lambda event: trips.append(
            [statement.sql for statement in event.statements])
            if isinstance(event, events.RoundTrip) else None):
        work()
    return trips


def test_the_setting_is_harmless_without_a_pooler(pg_databases: list[str],
                                                  pg_server: str) -> None:
    """Straight to the server: the same work, the same round trips, nothing prepared; the
    name is set in each transaction only, so the idle connection no longer carries it."""
    pids: list[int] = []

    def work() -> None:
        for run in range(7):
            with MotherSession(f"direct-{run}") as session:
                session.oc_query("INSERT INTO stars (star_name) VALUES (%(n)s)", {"n": "x"})
                assert session.ov_query(
                    "SELECT current_setting('application_name') AS a") == session.name
                pids.append(server_pid(session))

    trips, idle, prepared = {}, {}, {}
    for setting in ("none", POOLER):
        database = _database(pg_databases[0], pooler=setting, pool_min=1, pool_max=1)
        trips[setting] = _round_trips(work)
        with psycopg.connect(pg_server) as direct:  # the pool's connection, idle now
            [(idle[setting],)] = direct.execute(
                "SELECT application_name FROM pg_stat_activity WHERE pid = %s", (pids[-1],))
        with MotherSession() as session:
            prepared[setting] = session.ov_query("SELECT COUNT(*) AS n FROM pg_prepared_statements")
        assert count(database, "stars") == 7
        mother.close_all()
    assert len(trips[POOLER]) == len(trips["none"])
    begins = [trip for trip in trips[POOLER] if trip[0] == "BEGIN"]
    assert [trip[1] for trip in begins] == [
        f"SET LOCAL application_name = 'direct-{run}'" for run in range(7)]
    assert idle == {"none": "direct-6", POOLER: ""}  # the session-wide name stays without it
    assert prepared["none"] > 0 and prepared[POOLER] == 0


def test_a_pooled_connection_waits_for_a_server_instead_of_failing(pooled: str) -> None:
    """More sessions in a transaction at once than server connections: the next waits for
    one (PgBouncer queues it) and runs when one is free."""
    _database(pooled, pooler=POOLER, pool_min=1, pool_max=tool.POOL_SIZE + 1)
    holders = [MotherSession(f"holder-{n}") for n in range(tool.POOL_SIZE)]
    for session in holders:
        server_pid(session)  # each holds a server connection in its transaction
    done = threading.Event()

    def late() -> None:
        with MotherSession("late") as session:
            server_pid(session)
        done.set()

    waiter = threading.Thread(target=late)
    waiter.start()
    deadline = time.monotonic() + 10
    while _waiting(pooled) != 1:  # PgBouncer queues it
        assert time.monotonic() < deadline, "the late session never waited for a server"
        time.sleep(0.02)
    time.sleep(0.1)
    assert not done.is_set() and _waiting(pooled) == 1
    holders[0].endSession()
    waiter.join(timeout=10)
    assert done.is_set()
    for session in holders[1:]:
        session.endSession()
