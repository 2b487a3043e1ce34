"""The shared ("persistent") connection: autocommit outside transactions, nesting, and
no interleaving of two threads' work."""

from __future__ import annotations

import threading

import pytest

from mother import MO_SAVE, MotherSession, RolledBackError, get_database
from mother.database import Database
from mother.executor import shared as shared_connection
from tests.support.classes import ClsStars
from tests.support.databases import count
from tests.support.tm import add_deferred_table


def ph(db: Database, name: str) -> str:
    return db.dialect.placeholder(name)


def test_each_statement_commits_by_itself(db: Database) -> None:
    ClsStars({"star_name": "auto"}, MO_SAVE)
    assert count(db, "stars") == 1
    shared_connection(db).oc_query("INSERT INTO stars (star_name) VALUES ('raw')")
    assert count(db, "stars") == 2


def test_only_the_outermost_commit_commits(db: Database) -> None:
    star = ClsStars({"star_name": "outer"})
    star.beginTrans()
    star.insert()
    star.beginTrans()
    ClsStars({"star_name": "inner"}, MO_SAVE)
    star.commit()  # inner level: nothing committed yet
    assert count(db, "stars") == 0
    star.commit()  # outermost
    assert count(db, "stars") == 2


def test_any_rollback_rolls_back_everything(db: Database) -> None:
    shared = shared_connection(db)
    shared.beginTrans()
    ClsStars({"star_name": "a"}, MO_SAVE)
    shared.beginTrans()
    ClsStars({"star_name": "b"}, MO_SAVE)
    shared.rollback()  # at the inner level: undoes both levels
    assert shared._level == 0
    with pytest.raises(RolledBackError, match="inner rollback"):
        shared.commit()  # the outer level's work was rolled back: never reported committed
    assert count(db, "stars") == 0
    ClsStars({"star_name": "after"}, MO_SAVE)  # the transaction ended: back to autocommit
    assert count(db, "stars") == 1


def test_a_failed_statement_ends_the_nested_transaction(db: Database) -> None:
    shared = shared_connection(db)
    shared.beginTrans()
    shared.beginTrans()
    ClsStars({"star_name": "doomed"}, MO_SAVE)
    with pytest.raises(Exception, match="no_such_table"):
        shared.oc_query("INSERT INTO no_such_table VALUES (1)")
    assert shared._level == 0
    assert count(db, "stars") == 0
    shared.rollback()  # each level the caller opened ends it
    shared.rollback()
    ClsStars({"star_name": "fine"}, MO_SAVE)
    assert count(db, "stars") == 1


def test_after_a_caught_failure_nothing_commits_outside_the_transaction(db: Database) -> None:
    """A failed statement the caller catches rolled back its transaction: its later
    statements raise (instead of committing by themselves), and so does its commit();
    another thread is not held up meanwhile."""
    star = ClsStars({"star_name": "x"})
    star.beginTrans()
    ClsStars({"star_name": "a"}, MO_SAVE)
    with pytest.raises(Exception, match="no_such_table"):
        star.oc_query("INSERT INTO no_such_table VALUES (1)")  # caught by the application
    with pytest.raises(RolledBackError, match="no_such_table"):
        ClsStars({"star_name": "c"}, MO_SAVE)
    with pytest.raises(RolledBackError):
        star.beginTrans()
    other = threading.Thread(target=lambda: ClsStars({"star_name": "other"}, MO_SAVE))
    other.start()
    other.join(timeout=10)
    with pytest.raises(RolledBackError, match="nothing was committed"):
        star.commit()
    ClsStars({"star_name": "after"}, MO_SAVE)
    with MotherSession() as session:
        assert sorted(row["star_name"] for row in session.mr_query(
            "SELECT star_name FROM stars")) == ["after", "other"]


def test_an_inner_failure_rolled_back_inside_leaves_the_outer_level_owed(db: Database) -> None:
    shared = shared_connection(db)
    shared.beginTrans()
    ClsStars({"star_name": "outer1"}, MO_SAVE)

    def inner() -> None:
        shared.beginTrans()
        try:
            shared.oc_query("INSERT INTO no_such_table VALUES (1)")
            shared.commit()
        except Exception:
            shared.rollback()
            raise

    with pytest.raises(Exception, match="no_such_table"):
        inner()
    with pytest.raises(RolledBackError):
        ClsStars({"star_name": "outer2"}, MO_SAVE)
    shared.rollback()  # the outer level
    assert count(db, "stars") == 0


def test_a_failed_commit_ends_the_nested_transaction_and_frees_the_connection(
        db: Database, request: pytest.FixtureRequest) -> None:
    """A COMMIT the database refuses (a deferred foreign key) raises, rolls the whole
    transaction back and lets go of the connection: another thread uses it at once,
    without this one calling rollback()."""
    add_deferred_table(db, request)
    shared = shared_connection(db)
    shared.beginTrans()
    ClsStars({"star_name": "doomed"}, MO_SAVE)
    shared.oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
    with pytest.raises(Exception, match="(?i)foreign key"):
        shared.commit()
    assert shared._level == 0
    saved: list[ClsStars] = []
    other = threading.Thread(target=lambda: saved.append(
        ClsStars({"star_name": "other thread"}, MO_SAVE)), daemon=True)
    other.start()
    other.join(timeout=10)
    assert not other.is_alive() and saved  # it was not left waiting for the connection
    assert count(db, "deferred_child") == 0
    with MotherSession() as session:
        assert session.mr_query("SELECT star_name FROM stars") == [
            {"star_name": "other thread"}]


def test_raw_helpers_on_the_shared_connection(db: Database) -> None:
    shared = shared_connection(get_database())
    shared.mq_query(f"INSERT INTO stars (star_name) VALUES ({ph(db, 'n')})",
                    [{"n": "x"}, {"n": "y"}])
    assert shared.ov_query("SELECT COUNT(*) AS n FROM stars") == 2
    assert shared.or_query(f"SELECT star_name FROM stars WHERE star_name = {ph(db, 'n')}",
                           {"n": "y"}) == {"star_name": "y"}
    assert len(ClsStars().mr_query("SELECT * FROM stars")) == 2


def test_two_threads_never_interleave(db: Database) -> None:
    """Thread A holds a transaction; thread B's statement waits for it to end, so A's
    rollback cannot undo B's row and B's autocommit cannot commit A's row."""
    shared = shared_connection(db)
    a_holds, b_ready, b_done = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def thread_a() -> None:
        shared.beginTrans()
        ClsStars({"star_name": "A"}, MO_SAVE)
        order.append("A inserted")
        a_holds.set()
        b_ready.wait()
        # B is now trying to use the shared connection; it must not get in
        ClsStars({"star_name": "A2"}, MO_SAVE)
        order.append("A inserted again")
        order.append("A rolls back")
        shared.rollback()

    def thread_b() -> None:
        a_holds.wait()
        b_ready.set()
        ClsStars({"star_name": "B"}, MO_SAVE)
        order.append("B inserted")
        b_done.set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert order == ["A inserted", "A inserted again", "A rolls back", "B inserted"]
    with MotherSession() as session:
        assert session.mr_query("SELECT star_name FROM stars") == [{"star_name": "B"}]


def test_records_in_a_session_ignore_transaction_calls(db: Database) -> None:
    session = MotherSession()
    star = ClsStars({"star_name": "in session"}, MO_SAVE, session=session)
    star.beginTrans()
    star.commit()
    assert count(db, "stars") == 0  # the record's commit did not commit the session
    star.rollback()
    session.endSession()  # the record's rollback did not roll it back either
    assert count(db, "stars") == 1
    assert shared_connection(db)._level == 0
