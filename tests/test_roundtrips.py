"""Round trips on the real PostgreSQL server, counted by the TCP proxy of tools/rtproxy.py.

Every connection of these tests goes through a :class:`RoundTripProxy`, which
forwards the bytes to the server and counts a round trip each time a client
sends after it has received; it also records what the client sent in each
round trip, decoded here into statements. Opening a connection (startup,
authentication) and the first use of a database (reading its schema) cost
round trips that a pooled connection pays once, not per unit of work, so each
test opens and uses its connection first and then calls ``proxy.reset()``.
Taking a connection from dbmother's pool costs no round trip (the check looks
at the socket only), so it stays inside the counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import psycopg_pool
import pytest
import transaction
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

import mother

# the unit of work is the very one benchmarks/bench_uow.py times (key 1 + i % 100)
from benchmarks.bench_uow import by_hand as unit_of_work_by_hand
from benchmarks.bench_uow import with_session as unit_of_work_in_session
from mother import MO_LOAD, MO_SAVE, MotherSession, tutorial
from mother.dialects.pgwire import XID_PROBE
from mother.tm import join
from tests.support.classes import ClsPlanets, ClsStars
from tests.support.databases import count
from tools.rtproxy import RoundTripProxy, queries

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def direct(pg_dsns: list[str]) -> Iterator[mother.Database]:
    """The test database reached directly, with fresh tutorial tables and two stars."""
    database = mother.init_mother(dsn=pg_dsns[0], name="direct", pool_min=1, pool_max=1)
    tutorial.create(database)
    with MotherSession(database=database) as s:
        s.mq_query("INSERT INTO stars (star_id, star_name, star_age) VALUES (%(id)s, %(n)s, 1)",
                   [{"id": 1, "n": "Sun"}, {"id": 2, "n": "Vega"}])
    yield database
    mother.close_all()


@pytest.fixture
def proxy(pg_dsns: list[str]) -> Iterator[RoundTripProxy]:
    params = conninfo_to_dict(pg_dsns[0])
    host = params.get("host", "")
    if not host or host.startswith("/"):
        pytest.skip("counting round trips needs a server reached over TCP")
    with RoundTripProxy(host, int(params.get("port") or 5432), record=True) as proxy:
        yield proxy


def through(proxy: RoundTripProxy, dsn: str) -> str:
    """``dsn`` pointed at the proxy (without TLS, so that the proxy can read the statements)."""
    params = conninfo_to_dict(dsn)
    params.pop("hostaddr", None)
    params.update(host=proxy.host, port=str(proxy.port), sslmode="disable")
    return make_conninfo(**params)


@pytest.fixture
def db(direct: mother.Database, proxy: RoundTripProxy,
       pg_dsns: list[str]) -> mother.Database:
    """The default database, reached through the proxy, with a pool of one connection that
    is already open, has read the schema and has run one unit of work (none of it counted)."""
    # no automatic recovery: its listing of prepared transactions would count here
    database = mother.init_mother(dsn=through(proxy, pg_dsns[0]), pool_min=1, pool_max=1,
                                  pool_timeout=5, recover_interval=None)
    unit_of_work_in_session(0)
    assert proxy.round_trips > 0  # the traffic really goes through the proxy
    with MotherSession(database=direct) as s:  # undo the warm-up's writes, not through the proxy
        s.oc_query("DELETE FROM planets")
        s.oc_query("UPDATE stars SET star_age = 1")
    proxy.reset()
    return database


def sent(proxy: RoundTripProxy) -> list[list[str]]:
    """The statements each round trip since the last reset carried, connection by connection."""
    return [queries(request) for link in proxy.links for request in link.requests]


def verbs(round_trips: list[list[str]]) -> list[list[str]]:
    """The first word of each statement run; a statement that gets prepared on the way
    (its ``PREPARE`` and ``EXECUTE`` ride together) counts as one, by its own text."""
    texts: dict[str, str] = {}
    result = []
    for trip in round_trips:
        words = []
        for statement in trip:
            if statement.startswith("PREPARE ") and not statement.startswith("PREPARE TRANS"):
                name, text = statement.removeprefix("PREPARE ").split(": ", 1)
                texts[name] = text
                continue
            if statement.startswith("EXECUTE "):
                statement = texts.get(statement.split()[1], statement)
            words.append(statement.split(None, 1)[0])
        result.append(words)
    return result


def test_first_statement_brings_begin_and_name_in_one_round_trip(
        db: mother.Database, proxy: RoundTripProxy) -> None:
    s = MotherSession("rt-first")
    star = s.get(ClsStars, 1)  # pool checkout, BEGIN, SET application_name, SELECT
    assert star.getField("star_name") == "Sun"
    assert proxy.round_trips == 1
    (trip,) = sent(proxy)
    assert trip[:2] == ["BEGIN", "SET application_name = 'rt-first'"]
    assert len(trip) == 3 and trip[2].startswith("SELECT") and '"stars"' in trip[2]
    # what the server reported in that one exchange: the transaction is open, the name set
    conn = s.connection()
    assert conn.info.transaction_status == TransactionStatus.INTRANS
    assert conn.info.parameter_status("application_name") == "rt-first"

    proxy.reset()
    assert s.ov_query("SELECT current_setting('application_name') AS n") == "rt-first"
    assert proxy.round_trips == 1  # later statements travel alone
    assert verbs(sent(proxy)) == [["SELECT"]]
    proxy.reset()
    s.endSession()  # nothing pending: the COMMIT alone
    # the transaction's id is asked with the COMMIT, in case its reply is lost
    assert sent(proxy) == [[XID_PROBE, "COMMIT"]]


def test_an_unnamed_session_on_a_connection_named_by_one_sends_no_name(
        db: mother.Database, proxy: RoundTripProxy) -> None:
    # the pool's one connection carries the name of the unnamed session that warmed it
    s = MotherSession()
    assert s.get(ClsStars, 1).getField("star_name") == "Sun"
    assert sent(proxy)[0][0] == "BEGIN" and sent(proxy)[0][1].startswith("SELECT")
    assert s.ov_query("SELECT current_setting('application_name') AS a") == s.name
    s.endSession()
    with MotherSession("rt-named") as named:
        named.get(ClsStars, 1)
    proxy.reset()
    with MotherSession() as after:  # after a named session: a name of its own, sent
        after.get(ClsStars, 1)
    assert sent(proxy)[0][:2] == ["BEGIN", f"SET application_name = '{after.name}'"]


def test_isolation_level_and_read_only_ride_in_the_begin(
        db: mother.Database, proxy: RoundTripProxy) -> None:
    s = MotherSession("rt-options", isolation_level="serializable", readonly=True)
    assert s.get(ClsStars, 1).getField("star_name") == "Sun"
    assert proxy.round_trips == 1
    (trip,) = sent(proxy)
    assert trip[:2] == ["BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
                        "SET application_name = 'rt-options'"]
    s.endSession()


def test_flush_of_inserts_and_updates_is_one_round_trip(
        db: mother.Database, direct: mother.Database, proxy: RoundTripProxy) -> None:
    s = MotherSession()
    sun, vega = s.get(ClsStars, 1), s.get(ClsStars, 2)
    proxy.reset()
    sun.setField("star_age", 10)
    vega.setField("star_age", 20)
    vega.setField("star_mass", 3)
    s.persist(ClsStars({"star_id": 3, "star_name": "Altair"}))
    for name in ("Mercury", "Venus", "Earth"):
        s.persist(ClsPlanets({"star_id": 3, "planet_name": name}))
    s.flush()
    assert proxy.round_trips == 1
    assert verbs(sent(proxy)) == [["INSERT"] * 4 + ["UPDATE"] * 2]
    assert count(direct, "planets") == 0  # flushed, not committed

    proxy.reset()
    sun.setField("star_mass", 5)
    s.persist(ClsPlanets({"star_id": 1, "planet_name": "Mars"}))
    s.endSession()  # the flush and its COMMIT in one pipeline
    assert proxy.round_trips == 1
    # the UPDATE rides guarded (WITH … UPDATE …): it fails, and so skips the COMMIT,
    # when its row is gone; the transaction's id is asked before the COMMIT
    assert verbs(sent(proxy)) == [["INSERT", "WITH", "SELECT", "COMMIT"]]
    assert count(direct, "planets") == 4
    assert count(direct, "stars", "WHERE star_age IN (10, 20)") == 2


def test_unit_of_work_is_2_round_trips_in_a_session_and_6_by_hand(
        db: mother.Database, proxy: RoundTripProxy, pg_dsns: list[str]) -> None:
    unit_of_work_in_session(101)  # star 1 + 101 % 100 = 2, given a new age: 101
    assert proxy.round_trips == 2
    assert verbs(sent(proxy)) == [["BEGIN", "SELECT"],
                                  ["INSERT", "INSERT", "WITH", "SELECT", "COMMIT"]]

    pool = psycopg_pool.ConnectionPool(through(proxy, pg_dsns[0]), min_size=1, max_size=1,
                                       kwargs={"row_factory": dict_row}, open=True)
    try:
        by_hand = unit_of_work_by_hand(pool)
        by_hand(0)  # opens the connection (not counted)
        proxy.reset()
        by_hand(1)
        assert proxy.round_trips == 6  # psycopg sends BEGIN on its own, then one per statement
        assert verbs(sent(proxy)) == [["BEGIN"], ["SELECT"], ["UPDATE"], ["INSERT"],
                                      ["INSERT"], ["COMMIT"]]
    finally:
        pool.close()


@pytest.mark.parametrize("end", ["flush", "endSession"])
def test_failure_inside_a_flush_costs_one_round_trip_and_writes_nothing(
        db: mother.Database, direct: mother.Database, proxy: RoundTripProxy, end: str) -> None:
    s = MotherSession()
    sun = s.get(ClsStars, 1)
    proxy.reset()
    s.persist(ClsStars({"star_id": 3, "star_name": "Altair"}))
    s.persist(ClsPlanets({"star_id": 404, "planet_name": "nowhere"}))  # no such star
    sun.setField("star_age", 99)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        getattr(s, end)()
    # stars first, the failing planet in the middle, the update after it
    # (guarded, WITH … UPDATE …, when the COMMIT rides along)
    expected = (["INSERT", "INSERT", "UPDATE"] if end == "flush"
                else ["INSERT", "INSERT", "WITH", "SELECT", "COMMIT"])
    if end == "flush":
        assert proxy.round_trips == 1
        assert verbs(sent(proxy)) == [expected]
        s.rollback()
        s.endSession()
    # endSession rolled back and ended the session by itself
    assert verbs(sent(proxy)) == [expected, ["ROLLBACK"]]
    assert count(direct, "stars") == 2 and count(direct, "planets") == 0
    assert count(direct, "stars", "WHERE star_age = 99") == 0


def test_a_query_rides_last_in_the_flush_it_triggers(
        db: mother.Database, direct: mother.Database, proxy: RoundTripProxy) -> None:
    s = MotherSession()
    sun = s.get(ClsStars, 1)
    proxy.reset()
    sun.setField("star_age", 7)
    mars = s.persist(ClsPlanets({"star_id": 1, "planet_name": "Mars"}))
    rows = s.mr_query("SELECT planet_name, star_age FROM planets JOIN stars USING (star_id) "
                      "WHERE star_id = %(star)s", {"star": 1})
    assert rows == [{"planet_name": "Mars", "star_age": 7}]  # it saw the flush
    assert proxy.round_trips == 1
    assert verbs(sent(proxy)) == [["INSERT", "UPDATE", "SELECT"]]
    assert s.batches == 2  # the get, then the flush with its query
    assert mars.getField("planet_id") is not None and proxy.round_trips == 1  # key applied

    proxy.reset()  # a query without parameters may hold several statements: it goes alone
    s.persist(ClsPlanets({"star_id": 1, "planet_name": "Venus"}))
    assert s.ov_query("SELECT count(*) FROM planets") == 2
    assert verbs(sent(proxy)) == [["INSERT"], ["SELECT"]]
    s.endSession()
    assert count(direct, "planets") == 2


def test_a_riding_query_that_fails_leaves_the_flush_unapplied_and_names_its_value(
        db: mother.Database, direct: mother.Database, proxy: RoundTripProxy) -> None:
    s = MotherSession()
    proxy.reset()
    planet = s.persist(ClsPlanets({"star_id": 1, "planet_name": "Mars"}))
    with pytest.raises(mother.BadValueError, match="parameter 'star'"):
        s.mr_query("SELECT * FROM planets WHERE star_id = %(star)s::integer", {"star": "one"})
    assert proxy.round_trips == 1
    assert verbs(sent(proxy)) == [["BEGIN", "INSERT", "SELECT"]]
    assert planet in s.new and "planet_id" not in planet.getFields()  # nothing applied
    s.rollback()
    s.endSession()
    assert count(direct, "planets") == 0


def test_a_stale_row_in_a_flush_fails_the_query_riding_with_it(
        db: mother.Database, direct: mother.Database, proxy: RoundTripProxy) -> None:
    s = MotherSession()
    sun = s.get(ClsStars, 1)
    with MotherSession(database=direct) as other:
        other.oc_query("DELETE FROM stars WHERE star_id = 1")
    proxy.reset()
    sun.setField("star_age", 50)
    with pytest.raises(mother.StaleRecordError, match="stars row 1"):
        s.mr_query("SELECT * FROM stars WHERE star_id = %(id)s", {"id": 2})
    assert proxy.round_trips == 1
    s.rollback()
    s.endSession()
    assert count(direct, "stars", "WHERE star_age = 50") == 0


def test_repeated_statement_is_prepared_and_still_one_round_trip(
        db: mother.Database, proxy: RoundTripProxy) -> None:
    s = MotherSession()
    s.get(ClsStars, 1)  # the transaction is open: BEGIN does not ride below
    threshold = db.settings.prepare_threshold
    assert threshold is not None
    sql = "SELECT star_age FROM stars WHERE star_id = %(id)s /* rt-prepare */"
    trips = []
    for _ in range(threshold + 2):
        proxy.reset()
        assert s.ov_query(sql, {"id": 2}) == 1
        assert proxy.round_trips == 1
        (trip,) = sent(proxy)
        trips.append(trip)
    text = "SELECT star_age FROM stars WHERE star_id = $1 /* rt-prepare */"
    assert trips[:threshold] == [[text]] * threshold
    prepare, execute = trips[threshold]  # Parse of the named statement rides with its run
    name = execute.split()[1]
    assert name.startswith("_mo_") and prepare == f"PREPARE {name}: {text}"
    assert trips[threshold + 1] == [f"EXECUTE {name}"]
    rows = s.mr_query("SELECT name, statement FROM pg_prepared_statements")
    assert {"name": name, "statement": text} in rows
    s.endSession()


def test_a_stream_is_one_round_trip_per_chunk_each_reported(
        db: mother.Database, proxy: RoundTripProxy) -> None:
    with MotherSession() as s:
        s.mq_query("INSERT INTO stars (star_id, star_name) VALUES (%(id)s, 'x')",
                   [{"id": 10 + i} for i in range(9)])  # 11 stars
    proxy.reset()
    with mother.events.capture() as trace, MotherSession("rt-stream") as s:
        assert len(list(s.stream_query("SELECT star_id FROM stars", size=4))) == 11
    trips = [e for e in trace.events if isinstance(e, mother.events.RoundTrip)]
    # DECLARE (with BEGIN), three FETCHes (4, 4, 3 rows), CLOSE, COMMIT
    assert verbs(sent(proxy)) == [["BEGIN", "SET", "DECLARE"], ["FETCH"], ["FETCH"], ["FETCH"],
                                  ["CLOSE"], ["SELECT", "COMMIT"]]
    assert proxy.round_trips == len(trips) == 6


def test_a_bulk_insert_is_three_round_trips_each_reported(
        db: mother.Database, direct: mother.Database, proxy: RoundTripProxy) -> None:
    rows = [{"star_id": 1, "planet_name": f"p{i}"} for i in range(250)]
    with mother.events.capture() as trace, MotherSession("rt-bulk") as s:
        mother.MotherMany("planets", rows, mother.MO_SAVE, s)
    trips = [e for e in trace.events if isinstance(e, mother.events.RoundTrip)]
    wire = verbs(sent(proxy))
    # the keys (with BEGIN), the COPY and its go-ahead, the rows and the reply, COMMIT
    assert wire[0] == ["BEGIN", "SET", "WITH"] and wire[1] == ["COPY"]
    assert proxy.round_trips == len(trips) == 4
    assert count(direct, "planets") == 250 and all(row["planet_id"] for row in rows)

def immediate_unit(s: mother.Session, key: int, age: int) -> None:
    """The unit of work in Mother's immediate style: MO_LOAD, setField + update(), two
    MO_SAVE (benchmarks/bench_tm.py times it)."""
    star = ClsStars({"star_id": key}, MO_LOAD, session=s)
    star.setField("star_age", age)
    star.update()
    for name in ("a", "b"):
        ClsPlanets({"star_id": key, "planet_name": name}, MO_SAVE, session=s)


@pytest.mark.parametrize("defer", [True, False], ids=["deferred", "at-once"])
def test_immediate_style_unit_of_work_is_2_round_trips_deferred_and_5_at_once(
        db: mother.Database, direct: mother.Database, proxy: RoundTripProxy,
        defer: bool) -> None:
    s = MotherSession(defer_writes=defer)
    immediate_unit(s, 2, 101)
    s.endSession()
    if defer:  # the writes wait for the COMMIT and ride in its pipeline
        assert verbs(sent(proxy)) == [["BEGIN", "SELECT"],
                                      ["INSERT", "INSERT", "WITH", "SELECT", "COMMIT"]]
    else:
        assert verbs(sent(proxy)) == [["BEGIN", "SELECT"], ["UPDATE"], ["INSERT"],
                                      ["INSERT"], ["SELECT", "COMMIT"]]
    assert count(direct, "planets") == 2 and count(direct, "stars", "WHERE star_age = 101") == 1


def joined(proxy: RoundTripProxy) -> mother.Session:
    """A session joined to the current transaction, once the database's first join (which
    asks whether the server allows prepared transactions) has been paid and not counted."""
    warm = MotherSession()
    join(warm)
    transaction.commit()
    proxy.reset()
    s = MotherSession()
    join(s)
    return s


def test_immediate_style_with_transaction_commit_is_2_round_trips(
        db: mother.Database, direct: mother.Database, proxy: RoundTripProxy) -> None:
    s = joined(proxy)
    immediate_unit(s, 2, 102)
    transaction.commit()
    assert verbs(sent(proxy)) == [["BEGIN", "SELECT"],
                                  ["INSERT", "INSERT", "WITH", "SELECT", "COMMIT"]]
    assert count(direct, "planets") == 2 and count(direct, "stars", "WHERE star_age = 102") == 1


def test_a_deferred_insert_that_fails_fails_transaction_commit_in_its_round_trip(
        db: mother.Database, direct: mother.Database, proxy: RoundTripProxy) -> None:
    s = joined(proxy)
    immediate_unit(s, 2, 103)
    stray = ClsPlanets({"star_id": 404, "planet_name": "nowhere"}, MO_SAVE, session=s)
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as info:
        transaction.commit()
    assert f"insert of {stray!r}" in " ".join(info.value.__notes__)
    transaction.abort()
    # the third INSERT failed; the COMMIT in its pipeline never ran; the session rolled back
    assert verbs(sent(proxy)) == [["BEGIN", "SELECT"],
                                  ["INSERT", "INSERT", "INSERT", "WITH", "SELECT", "COMMIT"],
                                  ["ROLLBACK"]]
    assert count(direct, "planets") == 0 and count(direct, "stars", "WHERE star_age = 1") == 2


@pytest.fixture
def second(db: mother.Database, proxy: RoundTripProxy, pg_dsns: list[str]) -> mother.Database:
    """The second test database (tutorial tables, two stars) through the proxy as
    ``"second"``, warmed up like ``db``."""
    direct2 = mother.init_mother(dsn=pg_dsns[1], name="direct2", pool_min=1, pool_max=1)
    tutorial.create(direct2)
    with MotherSession(database=direct2) as s:
        s.mq_query("INSERT INTO stars (star_id, star_name, star_age) VALUES (%(id)s, %(n)s, 1)",
                   [{"id": 1, "n": "Sun"}, {"id": 2, "n": "Vega"}])
    database = mother.init_mother(dsn=through(proxy, pg_dsns[1]), name="second", pool_min=1,
                                  pool_max=1, pool_timeout=5, recover_interval=None)
    with MotherSession(database=database) as s:
        s.get(ClsStars, 1)
    return database


class SecondStars(ClsStars):
    mother_database = "second"


class SecondPlanets(ClsPlanets):
    mother_database = "second"


@pytest.mark.parametrize("defer", [True, False], ids=["deferred", "at-once"])
def test_immediate_style_on_two_databases_with_two_phase_commit(
        db: mother.Database, second: mother.Database, proxy: RoundTripProxy,
        defer: bool) -> None:
    """Per database: BEGIN with the SELECT, the writes with the PREPARE (the commit
    decision riding in one of them), COMMIT PREPARED: 3 each deferred; at once, each
    write a round trip of its own and the PREPARE alone: 6 each."""
    def unit(age: int) -> None:
        sessions = [MotherSession(database=name, defer_writes=defer)
                    for name in ("default", "second")]
        for s in sessions:
            join(s)
        immediate_unit(sessions[0], 2, age)
        star = SecondStars({"star_id": 2}, MO_LOAD, session=sessions[1])
        star.update({"star_age": age})
        for name in ("a", "b"):
            SecondPlanets({"star_id": 2, "planet_name": name}, MO_SAVE, session=sessions[1])
        transaction.commit()

    unit(104)  # the first two-phase commit makes the commit logs: not counted
    proxy.reset()
    unit(105)
    assert proxy.round_trips == (6 if defer else 12)
    if defer:
        by_link = [verbs([queries(request) for request in link.requests])
                   for link in proxy.links]
        assert sorted(by_link) == sorted([
            [["BEGIN", "SELECT"],
             ["INSERT", "INSERT", "WITH", "INSERT", "SELECT", "PREPARE"], ["COMMIT"]],
            [["BEGIN", "SELECT"],
             ["INSERT", "INSERT", "WITH", "SELECT", "PREPARE"], ["COMMIT"]]])
    for database in ("direct", "direct2"):
        assert count(mother.get_database(database), "planets") == 4
        assert count(mother.get_database(database), "stars", "WHERE star_age = 105") == 1
