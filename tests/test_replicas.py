"""Read-only sessions on streaming replicas (mother.replicas), with real replicas of the test
server (tests/support/replicas.py): where each session runs is asked of the server it runs
on (``pg_is_in_recovery()``, its port)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import transaction

import mother
from mother import (
    MO_LOAD,
    MO_SAVE,
    MotherBox,
    MotherSession,
    WalPosition,
    events,
    session_scope,
)
from mother.dialects.pgwire import POSITION_PROBE, XID_PROBE
from mother.replicas import HISTORY, Replicas, ReplicaState
from mother.tm import current_session, join
from tests.support.classes import ClsPlanets, ClsStars
from tests.support.databases import count
from tests.support.pooler import server_pid, terminate
from tests.support.replicas import Replicated
from tests.support.tm import Foreign, second_database
from tools import pgreplicas
from tools.rtproxy import RoundTripProxy, queries

pytestmark = pytest.mark.timeout(120)


def server(session: mother.Session) -> tuple[bool, int]:
    """Whether the session's server is a standby, and its port: asked of that server."""
    row = session.or_query("SELECT pg_catalog.pg_is_in_recovery() AS standby, "
                           "pg_catalog.current_setting('port')::int AS port")
    return row["standby"], row["port"]


def where(database: mother.Database, **options: object) -> tuple[bool, int]:
    """Where a new read-only session of ``database`` runs (asked of its server)."""
    with MotherSession(database=database, readonly=True, **options) as session:  # type: ignore[arg-type]
        return server(session)


def write_star(database: mother.Database, name: str) -> WalPosition:
    """Insert a star on the primary; the position its commit reached."""
    with MotherSession(database=database) as session:
        ClsStars({"star_name": name}, MO_SAVE, session=session)
    assert session.commit_position is not None
    return session.commit_position


def replica_set(database: mother.Database) -> Replicas:
    assert database.replicas is not None
    return database.replicas


@pytest.fixture
def normal_only(replicas: Replicated) -> Iterator[mother.Database]:
    """The replicated database with its normal replica only."""
    yield mother.init_mother(**replicas.settings(replicas=[replicas.dsn(replicas.normal)]))


@pytest.fixture
def delayed_only(replicas: Replicated) -> Iterator[mother.Database]:
    """The replicated database with its delayed replica only."""
    yield mother.init_mother(**replicas.settings(replicas=[replicas.dsn(replicas.delayed)]))


def test_a_read_only_session_runs_on_a_replica_and_a_writer_on_the_primary(
        normal_only: mother.Database, replicas: Replicated) -> None:
    with session_scope(readonly=True) as session:
        assert session.replica is not None
        assert server(session) == (True, replicas.normal.port)
    with MotherSession() as writer:
        assert writer.replica is None and server(writer) == (False, pgreplicas.pgcluster.PORT)


def test_records_boxes_and_raw_queries_work_on_a_replica(
        normal_only: mother.Database, replicas: Replicated) -> None:
    position = write_star(normal_only, "Rigel")
    with MotherSession(readonly=True, after=position) as session:
        assert server(session)[0]
        star = ClsStars({"star_name": "Rigel"}, MO_LOAD, session=session)
        assert star.getField("star_name") == "Rigel"
        assert [r["star_name"] for r in MotherBox(ClsStars, {"star_name": "Rigel"},
                                                            MO_LOAD, session=session)] == ["Rigel"]
        assert session.ov_query("SELECT count(*) FROM stars WHERE star_name = %(n)s",
                                {"n": "Rigel"}) == 1
        assert list(session.stream_query("SELECT star_name FROM stars WHERE star_name = "
                                         "'Rigel'", size=10)) == [{"star_name": "Rigel"}]


def test_writes_in_a_replica_session_are_refused_before_anything_is_sent(
        normal_only: mother.Database) -> None:
    with MotherSession(readonly=True) as session:
        assert session.replica is not None
        writes = [lambda: ClsStars({"star_name": "Nope"}, MO_SAVE, session=session),
                  lambda: ClsPlanets({"planet_name": "Nope"}, session=session).insert(),
                  lambda: session.oc_query("INSERT INTO stars (star_name) VALUES ('x')"),
                  lambda: session.mq_query("DELETE FROM stars WHERE star_id = %(i)s",
                                           [{"i": 1}]),
                  lambda: session.persist(ClsStars({"star_name": "Nope"}))]
        for write in writes:
            with pytest.raises(mother.ReadOnlySessionError, match="read-only"):
                write()
        assert (session.statements, session.batches) == (0, 0)


