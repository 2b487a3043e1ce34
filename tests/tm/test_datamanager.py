"""The data manager: interfaces, commit and abort of one session, one-phase cases, failure paths."""

from __future__ import annotations

import gc
import sqlite3
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import transaction
from transaction.interfaces import IDataManager, IRetryDataManager, ISavepointDataManager
from zope.interface.verify import verifyObject

import mother
from mother import MO_SAVE, MotherSession, SessionClosedError, TransactionManagedError
from mother.tm import join
from mother.tm.datamanager import DONE, ONE_PHASE, PREPARE, READ_ONLY
from tests.support.classes import ClsStars
from tests.support.databases import count
from tests.support.tm import add_deferred_table, prepared, second_database

# the thread's transaction is aborted before and after every test (conftest.py)
pytestmark = pytest.mark.usefixtures("clean_transaction")


def test_data_manager_provides_the_three_interfaces(db: mother.Database) -> None:
    dm = join(MotherSession())
    for interface in (IDataManager, ISavepointDataManager, IRetryDataManager):
        assert verifyObject(interface, dm)


def test_transaction_commit_commits_the_session_and_ends_it(db: mother.Database) -> None:
    s = MotherSession()
    dm = join(s)
    ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
    s.persist(ClsStars({"star_name": "Vega"}, session=s))  # pending: flushed in tpc_begin
    assert count(db, "stars") == 0
    transaction.commit()
    assert count(db, "stars") == 2
    assert s.closed and s.manager is None and dm.phase == DONE
    assert db.status().in_use == 0


def test_transaction_abort_rolls_back_restores_objects_and_ends_the_session(
        db: mother.Database) -> None:
    with MotherSession() as s:
        star = ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
    s2 = MotherSession()
    join(s2)
    mine = s2.get(ClsStars, star.getField("star_id"))
    mine.setField("star_name", "Nova")
    ClsStars({"star_name": "Vega"}, MO_SAVE, session=s2)
    transaction.abort()
    assert count(db, "stars") == 1 and count(db, "stars", "WHERE star_name = 'Sun'") == 1
    assert mine.getField("star_name") == "Sun"
    assert s2.closed and db.status().in_use == 0


def test_joining_twice_gives_the_same_data_manager(db: mother.Database) -> None:
    s = MotherSession()
    assert join(s) is join(s)
    assert len([r for r in transaction.get()._resources
                if getattr(r, "session", None) is s]) == 1


def test_a_session_joined_elsewhere_cannot_join_another_transaction(db: mother.Database) -> None:
    s = MotherSession()
    join(s)
    other = transaction.TransactionManager()
    other.begin()
    with pytest.raises(TransactionManagedError):
        join(s, other)
    other.abort()


def test_a_closed_session_cannot_join(db: mother.Database) -> None:
    s = MotherSession()
    s.endSession()
    with pytest.raises(SessionClosedError):
        join(s)


@pytest.mark.parametrize("method", ["commit", "rollback", "endSession", "close"])
def test_direct_outcome_calls_on_a_joined_session_raise(db: mother.Database, method: str) -> None:
    s = MotherSession()
    join(s)
    ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
    with pytest.raises(TransactionManagedError, match="transaction"):
        getattr(s, method)()
    transaction.commit()
    assert count(db, "stars") == 1


def test_the_only_writer_commits_in_one_phase(db: mother.Database) -> None:
    s = MotherSession()
    dm = join(s)
    ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
    transaction.commit()
    assert dm.mode == ONE_PHASE
    assert count(db, "stars") == 1


def test_the_only_resource_commits_in_tpc_begin_with_its_flush(db: mother.Database) -> None:
    s = MotherSession()
    dm = join(s)
    s.persist(ClsStars({"star_name": "Sun"}, session=s))
    txn = transaction.get()
    batches = s.batches
    dm.tpc_begin(txn)  # the phases driven one by one, as transaction.commit() does
    assert count(db, "stars") == 1  # committed already: nothing else can vote after it
    assert s.batches == batches + 1  # the flush and its COMMIT in one batch
    assert (dm.mode, dm.phase) == (ONE_PHASE, "committed")
    dm.commit(txn)
    dm.tpc_vote(txn)
    dm.tpc_finish(txn)
    assert s.closed and dm.phase == DONE and db.status().in_use == 0


