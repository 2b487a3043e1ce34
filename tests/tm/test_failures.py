"""Every order of failure of a two-database commit: first, between, last; in each phase.

Two dbmother branches (PostgreSQL + PostgreSQL, and PostgreSQL + SQLite) and one
foreign resource placed by its sort key before, between or after them. The rule
checked each time, as the caller sees it: ``transaction.commit()`` returned ⇒
the rows are in both databases; it raised ⇒ in neither (or it raised
CommitOutcomeUnknownError); never anything left prepared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import transaction

import mother
from mother import MO_SAVE, MotherSession, RolledBackError
from mother.tm import join, recover
from mother.tm.datamanager import DECISION_KEY, TransactionState
from tests.support.classes import ClsPlanets, ClsStars
from tests.support.databases import count
from tests.support.pooler import server_pid, terminate
from tests.support.tm import (
    Boom,
    Foreign,
    Observer,
    add_deferred_table,
    boom,
    prepared,
    second_database,
)
from tools.rtproxy import RoundTripProxy

pytestmark = [pytest.mark.usefixtures("clean_transaction"), pytest.mark.timeout(60)]
PAIRS = ("postgresql+postgresql", "postgresql+sqlite")


@pytest.fixture(params=PAIRS)
def pair(request: pytest.FixtureRequest, pgdb: mother.Database, tmp_path: Path
         ) -> tuple[mother.Database, mother.Database]:
    kind = request.param.split("+")[1]
    return pgdb, second_database(kind, request, tmp_path)


def dsns(pair: tuple[mother.Database, mother.Database]) -> list[str]:
    return [db.settings.dsn for db in pair if db.dialect.name == "postgresql"]


def write_both(tag: str = "x", connected: bool = False) -> tuple[MotherSession, MotherSession]:
    """Two sessions that wrote a star, still pending; with ``connected`` each transaction
    has run on its connection (a read), so that the votes send their writes at once."""
    s1, s2 = MotherSession("one"), MotherSession("two", database="second")
    for s in (s1, s2):
        join(s)
        if connected:
            s.mr_query("SELECT 1 AS x")
        ClsStars({"star_name": tag}, MO_SAVE, session=s)
    return s1, s2


def key_at(position: str, sessions: tuple[MotherSession, MotherSession]) -> str:
    """A sort key before, between or after the two dbmother branches."""
    keys = sorted(s.manager.sortKey() for s in sessions)
    return {"first": "!first", "between": keys[0] + "\0", "last": keys[1] + "\0"}[position]


def outcome(pair: tuple[mother.Database, mother.Database]) -> tuple[int, int]:
    return count(pair[0], "stars"), count(pair[1], "stars")


def nothing_prepared(pair: tuple[mother.Database, mother.Database]) -> bool:
    return all(prepared(dsn) == [] for dsn in dsns(pair))


def assert_atomic(pair: tuple[mother.Database, mother.Database], committed: bool) -> None:
    assert outcome(pair) == ((1, 1) if committed else (0, 0))
    assert nothing_prepared(pair)
    assert pair[0].status().in_use == 0 and pair[1].status().in_use == 0


def kill(session: MotherSession) -> Callable[[], None]:
    """An action terminating ``session``'s PostgreSQL backend from another connection."""
    pid = server_pid(session)
    return lambda: terminate(pid)


# -- a foreign resource failing in each phase, at each position ---------------------------------
@pytest.mark.parametrize("position", ["first", "between", "last"])
@pytest.mark.parametrize("phase", ["tpc_begin", "commit", "tpc_vote"])
def test_a_foreign_failure_before_the_decision_rolls_back_everything(
        pair, position: str, phase: str) -> None:
    sessions = write_both()
    foreign = Foreign(key_at(position, sessions), phase, boom)
    transaction.get().join(foreign)
    with pytest.raises(Boom):
        transaction.commit()
    transaction.abort()
    assert_atomic(pair, committed=False)
    assert all(s.closed for s in sessions)


@pytest.mark.parametrize("position", ["first", "between", "last"])
def test_a_foreign_finish_failing_leaves_the_decided_transaction_committed(
        pair, position: str, caplog: pytest.LogCaptureFixture) -> None:
    sessions = write_both()
    transaction.get().join(Foreign(key_at(position, sessions), "tpc_finish", boom))
    with pytest.raises(Boom):  # the foreign resource's own failure is reported
        transaction.commit()
    transaction.abort()
    # the decision was durable before any resource finished: dbmother rolls forward
    assert_atomic(pair, committed=True)