def test_read_only_sessions_are_spread_over_the_replicas(replicas: Replicated) -> None:
    # the normal replica twice, spelled two ways: two replicas to spread over, both healthy
    normal = replicas.dsn(replicas.normal)
    uri = f"postgresql://postgres@127.0.0.1:{replicas.normal.port}/{replicas.dbname}"
    database = mother.init_mother(**replicas.settings(replicas=[normal, uri]))
    chosen = []
    for _ in range(4):
        with MotherSession(readonly=True) as session:
            assert server(session) == (True, replicas.normal.port)
            chosen.append(session.replica)
    first, second = replica_set(database).replicas
    assert chosen == [first, second, first, second]


def test_threads_choose_replicas_at_the_same_time(replicas: Replicated) -> None:
    database = mother.init_mother(**replicas.settings(
        replicas=[replicas.dsn(replicas.normal)], pool_max=8, replica_check=0.01))
    found: list[tuple[bool, int]] = []

    def reader() -> None:
        for _ in range(20):
            found.append(where(database))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [(True, replicas.normal.port)] * 160


def test_a_replica_lagging_more_than_allowed_is_skipped(
        delayed_only: mother.Database, replicas: Replicated) -> None:
    write_star(delayed_only, "Deneb")
    max_lag = delayed_only.settings.replica_max_lag
    time.sleep(max_lag + 0.3)  # the delayed replica now lags more than allowed
    assert where(delayed_only) == (False, pgreplicas.pgcluster.PORT)
    # the same lag within a larger bound: the replica takes read-only sessions
    tolerant = mother.init_mother(**replicas.settings(
        replicas=[replicas.dsn(replicas.delayed)], replica_max_lag=pgreplicas.DELAY + 10),
        name="tolerant")
    write_star(tolerant, "Deneb")
    time.sleep(max_lag + 0.3)
    assert where(tolerant) == (True, replicas.delayed.port)


def test_a_stopped_replica_is_skipped_and_rejoins_after_its_restart(
        normal_only: mother.Database, replicas: Replicated) -> None:
    assert where(normal_only) == (True, replicas.normal.port)
    pgreplicas.stop(replicas.normal)
    time.sleep(normal_only.settings.replica_check)  # the next check finds it down
    started = time.monotonic()
    assert where(normal_only) == (False, pgreplicas.pgcluster.PORT)
    assert time.monotonic() - started < 2  # skipped at once, not waited for
    [replica] = replica_set(normal_only).replicas
    assert not replica.state.up and replica.state.error
    pgreplicas.start(replicas.normal)
    deadline = time.monotonic() + 15
    while where(normal_only) != (True, replicas.normal.port):
        assert time.monotonic() < deadline, "the restarted replica did not rejoin"
        time.sleep(0.2)


def test_a_replica_stopped_since_its_last_check_sends_the_session_to_the_primary(
        replicas: Replicated) -> None:
    # checks far apart: the session itself finds the replica gone
    database = mother.init_mother(**replicas.settings(
        replicas=[replicas.dsn(replicas.normal)], replica_check=60))
    assert where(database) == (True, replicas.normal.port)
    pgreplicas.stop(replicas.normal)
    started = time.monotonic()
    with MotherSession(readonly=True) as session:
        assert session.replica is not None  # chosen: its last check found it healthy
        assert server(session) == (False, pgreplicas.pgcluster.PORT)
        assert session.replica is None
    assert time.monotonic() - started < 5
    [replica] = replica_set(database).replicas
    assert not replica.state.up
    assert where(database) == (False, pgreplicas.pgcluster.PORT)


def test_after_a_position_a_session_reads_its_own_write_skipping_the_delayed_replica(
        replicas: Replicated) -> None:
    database = mother.init_mother(**replicas.settings())
    for _ in range(3):
        position = write_star(database, "Altair")
        with MotherSession(readonly=True, after=position) as session:
            standby, port = server(session)
            assert port != replicas.delayed.port
            assert session.ov_query("SELECT count(*) FROM stars WHERE star_name = 'Altair' "
                                    "AND star_id = (SELECT max(star_id) FROM stars)") == 1
            assert standby == (port == replicas.normal.port)


