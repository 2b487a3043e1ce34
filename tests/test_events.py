"""The event stream: listeners, traces per context, and what sessions report on both
databases (every round trip, the session's life, the transaction's phases, the pool)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
import transaction

import mother
import mother.tm
from mother import ArgumentError, events, tutorial
from mother.dialects import PoolStatus
from mother.events import PhaseEvent, PoolEvent, RoundTrip, SessionEvent, Statement
from tests.support.tm import add_deferred_table


def fake_trip(sql: str = "SELECT 1") -> None:
    events.round_trip("db", "s", [Statement(sql, None, 1)], events.now())


def test_any_number_of_listeners_each_get_every_event():
    first, second = [], []
    with events.listening(first.append), events.listening(second.append):
        fake_trip("SELECT 1")
        fake_trip("SELECT 2")
    fake_trip("SELECT 3")  # after the block: nobody gets it
    assert [e.statements[0].sql for e in first] == ["SELECT 1", "SELECT 2"]
    assert second == first
    assert isinstance(first[0], RoundTrip) and first[0].session == "s"
    assert first[0].seq < first[1].seq and first[0].thread == threading.get_ident()


def test_nobody_listening_leaves_an_empty_tuple():
    assert events.listeners == ()
    with events.listening(print):
        assert events.listeners == (print,)
    assert events.listeners == ()


def test_a_raising_listener_is_logged_and_the_others_still_run(caplog):
    got = []

    def broken(event):
        raise RuntimeError("listener bug")

    with events.listening(broken), events.listening(got.append):
        fake_trip()
    assert len(got) == 1
    (record,) = [r for r in caplog.records if r.name == "mother.events"]
    assert record.levelno == logging.ERROR and "broken" in record.getMessage()
    assert record.exc_info[1].args == ("listener bug",)


def test_bad_listeners_are_refused_by_name():
    with pytest.raises(ArgumentError, match="must be callable, not 42"):
        events.subscribe(42)
    with pytest.raises(ArgumentError, match="is not a subscribed event listener"):
        events.unsubscribe(print)


def test_subscribing_twice_calls_twice_and_unsubscribe_removes_one():
    got = []
    events.subscribe(got.append)
    events.subscribe(got.append)
    try:
        fake_trip()
        assert len(got) == 2
        events.unsubscribe(got.append)
        fake_trip()
        assert len(got) == 3
    finally:
        events.unsubscribe(got.append)
    assert events.listeners == ()


def test_a_trace_holds_only_its_own_threads_events_in_order():
    traces: dict[int, events.Trace] = {}
    barrier = threading.Barrier(4)

    def work(number: int) -> None:
        with events.capture() as trace:
            barrier.wait()
            for step in range(50):
                fake_trip(f"SELECT {number}, {step}")
        traces[number] = trace

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for number, trace in traces.items():
        assert [e.statements[0].sql for e in trace.events] == [
            f"SELECT {number}, {step}" for step in range(50)]
        seqs = [e.seq for e in trace.events]
        assert seqs == sorted(seqs)
    assert events.listeners == ()


def test_a_trace_of_one_asyncio_task_misses_the_other_tasks():
    async def task(name: str, ready: asyncio.Event, go: asyncio.Event) -> list[str]:
        with events.capture() as trace:
            ready.set()
            await go.wait()
            fake_trip(f"SELECT '{name}'")
            await asyncio.sleep(0)
            fake_trip(f"SELECT '{name}' again")
        return [e.statements[0].sql for e in trace.events]

    async def main() -> list[list[str]]:
        go = asyncio.Event()
        readies = [asyncio.Event(), asyncio.Event()]
        tasks = [asyncio.create_task(task(n, r, go)) for n, r in zip("ab", readies)]
        for ready in readies:
            await ready.wait()
        go.set()
        return await asyncio.gather(*tasks)

    a, b = asyncio.run(main())
    assert a == ["SELECT 'a'", "SELECT 'a' again"]
    assert b == ["SELECT 'b'", "SELECT 'b' again"]


def test_traces_nest_and_a_stopped_trace_keeps_its_events():
    with events.capture() as outer:
        fake_trip("SELECT 1")
        with events.capture() as inner:
            fake_trip("SELECT 2")
        fake_trip("SELECT 3")
    fake_trip("SELECT 4")
    assert [e.statements[0].sql for e in outer.events] == ["SELECT 1", "SELECT 2", "SELECT 3"]
    assert [e.statements[0].sql for e in inner.events] == ["SELECT 2"]
    assert not outer.active and events.listeners == ()


class _Manager:
    """Stands for a data manager: the decorator reads ``session`` and ``mode``."""

    def __init__(self, session, fail=False):
        self.session = session
        self.fail = fail
        self.mode = None

    @events.phase("tpc_vote", votes={"prepare": "two-phase"})
    def tpc_vote(self, txn):
        fake_trip("PREPARE TRANSACTION 'x'")
        self.running = events.current_phase.get()
        self.mode = "prepare"
        if self.fail:
            raise RuntimeError("vote failed")


def test_phase_decorator_reports_vote_then_phase_with_its_error(db):
    session = mother.MotherSession("voter")
    try:
        quiet = _Manager(session)
        assert quiet.tpc_vote(None) is None and quiet.running is None  # nobody listens
        manager = _Manager(session, fail=True)
        with events.capture() as trace, pytest.raises(RuntimeError, match="vote failed"):
            manager.tpc_vote(None)
        assert manager.running.phase == "tpc_vote"
        trip, vote, phase = trace.events
        assert isinstance(trip, RoundTrip)
        assert vote == SessionEvent(db.name, "voter", "vote", "two-phase", vote.seq, vote.thread)
        assert isinstance(phase, PhaseEvent) and phase.phase == "tpc_vote"
        assert (phase.database, phase.session) == (db.name, "voter")
        assert str(phase.error) == "vote failed" and phase.duration >= 0
        assert phase.start <= trip.start and events.current_phase.get() is None
    finally:
        session.close()


def test_pool_events_carry_the_status():
    status = PoolStatus("limited", 1, 0, 1, 0, 1, 2)
    with events.capture() as trace:
        events.pool_event("db", "checkout", status)
    (event,) = trace.events
    assert isinstance(event, PoolEvent) and event.status is status


# -- what sessions report, on both databases ---------------------------------------------------
def trips(trace: events.Trace, session: str | None = None) -> list[RoundTrip]:
    return [e for e in trace.events if isinstance(e, RoundTrip)
            and (session is None or e.session == session)]


def sent(trace: events.Trace, session: str) -> list[str]:
    return [s.sql for trip in trips(trace, session) for s in trip.statements]


def life(trace: events.Trace, session: str) -> list[tuple[str, str]]:
    return [(e.action, e.detail) for e in trace.events
            if isinstance(e, SessionEvent) and e.session == session]


def test_a_session_reports_each_round_trip_with_its_begin_and_commit(db):
    with events.capture() as trace, mother.MotherSession("seen") as session:
        session.oc_query(f"INSERT INTO stars (star_name) VALUES "
                         f"({db.dialect.placeholder('name')})", {"name": "Vega"})
    mine = trips(trace, "seen")
    first = mine[0] if db.dialect.name == "postgresql" else mine[1]
    insert = first.statements[-1]
    assert insert.sql.startswith("INSERT INTO stars") and insert.params == {"name": "Vega"}
    assert insert.rows == 1 and "Vega" not in insert.sql
    if db.dialect.name == "postgresql":  # the BEGIN rides in the first statement's round trip
        assert [s.sql for s in first.statements[:2]] == ["BEGIN", "SET application_name = 'seen'"]
    else:  # one call into sqlite3 each
        assert mine[0].statements[0].sql == "BEGIN IMMEDIATE"
    assert "COMMIT" in sent(trace, "seen")
    assert life(trace, "seen") == [("opened", ""), ("ended", "committed")]
    assert all(t.database == db.name and t.error is None and t.duration >= 0 for t in mine)
    pool = [e.action for e in trace.events if isinstance(e, PoolEvent)]
    assert pool[0] == "checkout" and pool[-1] == "checkin"
    seqs = [e.seq for e in trace.events]
    assert seqs == sorted(seqs)


def test_savepoints_rollback_and_a_failed_statement_are_reported(db):
    with events.capture() as trace:
        session = mother.MotherSession("undo")
        with pytest.raises(Exception, match="no_such_table") as raised, session.begin_nested():
            session.oc_query("SELECT * FROM no_such_table")
        session.rollback()
        session.close()
    statements = sent(trace, "undo")
    assert any("SAVEPOINT" in s and "mother_sp_1" in s and "ROLLBACK" not in s
               for s in statements)
    assert any(s.startswith("ROLLBACK TO SAVEPOINT") for s in statements)
    assert statements[-1] in ("ROLLBACK", "PRAGMA query_only = OFF")
    assert "ROLLBACK" in statements
    (failed,) = [t for t in trips(trace, "undo") if t.error is not None]
    assert failed.error is raised.value.__cause__ or failed.error is raised.value
    assert failed.statements[-1].sql == "SELECT * FROM no_such_table"
    assert life(trace, "undo")[-1] == ("ended", "rolled back")


def test_a_transaction_on_one_database_votes_one_phase(db, clean_transaction):
    with events.capture() as trace:
        session = mother.MotherSession("alone")
        mother.tm.join(session)
        session.oc_query("DELETE FROM stars")
        transaction.commit()
    assert life(trace, "alone") == [("opened", ""), ("joined", ""), ("vote", "one-phase"),
                                    ("ended", "committed")]
    phases = [e.phase for e in trace.events if isinstance(e, PhaseEvent)]
    assert phases == ["tpc_begin", "commit", "tpc_vote", "decision", "tpc_finish"]


@pytest.fixture
def two_pg(pg_dsns, clean_transaction):
    databases = [mother.init_mother(dsn=dsn, name=name, recover_interval=None)
                 for name, dsn in zip(("first", "second"), pg_dsns)]
    for database in databases:
        tutorial.create(database)
    yield databases
    mother.close_all()


def write_both(databases) -> list:
    sessions = []
    for database in databases:
        session = mother.MotherSession(f"on-{database.name}", database=database.name)
        mother.tm.join(session)
        session.oc_query("INSERT INTO stars (star_name) VALUES (%(n)s)", {"n": "both"})
        sessions.append(session)
    return sessions


def test_two_phase_commit_reports_its_phases_in_order(two_pg):
    with events.capture() as trace:
        write_both(two_pg)
        transaction.commit()
    phases = [(e.phase, e.database) for e in trace.events if isinstance(e, PhaseEvent)]
    assert phases == [("tpc_begin", "first"), ("tpc_begin", "second"), ("commit", "first"),
                      ("commit", "second"), ("tpc_vote", "first"), ("tpc_vote", "second"),
                      ("decision", None), ("tpc_finish", "first"), ("tpc_finish", "second")]
    for name in ("first", "second"):
        assert life(trace, f"on-{name}") == [("opened", ""), ("joined", ""),
                                              ("vote", "two-phase"), ("ended", "committed")]
        statements = sent(trace, f"on-{name}")
        prepare = [s for s in statements if s.startswith("PREPARE TRANSACTION 'mother:")]
        finish = [s for s in statements if s.startswith("COMMIT PREPARED 'mother:")]
        assert len(prepare) == 1 and len(finish) == 1
        assert statements.index(prepare[0]) < statements.index(finish[0])
    # the decider's COMMIT PREPARED is sent in the Decision's vote, inside its phase
    decision = next(e for e in trace.events if isinstance(e, PhaseEvent) and e.phase == "decision")
    (decided,) = [t for t in trips(trace, "on-first")
                  if t.statements[-1].sql.startswith("COMMIT PREPARED")]
    assert decision.start <= decided.start and decided.seq < decision.seq
    # the commit log's row rides with the decider's PREPARE
    (prepared,) = [t for t in trips(trace, "on-first")
                   if t.statements[-1].sql.startswith("PREPARE TRANSACTION")]
    assert prepared.statements[0].sql.startswith('INSERT INTO "mother_commit_log"')


def test_a_failing_vote_is_reported_and_both_roll_back(two_pg, request):
    add_deferred_table(two_pg[1], request)
    with events.capture() as trace:
        session = write_both(two_pg)[1]
        session.oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
        with pytest.raises(Exception, match="(?i)foreign key"):
            transaction.commit()
        transaction.abort()
    votes = [e for e in trace.events if isinstance(e, PhaseEvent) and e.phase == "tpc_vote"]
    failed = [e for e in votes if e.error is not None]
    assert len(failed) == 1 and "foreign key" in str(failed[0].error).lower()
    (prepare,) = [t for t in trips(trace, "on-second")
                  if t.statements[-1].sql.startswith("PREPARE TRANSACTION")]
    assert prepare.error is not None
    aborts = [e.database for e in trace.events if isinstance(e, PhaseEvent)
              and e.phase == "tpc_abort"]
    assert aborts == ["first", "second"]
    assert any(s.startswith("ROLLBACK PREPARED 'mother:") for s in sent(trace, "on-first"))
    for name in ("first", "second"):
        assert life(trace, f"on-{name}")[-1] == ("ended", "rolled back")
    assert not any(e.phase in ("decision", "tpc_finish") for e in trace.events
                   if isinstance(e, PhaseEvent))


def test_a_raising_listener_does_not_break_a_commit(two_pg, caplog):
    def broken(event):
        raise RuntimeError("listener bug")

    with events.listening(broken):
        write_both(two_pg)
        transaction.commit()
    for database in two_pg:
        with mother.MotherSession(database=database.name) as session:
            assert session.ov_query("SELECT COUNT(*) FROM stars WHERE star_name = 'both'") == 1
    assert any(r.name == "mother.events" and r.exc_info for r in caplog.records)


def test_each_threads_trace_holds_only_its_own_sessions_in_order(db):
    mark = db.dialect.placeholder("n")
    results: dict[int, events.Trace] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()  # SQLite has one writer at a time: each thread waits its turn

    def work(number: int) -> None:
        try:
            with events.capture() as trace:
                for step in range(5):
                    with lock, mother.MotherSession(f"t{number}-{step}") as session:
                        session.oc_query(f"INSERT INTO stars (star_name) VALUES ({mark})",
                                         {"n": f"{number}-{step}"})
            results[number] = trace
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for number, trace in results.items():
        # (the pool's own round trips at a checkin belong to no session)
        names = {e.session for e in trace.events if isinstance(e, (RoundTrip, SessionEvent))}
        assert names - {None} == {f"t{number}-{step}" for step in range(5)}
        assert {e.thread for e in trace.events} == {trace.events[0].thread}
        seqs = [e.seq for e in trace.events]
        assert seqs == sorted(seqs)
        inserts = [s.params["n"] for t in trips(trace) for s in t.statements
                   if s.sql.startswith("INSERT")]
        assert inserts == [f"{number}-{step}" for step in range(5)]


def test_describe_gives_one_line_per_event_without_values():
    status = PoolStatus("limited", 1, 0, 1, 0, 1, 2)
    lines = [events.describe(event) for event in (
        RoundTrip("db", "s", (Statement("BEGIN", None, None),
                              Statement("SELECT %(a)s\n  FROM t", {"a": "secret"}, 1)),
                  0.0, 0.0015, None, 1, 1),
        SessionEvent("db", "s", "vote", "two-phase", 2, 1),
        PhaseEvent(None, None, "decision", 0.0, 0.002, RuntimeError("no"), 3, 1),
        PoolEvent("db", "checkin", status, 4, 1))]
    assert lines == ["db [s] 1.50 ms: BEGIN; SELECT %(a)s FROM t",
                     "db [s] session vote two-phase",
                     "- [-] phase decision 2.00 ms  FAILED: no",
                     "db pool checkin: " + status.describe()]


def test_a_connection_back_in_the_pool_is_no_longer_the_sessions(db):
    with mother.MotherSession("before") as session:
        session.oc_query("DELETE FROM stars")
    with events.capture() as trace:
        db.refresh_schema()  # a pool connection, the one the session gave back
    assert trips(trace) and all(t.session is None for t in trips(trace))
