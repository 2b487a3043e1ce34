"""Two-phase commit across databases: PREPARE, shared global id, order, failures, last resources."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
import pytest
import transaction

import mother
from mother import MO_SAVE, MotherSession
from mother.tm import COMMIT_LOG, MotherDataManager, commitlog, join, make_gid, parse_gid
from mother.tm.datamanager import DECISION_KEY, ONE_PHASE, PREPARE, TransactionState
from tests.support.classes import ClsStars
from tests.support.databases import count
from tests.support.pooler import server_pid, terminate
from tests.support.tm import Observer, add_deferred_table, prepared, second_database

# the thread's transaction is aborted before and after every test (conftest.py)
pytestmark = pytest.mark.usefixtures("clean_transaction")


@pytest.fixture
def two(pgdb: mother.Database, request: pytest.FixtureRequest, tmp_path: Path
        ) -> tuple[mother.Database, mother.Database]:
    return pgdb, second_database("postgresql", request, tmp_path)


def _write_both(names: tuple[str, str] = ("a", "b")) -> tuple[MotherSession, MotherSession]:
    # the inserts are sent at once: each branch has written on its connection
    s1 = MotherSession(names[0], defer_writes=False)
    s2 = MotherSession(names[1], database="second", defer_writes=False)
    for s in (s1, s2):
        join(s)
        ClsStars({"star_name": s.name}, MO_SAVE, session=s)
    return s1, s2


def assert_nothing_left(first: mother.Database, second: mother.Database,
                        pg_dsns: list[str]) -> None:
    """No row written, no branch left prepared, every connection back in its pool."""
    assert count(first, "stars") == 0 and count(second, "stars") == 0
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []
    assert first.status().in_use == 0 and second.status().in_use == 0


def to_the_votes(*dms: MotherDataManager) -> Any:
    """Drive the data managers through tpc_begin and commit by hand, as transaction.commit()
    does; the transaction, for the phases that follow."""
    txn = transaction.get()
    for phase in ("tpc_begin", "commit"):
        for dm in dms:
            getattr(dm, phase)(txn)
    return txn


def test_two_databases_prepare_then_commit_with_one_global_id(two, pg_dsns) -> None:
    first, second = two
    s1, s2 = _write_both()
    observer = Observer(lambda: (prepared(pg_dsns[0]), prepared(pg_dsns[1])))
    transaction.get().join(observer)
    txn = transaction.get()
    global_id = TransactionState.of(txn).global_id
    transaction.commit()
    (gid1,), (gid2,) = observer.seen  # during the vote: one prepared branch in each database
    (g1, decider1, n1), (g2, decider2, n2) = parse_gid(gid1), parse_gid(gid2)
    assert g1 == g2 == global_id and decider1 == decider2 == _database_id(first)
    assert (n1, n2) == (0, 1)  # the first branch decides
    assert s1.manager is None and s1.closed and s2.closed
    assert count(first, "stars") == 1 and count(second, "stars") == 1
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []
    # the first branch recorded the decision in its own database
    assert count(first, COMMIT_LOG, f"WHERE global_id = '{global_id}'") == 1


@pytest.mark.parametrize("name", ["é" * 150, "x" * 300, "a:b'c"])
def test_branch_ids_are_valid_whatever_the_session_names(two, pg_dsns, name: str) -> None:
    first, second = two
    _write_both((name, name))  # long, multi-byte, with separators; the same name twice
    s3 = MotherSession(name)
    join(s3)
    ClsStars({"star_name": "third"}, MO_SAVE, session=s3)
    transaction.commit()
    assert count(first, "stars") == 2 and count(second, "stars") == 1
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []


def test_branch_ids_fit_postgresql_and_never_repeat() -> None:
    gids = {make_gid("f" * 32, "abcdef12", n) for n in range(1000)}
    assert len(gids) == 1000 and max(len(g.encode()) for g in gids) < 200
    assert parse_gid(make_gid("f" * 32, "abcdef12", 7)) == ("f" * 32, "abcdef12", 7)
    assert parse_gid("xa-123") is None and parse_gid("mother:short:x:1") is None


def _database_id(database: mother.Database) -> str | None:
    conn = database.dialect.connect()
    try:
        return commitlog.recorded_id(database, conn)
    finally:
        conn.close()


def test_sort_keys_order_branches_by_database_then_join_order(two) -> None:
    dms = [join(MotherSession(name, database=db))
           for db, name in (("second", "a"), ("default", "z"), ("default", "b"))]
    assert sorted(dms, key=lambda dm: dm.sortKey()) == [dms[1], dms[2], dms[0]]
    # the decision resource sorts after every other key, one-phase ones included
    keys = [r.sortKey() for r in transaction.get()._resources]
    assert max(keys) == DECISION_KEY and DECISION_KEY > "~sqlalchemy:1" > max(
        dm.sortKey() for dm in dms)


def test_a_failing_vote_rolls_back_every_prepared_branch(two, pg_dsns, request) -> None:
    first, second = two
    add_deferred_table(second, request)
    s1, s2 = _write_both()
    s2.oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        transaction.commit()
    transaction.abort()
    assert_nothing_left(first, second, pg_dsns)


def test_the_first_vote_prepares_every_branch_at_once(two, pg_dsns) -> None:
    first, second = two
    s1, s2 = _write_both()
    dms = sorted((s1.manager, s2.manager), key=lambda dm: dm.sortKey())
    txn = to_the_votes(*dms)
    dms[0].tpc_vote(txn)
    assert len(prepared(pg_dsns[0])) == len(prepared(pg_dsns[1])) == 1
    assert [dm.phase for dm in dms] == ["prepared", "prepared"]
    dms[1].tpc_vote(txn)  # its PREPARE went out with the first: nothing more to send
    assert len(prepared(pg_dsns[1])) == 1
    TransactionState.of(txn).resource.tpc_vote(txn)  # the decision: the decider commits
    assert [dm.phase for dm in dms] == ["committed", "prepared"]
    for dm in dms:
        dm.tpc_finish(txn)
    assert count(first, "stars") == 1 and count(second, "stars") == 1
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []


def test_a_branch_whose_prepare_failed_raises_in_its_own_vote(two, pg_dsns, request) -> None:
    first, second = two
    add_deferred_table(second, request)
    s1, s2 = _write_both()
    s2.oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
    dm1, dm2 = s1.manager, s2.manager
    txn = to_the_votes(dm1, dm2)
    dm1.tpc_vote(txn)  # its own PREPARE succeeded; the second's failed (deferred FK check)
    assert dm1.phase == "prepared" and prepared(pg_dsns[1]) == []
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        dm2.tpc_vote(txn)
    for dm in (dm1, dm2):
        dm.tpc_abort(txn)
    assert_nothing_left(first, second, pg_dsns)


def test_a_branch_losing_its_server_before_the_votes_aborts_all(two, pg_dsns) -> None:
    first, second = two
    s1, s2 = _write_both()
    terminate(server_pid(s2))
    with pytest.raises(psycopg.OperationalError):
        transaction.commit()  # the first vote prepares both: the second cannot
    transaction.abort()
    assert s1.closed and s2.closed
    assert_nothing_left(first, second, pg_dsns)


def test_a_branch_whose_connection_died_after_its_vote_is_committed_anyway(two, pg_dsns) -> None:
    first, second = two
    s1, s2 = _write_both()
    pid = s2.connection().info.backend_pid

    def kill_second() -> None:
        with psycopg.connect(pg_dsns[0], autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    transaction.get().join(Observer(kill_second))
    # the second's connection died after its PREPARE: its COMMIT PREPARED fails there and
    # is sent again on a new connection (the decision is durable: certain to commit)
    transaction.commit()
    assert s2.closed and second.status().in_use == 0
    assert count(first, "stars") == 1 and count(second, "stars") == 1
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []


def test_sqlite_commits_after_every_vote_and_holds_the_decision(
        two, pg_dsns, tmp_path: Path) -> None:
    first, _ = two
    lite = mother.init_mother(dsn=f"sqlite:///{tmp_path / 'lite.db'}", name="lite")
    mother.tutorial.create(lite)
    pg_session, lite_session = MotherSession("p"), MotherSession("l", database="lite")
    dms = [join(pg_session), join(lite_session)]
    for s in (pg_session, lite_session):
        ClsStars({"star_name": s.name}, MO_SAVE, session=s)
    observer = Observer(lambda: (prepared(pg_dsns[0]), count(lite, "stars")))
    transaction.get().join(observer)
    global_id = TransactionState.of(transaction.get()).global_id
    transaction.commit()
    assert [dm.mode for dm in dms] == [PREPARE, ONE_PHASE]
    # PostgreSQL prepared, and SQLite had not committed, when the later resource voted
    assert len(observer.seen[0]) == 1 and observer.seen[1] == 0
    assert count(first, "stars") == 1 and count(lite, "stars") == 1
    assert count(lite, COMMIT_LOG, f"WHERE global_id = '{global_id}'") == 1


def test_two_sessions_that_cannot_prepare_get_a_warning(
        db: mother.Database, kind: str, request: pytest.FixtureRequest, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    if kind == "postgresql":
        db = mother.init_mother(dsn=db.settings.dsn, twophase=False)
    second = second_database(kind, request, tmp_path, twophase=False) if kind == "postgresql" \
        else second_database(kind, request, tmp_path)
    s1, s2 = MotherSession("x"), MotherSession("y", database="second")
    for s in (s1, s2):
        join(s)
        ClsStars({"star_name": s.name}, MO_SAVE, session=s)
    with caplog.at_level(logging.WARNING, logger="mother.tm"):
        transaction.commit()
    assert "atomicity" in caplog.text
    assert count(db, "stars") == 1 and count(second, "stars") == 1
