"""mother.pyramid.tracing: real traces of real sessions, arranged for reading."""

from __future__ import annotations

import transaction

import mother
from mother import events, tm
from mother.pyramid.tracing import REPEAT_THRESHOLD, is_control, shape, summarize
from tests.support.replicas import Replicated


def test_statements_that_differ_only_in_their_values_have_one_shape() -> None:
    assert (shape("SELECT * FROM t WHERE a = 3 AND b = 'x''y'")
            == "SELECT * FROM t WHERE a = ? AND b = ?")
    assert shape("SELECT *\n  FROM t WHERE a = %(a)s") == shape("SELECT * FROM t WHERE a = :a")
    assert shape("SELECT x1 FROM t2 WHERE c = $1") == "SELECT x1 FROM t2 WHERE c = ?"
    assert shape("SELECT a FROM t WHERE b = 1") != shape("SELECT a FROM u WHERE b = 1")
    assert all(is_control(sql) for sql in ("BEGIN", "commit", "PREPARE TRANSACTION 'x'",
                                           "SAVEPOINT s", "ROLLBACK PREPARED 'x'"))
    assert not is_control("SELECT begin_date FROM t")


def select_each_star(session: mother.Session, times: int) -> None:
    mark = session.database.dialect.placeholder("id")
    for number in range(times):
        session.mr_query(f"SELECT star_name FROM stars WHERE star_id = {mark}", {"id": number})


def test_a_shape_sent_in_threshold_round_trips_is_a_repeat(db: mother.Database) -> None:
    with mother.MotherSession("below") as session, events.capture() as trace:
        select_each_star(session, REPEAT_THRESHOLD - 1)
    assert summarize(trace.events).repeats == []
    with mother.MotherSession("at") as session, events.capture() as trace:
        select_each_star(session, REPEAT_THRESHOLD)
    repeats = summarize(trace.events).repeats
    assert [(r.shape, r.database, r.count) for r in repeats] == [
        ("SELECT star_name FROM stars WHERE star_id = ?", "default", REPEAT_THRESHOLD)]
    assert summarize(trace.events, repeat_threshold=REPEAT_THRESHOLD + 1).repeats == []


def test_a_batch_sent_in_one_round_trip_counts_once(pgdb: mother.Database) -> None:
    with mother.MotherSession("batch") as session, events.capture() as trace:
        session.mq_query("INSERT INTO stars (star_name) VALUES (%(n)s)",
                         [{"n": str(n)} for n in range(2 * REPEAT_THRESHOLD)])
    summary = summarize(trace.events)
    assert any(isinstance(line.params, list) and len(line.params) == 2 * REPEAT_THRESHOLD
               for line in summary.lines)
    assert summary.repeats == []


def test_two_sessions_of_one_transaction_with_their_votes_and_endings(
        db: mother.Database, dsn: str, kind: str, pg_dsns: list[str], tmp_path) -> None:
    other_dsn = pg_dsns[1] if kind == "postgresql" else f"sqlite:///{tmp_path / 'other.db'}"
    other = mother.init_mother(dsn=other_dsn, name="other", recover_interval=None)
    mother.tutorial.create(other)
    manager = transaction.TransactionManager(explicit=True)
    with events.capture() as trace:
        manager.begin()
        first = tm.current_session(transaction_manager=manager)
        first.name = "renamed first"  # as mother.pyramid names a request's session
        first.oc_query("INSERT INTO stars (star_name) VALUES ('a')")
        tm.current_session(database="other", transaction_manager=manager).oc_query(
            "INSERT INTO stars (star_name) VALUES ('b')")
        manager.commit()
    summary = summarize(trace.events)
    vote = "two-phase" if kind == "postgresql" else "one-phase"
    assert [(s.name, s.database, s.vote, s.outcome) for s in summary.sessions] == [
        ("renamed first", "default", vote, "committed"),
        (summary.sessions[1].name, "other", vote, "committed")]
    assert summary.outcome == "committed" and summary.databases[:2] == ["default", "other"]
    phases = [(line.database, line.text) for line in summary.phases if line.database == "other"]
    assert [phase for _, phase in phases] == ["tpc_begin", "commit", "tpc_vote", "tpc_finish"]
    assert set(summary.pools) == {"default", "other"}
    assert all(status.in_use == 0 for status in summary.pools.values())


def test_a_failed_statement_and_the_rollback(db: mother.Database) -> None:
    manager = transaction.TransactionManager(explicit=True)
    with events.capture() as trace:
        manager.begin()
        session = tm.current_session(transaction_manager=manager)
        session.oc_query("INSERT INTO stars (star_name) VALUES ('lost')")
        try:
            session.oc_query("INSERT INTO no_such_table VALUES (1)")
        except Exception:
            manager.abort()
    summary = summarize(trace.events)
    assert summary.outcome == "rolled back"
    failed = [line for line in summary.lines if line.error]
    assert len(failed) == 1 and "no_such_table" in failed[0].text


def test_a_replica_pool_is_shown_beside_the_primary_pool(replicas: Replicated) -> None:
    database = mother.init_mother(**replicas.settings(replicas=[replicas.dsn(replicas.normal)]))
    with events.capture() as trace:
        with mother.MotherSession(database=database, readonly=True) as reader:
            assert reader.replica is not None
            reader.or_query("SELECT 1 AS one")
        with mother.MotherSession(database=database) as writer:
            writer.or_query("SELECT 1 AS one")
    summary = summarize(trace.events)
    replica = f"127.0.0.1:{replicas.normal.port}"
    assert set(summary.pools) == {database.name, f"{database.name} (replica {replica})"}
    assert all(status.in_use == 0 for status in summary.pools.values())
    moves = [line.text.removeprefix(f"replica {replica} ").split(":")[0]
             for line in summary.lines
             if line.kind == "pool" and line.text.startswith(f"replica {replica} ")]
    assert moves[-2:] == ["checkout", "checkin"]  # (after a connect, when it opened one)
