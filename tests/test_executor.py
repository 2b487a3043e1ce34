"""Streamed queries (``stream_query``, mother/executor.py): rows read a chunk at a time in
the session's transaction, on both databases."""

from __future__ import annotations

import pytest

import mother
from mother import MoFilter, MotherSession, events, getMotherBuilder
from mother.executor import RowStream

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