def test_with_another_resource_tpc_begin_writes_only_where_it_cannot_prepare(
        db: mother.Database, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    second_database(kind, request, tmp_path)
    s, other = MotherSession("s"), MotherSession("other", database="second")
    dm = join(s)
    join(other)
    s.persist(ClsStars({"star_name": "Sun"}, session=s))
    batches = s.batches
    dm.tpc_begin(transaction.get())
    assert dm.phase == "ready"
    if db.twophase:  # its writes ride with its PREPARE (or COMMIT), in the vote
        assert s.new and s.batches == batches
    else:  # it commits one-phase after the votes: its writes fail, if they do, now
        assert not s.new and s.batches == batches + 1
    assert count(db, "stars") == 0  # nothing committed
    transaction.abort()
    assert count(db, "stars") == 0 and s.closed


def test_two_writers_each_write_and_prepare_in_one_round_trip(
        pgdb: mother.Database, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    db, second = pgdb, second_database("postgresql", request, tmp_path)
    sessions = [MotherSession("s1"), MotherSession("s2", database="second")]
    managers = [join(s) for s in sessions]
    for s in sessions:
        s.persist(ClsStars({"star_name": s.name}, session=s))
    transaction.commit()
    assert [dm.mode for dm in managers] == [PREPARE, PREPARE]
    # the flush, the decision (in the decider) and the PREPARE: one batch each
    assert [s.batches for s in sessions] == [1, 1]
    assert count(db, "stars") == 1 and count(second, "stars") == 1


def test_a_session_that_only_read_does_not_prepare(
        db: mother.Database, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # the reader uses another database: a SQLite reader would hold the write lock
    second_database(kind, request, tmp_path)
    reader, writer = MotherSession("reader", database="second"), MotherSession("writer")
    dm_reader, dm_writer = join(reader), join(writer)
    assert reader.mr_query("SELECT * FROM stars") == []
    ClsStars({"star_name": "Sun"}, MO_SAVE, session=writer)
    transaction.commit()
    assert (dm_reader.mode, dm_writer.mode) == (READ_ONLY, ONE_PHASE)
    assert reader.closed and writer.closed and count(db, "stars") == 1


def test_a_doomed_transaction_aborts_every_session(
        db: mother.Database, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    second = second_database(kind, request, tmp_path)
    sessions = [MotherSession("s1"), MotherSession("s2", database="second")]
    for s in sessions:
        join(s)
        ClsStars({"star_name": s.name}, MO_SAVE, session=s)
    transaction.doom()
    with pytest.raises(transaction.interfaces.DoomedTransaction):
        transaction.commit()
    transaction.abort()
    assert count(db, "stars") == 0 and count(second, "stars") == 0
    assert all(s.closed for s in sessions) and db.status().in_use == 0


def test_after_a_failed_commit_abort_cleans_up_and_the_next_transaction_works(
        db: mother.Database) -> None:
    """zope.sqlalchemy issue 2: no stale join state after a failed commit."""
    with MotherSession() as s:
        ClsStars({"star_id": 1, "star_name": "Sun"}, MO_SAVE, session=s)
    s = MotherSession()
    dm = join(s)
    s.persist(ClsStars({"star_id": 1, "star_name": "Clash"}, session=s))  # fails in tpc_begin
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        transaction.commit()
    assert s.closed and dm.phase == DONE
    with pytest.raises(transaction.interfaces.TransactionFailedError):
        transaction.commit()
    transaction.abort()
    s2 = MotherSession()
    join(s2)
    ClsStars({"star_id": 2, "star_name": "Vega"}, MO_SAVE, session=s2)
    transaction.commit()
    assert count(db, "stars") == 2 and db.status().in_use == 0


def test_a_failing_one_phase_vote_rolls_back_and_releases_the_connection(
        db: mother.Database, request: pytest.FixtureRequest) -> None:
    add_deferred_table(db, request)
    s = MotherSession()
    join(s)
    ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
    s.oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
    with pytest.raises(Exception, match="(?i)foreign key|violates"):
        transaction.commit()
    transaction.abort()
    assert count(db, "stars") == 0 and count(db, "deferred_child") == 0
    assert s.closed and db.status().in_use == 0


class Translated(mother.MotherError):
    """What the test's translator makes of a foreign-key violation at commit, naming the
    phase (as mother.zope's translate_commit does for transient errors)."""


def test_a_one_phase_commit_failing_in_the_decision_vote_is_translated(
        pgdb: mother.Database, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    db = mother.init_mother(dsn=pgdb.settings.dsn, twophase=False, recover_interval=None)
    add_deferred_table(db, request)
    second = second_database("postgresql", request, tmp_path)

    def translator(error: BaseException, where: str) -> BaseException | None:
        if where != "statement" and isinstance(error, psycopg.errors.ForeignKeyViolation):
            return Translated(where)
        return None

    db.error_translators.append(translator)
    one, two = MotherSession(), MotherSession(database="second")
    for s in (one, two):
        join(s)
        ClsStars({"star_name": s.name}, MO_SAVE, session=s)
    one.oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
    # second prepares; the database that cannot commits in the decision vote, and fails
    with pytest.raises(Translated, match="tpc_vote") as raised:
        transaction.commit()
    assert isinstance(raised.value.__cause__, psycopg.errors.ForeignKeyViolation)
    transaction.abort()
    assert count(db, "stars") == 0 and count(second, "stars") == 0
    with psycopg.connect(second.settings.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_prepared_xacts "
                            "WHERE database = current_database()").fetchone()[0] == 0


def test_a_refused_write_of_a_session_that_cannot_prepare_is_translated_once_in_tpc_begin(
        pgdb: mother.Database, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A session that cannot prepare writes in ``tpc_begin``: a write the database
    refuses there is heard by the translators once, at ``tpc_begin`` (not first as a
    statement's), and the other database is left with nothing, prepared or written."""
    db = mother.init_mother(dsn=pgdb.settings.dsn, twophase=False, recover_interval=None)
    second = second_database("postgresql", request, tmp_path)
    with MotherSession() as first:
        taken = ClsStars({"star_name": "Sun"}, MO_SAVE, session=first).getField("star_id")
    seen: list[tuple[str, str]] = []

    def translator(error: BaseException, where: str) -> BaseException:
        seen.append((where, type(error).__name__))
        return Translated(where)

    db.error_translators.append(translator)
    one, two = MotherSession(), MotherSession(database="second")
    for s in (one, two):
        join(s)
    ClsStars({"star_name": "both or none"}, MO_SAVE, session=two)
    ClsStars({"star_id": taken, "star_name": "Twin"}, MO_SAVE, session=one)
    with pytest.raises(Translated, match="^tpc_begin$") as raised:
        transaction.commit()
    assert isinstance(raised.value.__cause__, psycopg.errors.UniqueViolation)
    assert seen == [("tpc_begin", "UniqueViolation")]
    transaction.abort()
    assert count(db, "stars") == 1 and count(second, "stars") == 0
    assert prepared(second.settings.dsn) == []


def test_a_deferred_insert_that_fails_makes_transaction_commit_fail(db: mother.Database) -> None:
    """An immediate MO_SAVE deferred to the commit's round trip that the database refuses:
    transaction.commit() raises it, nothing of the transaction is written, the session ends."""
    with MotherSession() as s:
        taken = ClsStars({"star_name": "Sun"}, MO_SAVE, session=s).getField("star_id")
    s = MotherSession()
    join(s)
    ClsStars({"star_name": "Vega"}, MO_SAVE, session=s)
    twin = ClsStars({"star_id": taken, "star_name": "Twin"}, MO_SAVE, session=s)
    assert s.new  # both wait for the commit
    with pytest.raises((psycopg.IntegrityError, sqlite3.IntegrityError)) as info:
        transaction.commit()
    assert f"insert of {twin!r}" in " ".join(getattr(info.value, "__notes__", []))
    transaction.abort()
    assert s.closed
    assert count(db, "stars") == 1


@pytest.fixture
def no_cyclic_collection() -> Iterator[None]:
    """The cyclic garbage collector off: what is freed is freed by reference counting."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _joined_objects(session: MotherSession) -> list[weakref.ref[Any]]:
    dm = session.manager
    return [weakref.ref(thing) for thing in (session, session.uow, session.uow.identity, dm,
                                             dm.state, dm.state.resource)]


@pytest.mark.parametrize("outcome", ["commit", "abort"])
@pytest.mark.usefixtures("no_cyclic_collection")
def test_a_finished_transaction_frees_its_session_and_data_manager_at_once(
        db: mother.Database, outcome: str) -> None:
    s = MotherSession()
    join(s)
    star = ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
    s.persist(ClsStars({"star_name": "Vega"}, session=s))
    held = _joined_objects(s)
    getattr(transaction, outcome)()
    del s, star
    assert [ref() for ref in held] == [None] * len(held)


@pytest.mark.usefixtures("no_cyclic_collection")
def test_a_two_phase_commit_frees_its_sessions_and_data_managers_at_once(
        pgdb: mother.Database, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    second_database("postgresql", request, tmp_path)
    held = []
    for database in ("default", "second"):
        s = MotherSession(database=database)
        join(s)
        ClsStars({"star_name": database}, MO_SAVE, session=s)
        held += _joined_objects(s)
    del s
    transaction.commit()
    assert count(pgdb, "stars") == 1
    assert [ref() for ref in held] == [None] * len(held)
