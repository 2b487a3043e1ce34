"""Streamed queries (``stream_query``, mother/executor.py): rows read a chunk at a time in
the session's transaction, on both databases; and a statement run while the client works
(``run_while``)."""

from __future__ import annotations

import psycopg
import pytest

import mother
from mother import ConnectionLostError, MoFilter, MotherSession, events, getMotherBuilder
from mother.executor import RowStream, shared
from tests.support import pooler

N = 25


def fill(db: mother.Database, n: int = N) -> None:
    with MotherSession() as s:
        s.mq_query(f"INSERT INTO stars (star_name, star_mass) VALUES "
                   f"({db.dialect.placeholder('n')}, {db.dialect.placeholder('m')})",
                   [{"n": f"star {i}", "m": i} for i in range(n)])


def trips(trace: events.Trace) -> list[events.RoundTrip]:
    return [e for e in trace.events if isinstance(e, events.RoundTrip)]


def test_a_stream_gives_every_row_with_bound_values_and_a_mofilter(db):
    fill(db)
    ph = db.dialect.placeholder
    with MotherSession() as s:
        stream = s.stream_query(f"SELECT star_name FROM stars WHERE star_mass >= {ph('m')} "
                                "ORDER BY star_mass", {"m": 5}, size=4)
        assert isinstance(stream, RowStream)
        assert [row["star_name"] for row in stream] == [f"star {i}" for i in range(5, N)]
        filtered = s.stream_query("SELECT star_mass FROM stars WHERE {filter} ORDER BY star_mass",
                                  MoFilter({"star_mass": 3}, table="stars"), size=2)
        assert list(filtered) == [{"star_mass": 3}]
        literal = s.stream_query("SELECT star_name FROM stars WHERE star_name LIKE 'star 1%'",
                                 size=3)  # no parameters: its % is a literal one
        assert len(list(literal)) == 11


def test_a_stream_sees_the_sessions_own_unflushed_changes(db):
    fill(db, 3)
    with MotherSession() as s:
        s.persist(getMotherBuilder("stars")({"star_name": "pending"}, session=s))
        names = [row["star_name"] for row in s.stream_query("SELECT star_name FROM stars",
                                                             size=2)]
        assert "pending" in names and len(names) == 4


def test_each_chunk_is_a_round_trip_reported_and_the_begin_rides_with_the_first(db):
    fill(db)
    with events.capture() as trace, MotherSession("streaming") as s:
        rows = list(s.stream_query("SELECT star_id FROM stars", size=10))
    assert len(rows) == N
    mine = [t for t in trips(trace) if t.session == "streaming"]
    sent = [[st.sql for st in t.statements] for t in mine]
    if db.dialect.name == "postgresql":
        assert sent[0][0] == "BEGIN" and sent[0][-1].startswith('DECLARE "mo_stream_0"')
        fetches = [t for t in mine if t.statements[0].sql.startswith("FETCH FORWARD 10")]
        assert [t.statements[0].rows for t in fetches] == [10, 10, 5]
        assert sent[len(fetches) + 1] == ['CLOSE "mo_stream_0"']
    else:  # the query is one call into sqlite3; its cursor reads the rest locally
        assert sent[0] == ["BEGIN IMMEDIATE"] and sent[1] == ["SELECT star_id FROM stars"]
    assert sent[-1][-1] == "COMMIT"


def test_streams_nest_interleave_with_statements_and_a_loop_left_early_is_closed(db):
    fill(db)
    with MotherSession() as s:
        outer = iter(s.stream_query("SELECT star_id FROM stars ORDER BY star_id", size=3))
        first = next(outer)
        inner = list(s.stream_query("SELECT star_id FROM stars ORDER BY star_id", size=7))
        assert len(inner) == N
        assert s.ov_query("SELECT COUNT(*) AS n FROM stars") == N  # between two chunks
        assert [first, *outer] == inner
        for _row in s.stream_query("SELECT star_id FROM stars", size=2):
            break  # the generator goes away: its cursor is closed
        with s.stream_query("SELECT star_id FROM stars", size=2) as left:
            next(iter(left))
        again = s.stream_query("SELECT star_id FROM stars", size=5)
        assert len(list(again)) == N


