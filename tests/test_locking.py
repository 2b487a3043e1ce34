"""Locking reads: SELECT … FOR UPDATE / FOR SHARE [NOWAIT | SKIP LOCKED] that give records back."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest

import mother
from mother import MO_LOAD, MO_NOA, InvalidLockError, MotherBox, MotherSession
from mother.sets import SetError
from mother.sql import LOCKS
from mother.tm import join
from tests.support.classes import ClsStars
from tests.support.databases import add_stars

pytestmark = pytest.mark.timeout(60)


def _waiting_for_a_lock(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as admin:
        row = admin.execute("SELECT wait_event_type FROM pg_stat_activity "
                            "WHERE application_name = %s", (name,)).fetchone()
    return row is not None and row[0] == "Lock"


# -- failure paths ------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["get", "MO_LOAD", "load", "MotherBox"])
def test_nowait_on_a_row_another_session_locked_raises_lock_not_available(
        pgdb: mother.Database, how: str, clean_transaction: None) -> None:
    add_stars("Sun", "Vega")
    holder = MotherSession()
    assert holder.get(ClsStars, 1, lock="update").getField("star_name") == "Sun"
    s = MotherSession()
    dm = join(s)
    with pytest.raises(psycopg.errors.LockNotAvailable) as info:
        if how == "get":
            s.get(ClsStars, 1, lock="update nowait")
        elif how == "MO_LOAD":
            ClsStars({"star_id": 1}, MO_LOAD, session=s, lock="update nowait")
        elif how == "load":
            ClsStars({"star_id": 1}, MO_NOA, session=s).load(lock="share nowait")
        else:
            MotherBox(ClsStars, {"star_name": "Sun"}, MO_LOAD, session=s, lock="update nowait")
    # the dialect does not call it transient: NOWAIT asked to hear at once, not to retry
    assert not dm.should_retry(info.value)
    holder.endSession()


def test_a_plain_locking_read_waits_for_the_holder_and_reads_its_commit(
        pgdb: mother.Database) -> None:
    add_stars("Sun")
    holder = MotherSession("lock-holder")
    sun = holder.get(ClsStars, 1, lock="update")
    sun.setField("star_age", 5)
    holder.flush()
    seen: list[int] = []
    waiter = MotherSession("lock-waiter")

    def wait() -> None:
        seen.append(waiter.get(ClsStars, 1, lock="update").getField("star_age"))

    thread = threading.Thread(target=wait)
    thread.start()
    deadline = time.monotonic() + 10
    while not _waiting_for_a_lock(pgdb.settings.dsn, "lock-waiter"):
        assert time.monotonic() < deadline, "the locking read did not wait"
        time.sleep(0.05)
    assert seen == []
    holder.endSession()
    thread.join(10)
    assert seen == [5]  # the row as the holder committed it
    waiter.endSession()


def test_skip_locked_gives_the_rows_nobody_holds(pgdb: mother.Database) -> None:
    add_stars("Sun", "Vega", "Altair")
    first = MotherSession()
    got = MotherBox(ClsStars, None, MO_LOAD, order="star_id", session=first,
                    lock="update skip locked").getRecords(flag_obj=True)
    assert len(got) == 3
    first.rollback()
    first.get(ClsStars, 2, lock="update")
    second = MotherSession()
    box = MotherBox(ClsStars, None, MO_LOAD, order="star_id", session=second,
                    lock="update skip locked")
    assert [row["star_name"] for row in box] == ["Sun", "Altair"]
    first.endSession()
    second.endSession()


@pytest.mark.parametrize("lock", ["upgrade", "update wait", "for update", "", 1])
def test_bad_spellings_are_refused_naming_the_expected_ones(db: mother.Database,
                                                            lock: object) -> None:
    s = MotherSession()
    with pytest.raises(InvalidLockError) as info:
        s.get(ClsStars, 1, lock=lock)  # type: ignore[arg-type]
    assert isinstance(info.value, mother.MotherError)
    assert "'update skip locked'" in str(info.value) and repr(lock) in str(info.value)
    with pytest.raises(InvalidLockError):
        MotherBox(ClsStars, None, MO_LOAD, session=s, lock=lock)  # type: ignore[arg-type]
    s.endSession()


def test_a_lock_that_cannot_apply_is_refused(db: mother.Database) -> None:
    s = MotherSession()
    with pytest.raises(InvalidLockError, match="DISTINCT"):
        MotherBox(ClsStars, None, MO_LOAD, session=s, distinct=True, lock="update")
    with pytest.raises(InvalidLockError, match="MO_LOAD"):
        ClsStars({"star_name": "x"}, mother.MO_SAVE, session=s, lock="update")
    with pytest.raises(SetError, match="MO_LOAD"):
        MotherBox(ClsStars, None, mother.MO_DEL, session=s, lock="update")
    s.endSession()


# -- what a locking read does ---------------------------------------------------------------------
@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_reads_the_row_with_its_clause(
        db: mother.Database, kind: str, lock: str, caplog: pytest.LogCaptureFixture) -> None:
    add_stars("Sun")
    s = MotherSession()
    with caplog.at_level(logging.DEBUG, logger="mother.sql"):
        sun = s.get(ClsStars, 1, lock=lock.upper())
    assert sun.getField("star_name") == "Sun"
    (record,) = [r for r in caplog.records
                 if r.name == "mother.sql" and r.sql.startswith("SELECT")]
    if kind == "postgresql":
        assert record.sql.endswith(" " + LOCKS[lock])
    else:  # no row locks: the transaction's write lock already keeps every writer out
        assert " FOR " not in record.sql
    s.endSession()


def test_a_locking_read_refreshes_the_object_the_session_holds(db: mother.Database) -> None:
    add_stars("Sun")
    s = MotherSession()
    sun = s.get(ClsStars, 1)
    s.commit()  # the object stays; SQLite's write lock goes
    with MotherSession() as other:
        other.oc_query("UPDATE stars SET star_age = 9, star_name = 'Sol' WHERE star_id = 1")
    assert s.get(ClsStars, 1).getField("star_age") == 0  # the identity map: no SQL
    sun.setField("star_name", "mine")
    s.autoflush = False
    assert s.get(ClsStars, 1, lock="update") is sun
    assert sun.getField("star_age") == 9  # read again, under the lock
    assert sun.getField("star_name") == "mine"  # an unflushed change is kept
    again = ClsStars({"star_id": 1}, MO_LOAD, session=s, lock="share")
    assert again is sun and sun.getField("star_name") == "Sol"  # load() reads every column
    s.endSession()


def test_on_sqlite_the_session_holds_the_database_write_lock(tmp_path: Path,
                                                             clean_transaction: None) -> None:
    db = mother.init_mother(dsn=f"sqlite:///{tmp_path / 'lock.db'}", busy_timeout=0.1)
    mother.tutorial.create(db)
    try:
        add_stars("Sun")
        holder = MotherSession()
        holder.get(ClsStars, 1, lock="update nowait")
        other = MotherSession()
        dm = join(other)
        with pytest.raises(sqlite3.OperationalError, match="database is locked") as info:
            other.oc_query("UPDATE stars SET star_age = 1")
        assert dm.should_retry(info.value)
        holder.endSession()
    finally:
        mother.close_all()