def _decisions(database: mother.Database, global_id: str) -> int:
    try:
        return count(database, "mother_commit_log",
                     f"WHERE global_id = '{global_id}' AND outcome = 'commit'")
    except Exception:  # no log in that database
        return 0


def test_the_decision_is_durable_before_a_resource_sorted_first_finishes(pair) -> None:
    write_both()
    global_id = TransactionState.of(transaction.get()).global_id
    seen: list[int] = []

    def look() -> None:  # what a ZODB sorted before dbmother sees at its tpc_finish
        seen.append(_decisions(pair[0], global_id) + _decisions(pair[1], global_id))

    transaction.get().join(Foreign("!first", "tpc_finish", look))
    transaction.commit()
    assert seen == [1]
    assert_atomic(pair, committed=True)


# -- the databases failing late ------------------------------------------------------------------
@pytest.mark.parametrize("failing", [0, 1])
def test_a_deferred_constraint_failing_at_prepare_or_commit_rolls_back_both(
        pair, failing: int, request: pytest.FixtureRequest) -> None:
    add_deferred_table(pair[failing], request)
    sessions = write_both()
    sessions[failing].oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
    with pytest.raises(Exception) as raised:
        transaction.commit()
    assert "foreign key" in str(raised.value).lower() or "FOREIGN KEY" in str(raised.value)
    transaction.abort()
    assert_atomic(pair, committed=False)


@pytest.mark.parametrize("connected", [False, True], ids=["in-turn", "at-once"])
@pytest.mark.parametrize("failing", [0, 1])
def test_a_pending_write_refused_at_commit_rolls_back_both(pair, failing: int,
                                                           connected: bool) -> None:
    sessions = write_both(connected=connected)
    # pending, so written with the vote's PREPARE (in tpc_begin where the database
    # cannot prepare), where its foreign key is refused
    sessions[failing].persist(ClsPlanets({"star_id": 999, "planet_name": "orphan"},
                                         session=sessions[failing]))
    with pytest.raises(Exception, match="(?i)foreign key"):
        transaction.commit()
    transaction.abort()
    assert_atomic(pair, committed=False)


