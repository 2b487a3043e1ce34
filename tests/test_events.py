"""The event stream: listeners, traces per context, and what sessions report on both
databases (every round trip, the session's life, the transaction's phases, the pool)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from mother import ArgumentError, events
from mother.events import PhaseEvent, PoolEvent, RoundTrip, SessionEvent, Statement


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
    import mother

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
    from mother.dialects import PoolStatus

    status = PoolStatus("limited", 1, 0, 1, 0, 1, 2)
    with events.capture() as trace:
        events.pool_event("db", "checkout", status)
    (event,) = trace.events
    assert isinstance(event, PoolEvent) and event.status is status