def test_after_a_position_the_primary_serves_when_no_replica_has_it_in_time(
        delayed_only: mother.Database) -> None:
    position = write_star(delayed_only, "Vega")
    started = time.monotonic()
    with MotherSession(readonly=True, after=position) as session:
        assert session.replica is None and server(session) == (False, pgreplicas.pgcluster.PORT)
        assert session.ov_query("SELECT count(*) FROM stars WHERE star_name = 'Vega'") >= 1
    waited = time.monotonic() - started
    assert delayed_only.settings.replica_wait <= waited < 2  # waited its bound, no more


def test_after_a_position_a_session_waits_for_the_replica_within_its_bound(
        replicas: Replicated) -> None:
    database = mother.init_mother(**replicas.settings(
        replicas=[replicas.dsn(replicas.delayed)], replica_wait=pgreplicas.DELAY + 5))
    position = write_star(database, "Spica")
    with MotherSession(readonly=True, after=position) as session:
        assert server(session) == (True, replicas.delayed.port)
        assert session.ov_query("SELECT count(*) FROM stars WHERE star_name = 'Spica'") >= 1


def test_the_commit_position_rides_in_the_commits_round_trip(replicas: Replicated) -> None:
    params = psycopg.conninfo.conninfo_to_dict(replicas.primary)
    with RoundTripProxy(str(params["host"]), int(params["port"]), record=True) as proxy:
        params.update(host=proxy.host, port=str(proxy.port), sslmode="disable")
        database = mother.init_mother(**replicas.settings(
            dsn=psycopg.conninfo.make_conninfo(**params)))
        session = MotherSession(database=database)
        session.oc_query("INSERT INTO stars (star_name) VALUES ('Pollux')")
        proxy.reset()
        session.endSession()
        assert proxy.round_trips == 1
        trips = [queries(request) for link in proxy.links for request in link.requests]
        assert trips == [[XID_PROBE, "COMMIT", POSITION_PROBE]]
        assert session.commit_position is not None and session.commit_position > 0
        database.close()


def test_a_transaction_that_wrote_nothing_has_no_commit_position(
        normal_only: mother.Database) -> None:
    with MotherSession() as session:
        session.ov_query("SELECT count(*) FROM stars")
    assert session.commit_position is None
    with MotherSession() as session:
        session.ov_query("SELECT count(*) FROM stars")
        session.oc_query("UPDATE stars SET star_age = star_age WHERE false")  # no row: no xid
    assert session.commit_position is None
    assert write_star(normal_only, "Castor") > 0


def test_a_commit_on_a_replica_asks_no_position(replicas: Replicated) -> None:
    params = psycopg.conninfo.conninfo_to_dict(replicas.dsn(replicas.normal))
    with RoundTripProxy(str(params["host"]), int(params["port"]), record=True) as proxy:
        params.update(host=proxy.host, port=str(proxy.port), sslmode="disable")
        database = mother.init_mother(**replicas.settings(
            replicas=[psycopg.conninfo.make_conninfo(**params)]))
        session = MotherSession(database=database, readonly=True)
        assert server(session)[0]
        proxy.reset()
        session.endSession()
        trips = [queries(request) for link in proxy.links for request in link.requests]
        assert trips == [[XID_PROBE, "COMMIT"]] and session.commit_position is None
        database.close()


def test_two_phase_commit_gives_positions_and_a_read_only_session_does_not_prepare(
        replicas: Replicated, pg_dsns: list[str], clean_transaction: None) -> None:
    mother.init_mother(**replicas.settings(replicas=[replicas.dsn(replicas.normal)]))
    other = mother.init_mother(dsn=pg_dsns[1], name="other", recover_interval=None)
    mother.tutorial.create(other)
    transaction.begin()
    writer = current_session()
    ClsStars({"star_name": "Mira"}, MO_SAVE, session=writer)
    ClsStars({"star_name": "Mira"}, MO_SAVE, session=current_session("other"))
    transaction.commit()
    assert writer.commit_position is not None
    transaction.begin()
    reader = current_session(readonly=True)  # a read-only branch on a replica beside a writer
    with reader.begin_nested():  # a savepoint: it counts as written, still never prepared
        assert server(reader)[0]  # (a standby refuses PREPARE TRANSACTION)
    ClsStars({"star_name": "Mira 2"}, MO_SAVE, session=current_session("other"))
    transaction.commit()
    transaction.begin()
    mine = current_session(readonly=True, after=writer.commit_position)
    assert mine.ov_query("SELECT count(*) FROM stars WHERE star_name = 'Mira'") >= 1
    transaction.commit()