def test_after_a_refused_write_in_the_first_vote_the_other_branch_is_sent_nothing(
        pgdb: mother.Database, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    second = second_database("postgresql", request, tmp_path)
    first, other = write_both()
    first.persist(ClsPlanets({"star_id": 999, "planet_name": "orphan"}, session=first))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        transaction.commit()
    transaction.abort()
    assert other.batches == 0 and other.statements == 0  # its writes were never sent
    assert_atomic((pgdb, second), committed=False)


def test_a_caught_statement_error_is_never_reported_committed(pair) -> None:
    s1, s2 = write_both()
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # the application catches it
        s1.oc_query("INSERT INTO planets (star_id, planet_name) VALUES (999, 'orphan')")
    with pytest.raises(RolledBackError):
        transaction.commit()
    transaction.abort()
    assert_atomic(pair, committed=False)


def test_a_read_that_writes_is_prepared_like_any_write(pair, request) -> None:
    first, second = pair
    add_deferred_table(first, request)
    with psycopg.connect(first.settings.dsn, autocommit=True) as conn:
        conn.execute("CREATE OR REPLACE FUNCTION mother_sneaky() RETURNS int LANGUAGE sql AS "
                     "$$ INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999) "
                     "RETURNING 1 $$")
    reader, writer = MotherSession("reader"), MotherSession("writer", database="second")
    join(reader), join(writer)
    assert reader.ov_query("SELECT mother_sneaky()") == 1  # looks like a read
    ClsStars({"star_name": "w"}, MO_SAVE, session=writer)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # at its PREPARE, not after
        transaction.commit()
    transaction.abort()
    assert count(second, "stars") == 0 and nothing_prepared(pair)


def _listening(dsn: str) -> tuple[psycopg.Connection, list[str]]:
    """A connection listening on ``mother_test``, and the payloads it has received."""
    listener = psycopg.connect(dsn, autocommit=True)
    received: list[str] = []
    listener.add_notify_handler(lambda notify: received.append(notify.payload))
    listener.execute("LISTEN mother_test")
    return listener, received


def _heard(listener: psycopg.Connection, received: list[str], seconds: float) -> list[str]:
    """What the listener has received after ``seconds`` (a round trip reads it in)."""
    deadline = time.monotonic() + seconds
    while not received and time.monotonic() < deadline:
        listener.execute("SELECT 1")
        time.sleep(0.05)
    return received


def _reader_and_writer(tag: str) -> tuple[MotherSession, MotherSession]:
    """A session that only reads (by the server's word: NOTIFY takes no transaction id),
    with a NOTIFY; another that writes a star in the second database."""
    reader, writer = MotherSession("reader"), MotherSession("writer", database="second")
    join(reader), join(writer)
    reader.ov_query("SELECT pg_notify('mother_test', %s)", (tag,))
    ClsStars({"star_name": tag}, MO_SAVE, session=writer)
    return reader, writer


@pytest.mark.parametrize("position", ["first", "between", "last"])
def test_a_reading_sessions_notify_follows_the_transactions_outcome(
        pair, position: str, pg_databases: list[str]) -> None:
    # straight to the server: a LISTEN through PgBouncer's transaction pooling hears nothing
    listener, received = _listening(pg_databases[0])
    try:
        transaction.get().join(Foreign(key_at(position, _reader_and_writer("aborted")),
                                       "tpc_vote", boom))
        with pytest.raises(Boom):
            transaction.commit()
        transaction.abort()
        assert _heard(listener, received, 0.5) == []  # the transaction did not commit
        _reader_and_writer("committed")
        transaction.commit()
        assert _heard(listener, received, 5) == ["committed"]
        assert count(pair[1], "stars") == 1
    finally:
        listener.close()


def test_a_reading_sessions_advisory_lock_is_held_until_the_decision(
        pair, pg_databases: list[str]) -> None:
    reader, writer = MotherSession("reader"), MotherSession("writer", database="second")
    join(reader), join(writer)
    reader.ov_query("SELECT pg_advisory_xact_lock(4243)")
    ClsStars({"star_name": "w"}, MO_SAVE, session=writer)
    free: list[bool] = []

    def try_lock() -> None:
        # a lock of its own statement only (autocommit), straight to the server: none
        # left behind on a connection PgBouncer keeps
        with psycopg.connect(pg_databases[0], autocommit=True) as other:
            got = other.execute("SELECT pg_try_advisory_xact_lock(4243)").fetchone()[0]
            free.append(got)

    # the last resource's vote: every dbmother branch has had its tpc_begin
    transaction.get().join(Foreign(key_at("last", (reader, writer)), "tpc_vote", try_lock))
    transaction.commit()
    assert free == [False]
    try_lock()
    assert free == [False, True]
    assert count(pair[1], "stars") == 1 and nothing_prepared(pair)


# -- connections lost at each point --------------------------------------------------------------
def postgres_indices(pair: tuple[mother.Database, mother.Database]) -> list[int]:
    return [i for i, db in enumerate(pair) if db.dialect.name == "postgresql"]


def reset(pair: tuple[mother.Database, mother.Database]) -> None:
    for db in pair:
        with MotherSession(database=db) as s:
            s.oc_query("DELETE FROM stars")


@pytest.mark.parametrize("position", ["first", "between", "last"])
def test_a_connection_lost_during_the_votes(pair, position: str) -> None:
    for victim in postgres_indices(pair):
        sessions = write_both()
        transaction.get().join(Foreign(key_at(position, sessions), "tpc_vote",
                                       kill(sessions[victim])))
        if position == "first":  # before any PREPARE: the branch is gone, so is everything
            with pytest.raises(psycopg.OperationalError):
                transaction.commit()
            transaction.abort()
            assert_atomic(pair, committed=False)
        else:  # after the PREPAREs: a prepared branch outlives its connection
            transaction.commit()
            assert_atomic(pair, committed=True)
        reset(pair)


def test_a_connection_lost_after_the_decision_is_still_committed(pair) -> None:
    for victim in postgres_indices(pair):
        sessions = write_both()
        transaction.get().join(Foreign("!first", "tpc_finish", kill(sessions[victim])))
        transaction.commit()
        assert_atomic(pair, committed=True)
        reset(pair)


def test_one_branch_beside_a_foreign_resource_commits_after_its_vote(pgdb) -> None:
    s = MotherSession("alone")
    join(s)
    ClsStars({"star_name": "solo"}, MO_SAVE, session=s)
    foreign = Foreign("~zzz", "tpc_vote", kill(s))  # its connection dies before the decision
    transaction.get().join(foreign)
    with pytest.raises(mother.MotherError):
        transaction.commit()
    transaction.abort()
    assert count(pgdb, "stars") == 0 and prepared(pgdb.settings.dsn) == []


def test_the_decision_votes_after_a_resource_sorted_above_every_plain_key(pair) -> None:
    sessions = write_both()
    # above the Decision's key as a plain string (its second character is above "m"):
    # the Decision must still vote after it
    late = Foreign("\U0010ffff\U0010ffff~", "tpc_vote", boom)
    transaction.get().join(late)
    with pytest.raises(Boom):
        transaction.commit()
    transaction.abort()
    assert late.calls[:3] == ["tpc_begin", "commit", "tpc_vote"]
    assert_atomic(pair, committed=False)  # nothing was decided before its vote failed
    assert all(s.closed for s in sessions)


def test_the_decision_key_sorts_after_every_string() -> None:
    keys = ["\U0010ffff~", "\U0010ffff" * 3, "~sqlalchemy:1", DECISION_KEY, "", "mother:x"]
    for turn in range(len(keys)):
        shuffled = keys[turn:] + keys[:turn]
        assert sorted(shuffled)[-1] is DECISION_KEY
        assert max(shuffled) is DECISION_KEY


def test_a_commit_last_resource_commits_after_every_other_vote(pair) -> None:
    sessions = write_both()
    # a zope.sqlalchemy one-phase resource sorts '~sqlalchemy:…'; it votes no
    transaction.get().join(Foreign("~sqlalchemy:1", "tpc_vote", boom))
    assert max(r.sortKey() for r in transaction.get()._resources) == DECISION_KEY
    with pytest.raises(Boom):
        transaction.commit()
    transaction.abort()
    assert all(s.closed for s in sessions)
    assert_atomic(pair, committed=False)


def test_the_decider_among_one_phase_databases_is_the_last(
        pgdb, tmp_path: Path, request: pytest.FixtureRequest,
        caplog: pytest.LogCaptureFixture) -> None:
    lite_a = mother.init_mother(dsn=f"sqlite:///{tmp_path / 'a.db'}", name="lite_a")
    lite_b = mother.init_mother(dsn=f"sqlite:///{tmp_path / 'b.db'}", name="lite_b")
    for db in (lite_a, lite_b):
        mother.tutorial.create(db)
    add_deferred_table(lite_b, request)
    sessions = [MotherSession(database=name) for name in ("default", "lite_a", "lite_b")]
    for s in sessions:
        join(s)
        ClsStars({"star_name": "x"}, MO_SAVE, session=s)
    sessions[2].oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
    state = TransactionState.of(transaction.get())
    observer = Observer(lambda: state.decider)  # votes once the votes are planned
    transaction.get().join(observer)
    with caplog.at_level(logging.WARNING, logger="mother.tm"), pytest.raises(
            Exception, match="(?i)foreign key"):
        transaction.commit()
    transaction.abort()
    assert observer.seen is not None and observer.seen.session is sessions[2]
    # the last one failed: no decision, so nothing can ever commit the prepared branch
    assert count(pgdb, "stars") == 0 and prepared(pgdb.settings.dsn) == []
    assert count(lite_b, "stars") == 0
    assert "atomicity" in caplog.text


# -- recovery running at the same time ------------------------------------------------------------
@pytest.fixture
def two(pgdb: mother.Database, request: pytest.FixtureRequest, tmp_path: Path
        ) -> tuple[mother.Database, mother.Database]:
    return pgdb, second_database("postgresql", request, tmp_path)


def test_recovery_between_the_prepares_and_the_decision_wins_and_commit_raises(two) -> None:
    write_both()
    transaction.get().join(Foreign("~recovery", "tpc_vote",
                                   lambda: recover(list(two), min_age=0)))
    with pytest.raises(RolledBackError, match="rolled back by recovery"):
        transaction.commit()
    transaction.abort()
    assert_atomic(two, committed=False)


def test_recovery_waits_for_a_decider_that_holds_its_key(pgdb, tmp_path, request) -> None:
    lite = second_database("sqlite", request, tmp_path)
    write_both()
    reports: list[Any] = []
    # the SQLite decider holds the write lock until it commits with the decision
    transaction.get().join(Foreign("~recovery", "tpc_vote",
                                   lambda: reports.append(recover([pgdb, lite], min_age=0))))
    transaction.commit()
    assert not reports[0].committed and not reports[0].rolled_back
    assert_atomic((pgdb, lite), committed=True)


def test_recovery_after_the_decision_commits_what_the_process_has_not_yet(pair) -> None:
    write_both()
    reports: list[Any] = []
    transaction.get().join(Foreign("!first", "tpc_finish",
                                   lambda: reports.append(recover(list(pair), min_age=0))))
    transaction.commit()  # its own COMMIT PREPARED then finds nothing: resolved already
    assert_atomic(pair, committed=True)
    assert len(reports[0].committed) == 1 and not reports[0].failed


def test_two_recoveries_at_once_agree(two) -> None:
    write_both()
    reports: list[Any] = []
    errors: list[BaseException] = []

    def recovering() -> None:
        try:
            reports.append(recover(list(two), min_age=0))
        except BaseException as error:  # reported below
            errors.append(error)

    def race() -> None:
        threads = [threading.Thread(target=recovering) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    transaction.get().join(Foreign("~recovery", "tpc_vote", race))
    with pytest.raises(RolledBackError):
        transaction.commit()
    transaction.abort()
    assert errors == [] and len(reports) == 2
    assert_atomic(two, committed=False)


def test_a_recovery_that_died_halfway_is_finished_by_the_next(two) -> None:
    sessions = write_both()

    def die_after_rolling_back_the_decider() -> None:
        # the first step a recovery takes for an undecided transaction, and no more
        decider = TransactionState.of(transaction.get()).decider
        assert decider is not None and decider.gid is not None
        decider.database.dialect.finish_prepared(None, decider.gid, False)

    transaction.get().join(Foreign("~recovery", "tpc_vote", die_after_rolling_back_the_decider))
    with pytest.raises(RolledBackError):
        transaction.commit()
    transaction.abort()
    recover(list(two), min_age=0)
    assert_atomic(two, committed=False)
    assert all(s.closed for s in sessions)


def test_a_one_phase_decider_whose_commit_outcome_is_unknown_leaves_the_branches_to_recovery(
        pgdb: mother.Database, pg_dsns: list[str]) -> None:
    """The second database cannot prepare (``twophase = false``), so its session decides,
    committing in one phase with the decision. Its COMMIT runs but the reply is cut, and
    the server is out of reach when dbmother asks what became of it: the outcome is
    unknown, so the prepared branch must be left for recovery, never rolled back."""
    params = psycopg.conninfo.conninfo_to_dict(pg_dsns[1])
    with RoundTripProxy(params.get("host") or "127.0.0.1",
                        int(params.get("port") or 5432)) as proxy:
        params.update(host=proxy.host, port=str(proxy.port))
        second = mother.init_mother(dsn=psycopg.conninfo.make_conninfo(**params),
                                    name="second", twophase=False, pool_min=1,
                                    pool_timeout=5, recover_interval=None)
        mother.tutorial.create(second)
        write_both("warm")
        transaction.commit()  # the commit logs and the databases' ids are made
        proxy.cut_after = b"COMMIT"
        proxy.on_close = lambda link: setattr(proxy, "refusing", True)
        write_both("cut")
        with pytest.raises(mother.CommitOutcomeUnknownError):
            transaction.commit()
        transaction.abort()
    direct = mother.init_mother(dsn=pg_dsns[1], name="second-direct", twophase=False,
                                recover_interval=None)
    [gid] = prepared(pgdb.settings.dsn)  # left prepared: its decider may have committed
    assert count(direct, "stars", "WHERE star_name = 'cut'") == 1  # it did
    report = recover([pgdb, direct], min_age=0)
    assert [branch.gid for branch in report.committed] == [gid]
    assert count(pgdb, "stars", "WHERE star_name = 'cut'") == 1  # atomic after recovery
    assert prepared(pgdb.settings.dsn) == []
