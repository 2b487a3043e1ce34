"""register(), current_session(): one session per transaction, implicit records, threads."""

from __future__ import annotations

import threading

import pytest
import transaction

import mother
from mother import MO_SAVE, MotherSession
from mother.tm import NoActiveTransactionError, current_session, register, unregister
from tests.support.classes import ClsStars
from tests.support.databases import count

# the thread's transaction is aborted before and after every test (conftest.py)
pytestmark = pytest.mark.usefixtures("clean_transaction")


def test_current_session_is_one_session_per_transaction(db: mother.Database) -> None:
    s = current_session()
    assert current_session() is s and s.manager is not None
    assert s.name.startswith("MoSession-default-")
    ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
    transaction.commit()
    assert s.closed and count(db, "stars") == 1
    assert current_session() is not s


def test_registered_sessions_join_the_transaction(db: mother.Database) -> None:
    register()
    try:
        s = MotherSession()
        assert s.manager is not None
        ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
        transaction.abort()
        assert count(db, "stars") == 0 and s.closed
    finally:
        unregister()
    assert MotherSession().manager is None


def test_records_without_a_session_use_the_transaction_session(db: mother.Database) -> None:
    register()
    try:
        star = ClsStars({"star_name": "Sun"}, MO_SAVE)
        assert star.session is current_session()
        assert count(db, "stars") == 0  # not committed yet
        transaction.commit()
        assert count(db, "stars") == 1
        ClsStars({"star_name": "Vega"}, MO_SAVE)
        transaction.abort()
        assert count(db, "stars") == 1
    finally:
        unregister()
    ClsStars({"star_name": "Altair"}, MO_SAVE)  # the shared connection again: commits at once
    assert count(db, "stars") == 2


def test_explicit_manager_outside_a_transaction(db: mother.Database) -> None:
    manager = transaction.TransactionManager(explicit=True)
    register(transaction_manager=manager)
    try:
        with pytest.raises(NoActiveTransactionError):
            current_session(transaction_manager=manager)
        assert MotherSession().manager is None
        ClsStars({"star_name": "shared"}, MO_SAVE)  # shared connection, committed
        assert count(db, "stars") == 1
        with manager:
            star = ClsStars({"star_name": "in txn"}, MO_SAVE)
            assert star.session is current_session(transaction_manager=manager)
            assert count(db, "stars") == 1
        assert count(db, "stars") == 2
    finally:
        unregister(transaction_manager=manager)


def test_two_threads_never_share_a_session(db: mother.Database) -> None:
    register()
    seen: list[object] = []
    used: dict[str, bool] = {}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        mine = current_session()
        seen.append(mine)  # both threads inside their transaction at once
        barrier.wait(timeout=10)
        star = ClsStars({"star_name": name}, MO_SAVE)
        used[name] = star.session is mine
        transaction.commit()

    try:
        threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        unregister()
    assert len(seen) == 2 and seen[0] is not seen[1]
    assert used == {"t0": True, "t1": True}
    assert count(db, "stars") == 2


def test_current_session_of_another_manager_joins_only_that_manager(
        db: mother.Database) -> None:
    """register() for the thread-local manager must not take a session meant for tm2."""
    register()
    tm2 = transaction.TransactionManager(explicit=True)
    try:
        tm2.begin()
        mine = current_session(transaction_manager=tm2)
        assert mine.manager is not None and mine.manager.transaction_manager is tm2
        ClsStars({"star_name": "tm2"}, MO_SAVE, session=mine)
        local = current_session()  # the thread-local transaction has its own session
        assert local is not mine and local.manager.transaction_manager is transaction.manager
        transaction.abort()
        assert not mine.closed  # the thread-local abort left tm2's session alone
        tm2.commit()
        assert mine.closed and count(db, "stars", "WHERE star_name = 'tm2'") == 1
    finally:
        unregister()


def test_two_registrations_do_not_fight_over_a_new_session(db: mother.Database) -> None:
    tm2 = transaction.TransactionManager()
    register()
    register(transaction_manager=tm2)
    try:
        s = MotherSession()  # both managers have a transaction: the first registration wins
        assert s.manager.transaction_manager is transaction.manager
        tm2.abort()
        assert not s.closed
    finally:
        unregister(transaction_manager=None)


def test_session_hooks_see_current_session_joined_to_its_own_manager(
        db: mother.Database) -> None:
    """Hooks (mother.zope's converts commit errors) still run, once the session joined."""
    seen: list[object] = []
    db.session_hooks.append(lambda s: seen.append(s.manager and s.manager.transaction_manager))
    register()
    tm2 = transaction.TransactionManager(explicit=True)
    try:
        tm2.begin()
        current_session(transaction_manager=tm2)
        current_session()
        assert seen == [tm2, transaction.manager]
        tm2.abort()
    finally:
        unregister()