def test_lag_is_the_age_of_the_first_known_position_a_replica_lacks() -> None:
    # the measure alone: nothing connects until a replica or the primary is asked
    database = mother.init_mother(dsn="host=127.0.0.1 port=1 dbname=x", name="lag",
                                  replicas=["host=127.0.0.1 port=2 dbname=x"],
                                  recover_interval=None)
    known = replica_set(database)
    [replica] = known.replicas
    known.saw(100, now=10.0)
    known.saw(200, now=11.0)
    known.saw(150, now=12.0)  # older than what is known: nothing new
    known.saw(250, now=11.01)  # within GRAIN of the last one: kept at the earlier time
    for replayed, lag in [(-1, 5.0), (99, 5.0), (100, 4.0), (199, 4.0), (250, 0.0)]:
        replica.state = ReplicaState(up=True, replayed=replayed, checked=14.0)
        assert known.lag(replica, now=15.0) == pytest.approx(lag)
    for number in range(HISTORY + 1):  # more than are kept: the oldest are forgotten
        known.saw(1000 + number, now=20.0 + number)
    replica.state = ReplicaState(up=True, replayed=300, checked=14.0)
    assert known.lag(replica, now=15.0) == float("inf")
    database.close()


def test_sqlite_refuses_replicas(tmp_path: Path) -> None:
    with pytest.raises(mother.ConfigError, match="no streaming replicas") as refused:
        mother.init_mother(dsn=f"sqlite:///{tmp_path / 'r.db'}", replicas="host=x")
    assert refused.value.key == "replicas"


def test_a_replica_dsn_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(mother.ConfigError) as refused:
        mother.init_mother(dsn="host=127.0.0.1", replicas=["sqlite:///x.db"], name="bad")
    assert refused.value.key == "replicas"


def test_wal_positions_read_and_print_as_postgresql_does() -> None:
    position = WalPosition.parse("16/B374D848")
    assert position == 0x16B374D848 and str(position) == "16/B374D848"
    assert WalPosition.parse(str(WalPosition(5))) == 5
    for bad in ("", "16", "x/y", "1/2/3", "123456789/0"):
        with pytest.raises(mother.ArgumentError, match="WAL position"):
            WalPosition.parse(bad)
    database = mother.init_mother(dsn="sqlite://", name="positions")
    with pytest.raises(mother.ArgumentError, match="after="):
        MotherSession(readonly=True, after="0/1", database=database)  # type: ignore[arg-type]
    database.close()


def test_a_commit_prepared_retried_on_a_new_connection_still_gives_its_position(
        replicas: Replicated, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The replicated branch's connection dies after the PREPAREs: its COMMIT PREPARED
    (as the decider, or in its tpc_finish) is retried on a new connection, and the
    position is asked there."""
    database = mother.init_mother(**replicas.settings(replicas=[replicas.dsn(replicas.normal)]))
    second_database("postgresql", request, tmp_path)
    sessions = [MotherSession("one", database=database), MotherSession("two", database="second")]
    for session in sessions:
        join(session)
        ClsStars({"star_name": session.name}, MO_SAVE, session=session)
    pid = server_pid(sessions[0])
    # votes after the branches' (their PREPAREs are in), before the decision
    transaction.get().join(Foreign("~kill", "tpc_vote", lambda: terminate(pid)))
    transaction.commit()
    assert sessions[0].commit_position is not None
    assert count(database, "stars", "WHERE star_name = 'one'") == 1


def test_a_replica_pool_reports_its_checkouts_and_checkins_with_its_address(
        normal_only: mother.Database, replicas: Replicated) -> None:
    where(normal_only)  # the replica checked and its pool opened
    heard: list[events.Event] = []
    with events.listening(heard.append):
        with MotherSession(readonly=True) as session:
            assert session.replica is not None
            session.or_query("SELECT 1 AS one")
        with MotherSession() as writer:
            writer.or_query("SELECT 1 AS one")
    pool = [(event.action, event.replica) for event in heard
            if isinstance(event, events.PoolEvent) and event.database == normal_only.name
            and event.action in ("checkout", "checkin")]  # a pool may connect first
    replica = f"127.0.0.1:{replicas.normal.port}"
    assert pool == [("checkout", replica), ("checkin", replica),
                    ("checkout", None), ("checkin", None)]
    checkin = next(event for event in heard if isinstance(event, events.PoolEvent))
    assert events.describe(checkin).startswith(f"{normal_only.name} replica {replica} pool ")