def test_a_stream_left_open_across_a_commit_is_let_go_quietly(db):
    fill(db)
    s = MotherSession()
    stale = s.stream_query("SELECT star_id FROM stars", size=2)
    rows = iter(stale)
    next(rows)
    s.commit()  # the cursor ends with its transaction
    fresh = s.stream_query("SELECT star_id FROM stars", size=4)
    stale.close()  # nothing sent for the old cursor: the new transaction goes on
    assert len(list(fresh)) == N
    s.endSession()


def test_a_bad_query_fails_when_the_stream_is_asked_for(db):
    s = MotherSession()
    with pytest.raises(Exception, match="no_such_table"):
        s.stream_query("SELECT * FROM no_such_table")
    s.rollback()
    assert len(list(s.stream_query("SELECT * FROM stars"))) == 0  # and the session goes on
    s.endSession()


def test_streams_are_refused_clearly(db):
    fill(db, 2)
    with pytest.raises(mother.ArgumentError, match="needs a session"):
        getMotherBuilder("stars")().stream_query("SELECT * FROM stars")
    with MotherSession() as s:
        for size in (0, -1, 1.5, "10", False):
            with pytest.raises(mother.ArgumentError, match="stream size"):
                s.stream_query("SELECT * FROM stars", size=size)
        stream = s.stream_query("SELECT * FROM stars")
        assert len(list(stream)) == 2
        with pytest.raises(mother.ArgumentError, match="only once"):
            iter(stream)
    with MotherSession(readonly=True) as s, pytest.raises(mother.ReadOnlySessionError):
        s.stream_query("DELETE FROM stars")


# -- run_while: the client's work while the server works on a statement ----------------------
def ask(db: mother.Database) -> str:
    return f"SELECT count(*) AS n FROM stars WHERE star_mass >= {db.dialect.placeholder('m')}"


def test_run_while_gives_the_result_and_the_work_in_the_sessions_transaction(db):
    fill(db)
    done: list[str] = []
    with events.capture() as trace, MotherSession("overlapping") as s:
        count, work = s.run_while(ask(db), {"m": 20}, lambda cursor: cursor.fetchone()["n"],
                                  lambda: done.append("work") or "worked")
        assert (count, work, done) == (5, "worked", ["work"])
    [first, *_] = [t for t in trips(trace) if t.session == "overlapping"]
    if db.dialect.name == "postgresql":  # the BEGIN rode with it: one round trip
        sent = [st.sql for st in first.statements]
        assert sent[0] == "BEGIN" and sent[-1] == ask(db)


def test_run_while_of_the_shared_connection(db):
    fill(db)
    count, work = shared(db).run_while(ask(db), {"m": 0}, lambda cursor: cursor.fetchone()["n"],
                                       lambda: "worked")
    assert (count, work) == (N, "worked")


def test_run_while_rides_with_a_pending_flush(db):
    Star = getMotherBuilder("stars")
    with events.capture() as trace, MotherSession("pending") as s:
        Star({"star_name": "pending", "star_mass": 30}, mother.MO_SAVE, session=s)
        count, work = s.run_while(ask(db), {"m": 30}, lambda cursor: cursor.fetchone()["n"],
                                  lambda: "worked")
        assert (count, work) == (1, "worked")  # the flush went first
    if db.dialect.pipelines:  # in the same round trip
        [trip] = [t for t in trips(trace) if t.statements[-1].sql == ask(db)]
        assert any(st.sql.startswith("INSERT INTO") for st in trip.statements)


def test_run_while_on_a_connection_lost_meanwhile_guards_the_session(pgdb):
    session = MotherSession("doomed")
    pid = pooler.server_pid(session)
    with pytest.raises(psycopg.OperationalError):  # the driver's own error passes through
        session.run_while("SELECT pg_sleep(%(s)s)", {"s": 5}, lambda cursor: None,
                          lambda: pooler.terminate(pid))
    with pytest.raises(ConnectionLostError, match="doomed"):
        session.ov_query("SELECT 1 AS one")
    session.rollback()  # starts again on a new connection
    assert session.ov_query("SELECT 1 AS one") == 1
    session.endSession()
    assert mother.MotherPoolStatus().in_use == 0
