"""StaleRecordError: an UPDATE or DELETE of a loaded row that matches no row (issue 11, case 13)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import transaction

import mother
from mother import (
    MO_DEL,
    MO_LOAD,
    MO_SAVE,
    MO_UP,
    MotherBox,
    MotherSession,
    StaleRecordError,
    getMotherBuilder,
)
from mother.errors import FlushError
from mother.tm import join
from tests.support.classes import ClsPlanets, ClsStars
from tests.support.databases import add_stars, count
from tests.support.tm import second_database


def _delete_elsewhere(star_id: int) -> None:
    """Another session deletes the row and commits (SQLite: after the first one committed)."""
    with MotherSession() as other:
        other.oc_query(f"DELETE FROM stars WHERE star_id = {int(star_id)}")


def _loaded_then_deleted(s: mother.Session) -> ClsStars:
    star = s.get(ClsStars, 1)
    assert star is not None
    s.commit()  # the object stays in the session; SQLite's write lock is released
    _delete_elsewhere(1)
    return star


@pytest.mark.parametrize("end", ["flush", "commit", "endSession"])
def test_update_of_a_row_deleted_since_it_was_loaded_is_stale(db: mother.Database,
                                                              end: str) -> None:
    add_stars("Sun", "Vega")
    s = MotherSession()
    vega = s.get(ClsStars, 2)
    sun = _loaded_then_deleted(s)
    vega.setField("star_age", 7)  # a good change in the same batch
    sun.setField("star_age", 5)
    s.persist(ClsPlanets({"star_id": 2, "planet_name": "kept?"}))
    with pytest.raises(StaleRecordError) as info:
        getattr(s, end)()
    assert isinstance(info.value, mother.MotherError)
    assert (info.value.table, info.value.key) == ("stars", (1,))
    assert "update of stars row 1 matched no row" in str(info.value)
    if end != "endSession":
        with pytest.raises(FlushError):  # the batch may be half-written: only rollback
            s.mr_query("SELECT 1 AS one")
        s.rollback()
        s.endSession()
    # nothing of the batch was committed, even where the COMMIT rode along with it
    assert count(db, "planets") == 0
    assert count(db, "stars", "WHERE star_age = 7") == 0
    assert db.status().in_use == 0


def test_delete_of_a_row_deleted_since_it_was_loaded_is_stale(db: mother.Database) -> None:
    add_stars("Sun", "Vega")
    s = MotherSession()
    vega = s.get(ClsStars, 2)
    sun = _loaded_then_deleted(s)
    s.delete(sun)
    s.delete(vega)
    with pytest.raises(StaleRecordError) as info:
        s.endSession()
    assert (info.value.table, info.value.key) == ("stars", (1,))
    assert str(info.value).startswith("delete of stars row 1")
    assert count(db, "stars") == 1  # Vega was not deleted either


@pytest.mark.parametrize("defer", [False, True], ids=["at-once", "deferred"])
@pytest.mark.parametrize("how", ["update", "delete"])
def test_immediate_writes_of_a_loaded_row_are_stale(db: mother.Database, how: str,
                                                    defer: bool) -> None:
    """Sent at once, the write raises; deferred, the session's next round trip does."""
    add_stars("Sun")
    s = MotherSession(defer_writes=defer)
    sun = _loaded_then_deleted(s)

    def write() -> None:
        if how == "update":
            sun.update({"star_age": 5})
        else:
            sun.delete()

    if defer:
        write()  # queued for the next round trip
    with pytest.raises(StaleRecordError) as info:
        if defer:
            s.mr_query("SELECT 1 AS one")
        else:
            write()
    assert info.value.key == (1,)
    if how == "update":
        assert sun._mo_dirty == {"star_age"}  # the change was not written: still pending
    s.rollback()
    s.endSession()


def test_records_of_the_shared_connection_are_checked_too(db: mother.Database) -> None:
    add_stars("Sun")
    sun = ClsStars({"star_id": 1}, MO_LOAD)
    _delete_elsewhere(1)
    with pytest.raises(StaleRecordError):
        sun.update({"star_age": 3})


def test_a_write_that_was_never_loaded_keeps_mothers_meaning(db: mother.Database) -> None:
    """MO_UP / MO_DEL of a record built from values are "the matching rows": none is fine."""
    with MotherSession() as s:
        ClsStars({"star_id": 404, "star_age": 1}, MO_UP, session=s)
        ClsStars({"star_id": 404}, MO_DEL, session=s)
    assert count(db, "stars") == 0


def test_a_set_that_deleted_the_row_behind_the_session_makes_it_stale(
        db: mother.Database) -> None:
    add_stars("Sun")
    s = MotherSession()
    sun = s.get(ClsStars, 1)
    MotherBox(ClsStars, {"star_id": 1}, MO_DEL, session=s)  # a plain statement
    sun.setField("star_name", "gone")
    with pytest.raises(StaleRecordError):
        s.flush()
    s.rollback()
    s.endSession()
    assert count(db, "stars") == 1


def test_should_retry_is_true_for_a_stale_record(db: mother.Database,
                                                 clean_transaction: None) -> None:
    dm = join(MotherSession())
    assert dm.should_retry(StaleRecordError("stars", (1,), "update"))
    assert not dm.should_retry(mother.NotUniqueError("load stars", 0))


def test_attempts_retries_an_update_made_stale_by_a_concurrent_delete(
        pgdb: mother.Database, clean_transaction: None) -> None:
    add_stars("Sun")
    tries = 0
    for attempt in transaction.manager.attempts(3):
        with attempt:
            tries += 1
            s = MotherSession()
            join(s)
            sun = s.get(ClsStars, 1)
            if sun is None:  # the retry sees the delete: start the row again
                ClsStars({"star_id": 1, "star_name": "Sun again"}, MO_SAVE, session=s)
            else:
                with psycopg.connect(pgdb.settings.dsn, autocommit=True) as other:
                    other.execute("DELETE FROM stars WHERE star_id = 1")
                sun.setField("star_age", 10)  # flushed at commit: stale
    assert tries == 2
    assert count(pgdb, "stars", "WHERE star_name = 'Sun again'") == 1
    assert pgdb.status().in_use == 0


def test_a_stale_branch_commits_no_database(db: mother.Database, kind: str,
                                            request: pytest.FixtureRequest, tmp_path: Path,
                                            clean_transaction: None) -> None:
    """Two databases in one transaction: the stale flush (in tpc_begin) aborts both."""
    second = second_database(kind, request, tmp_path)
    with MotherSession(database=second) as s:
        s.oc_query("INSERT INTO stars (star_id, star_name) VALUES (1, 'far')")
    here, there = MotherSession(), MotherSession(database=second)
    join(here)
    join(there)
    ClsStars({"star_name": "near"}, MO_SAVE, session=here)
    far = there.get(getMotherBuilder("stars", second), 1)
    MotherBox(far, {"star_id": 1}, MO_DEL, session=there)  # behind the unit of work's back
    far.setField("star_age", 1)
    with pytest.raises(StaleRecordError):
        transaction.commit()
    assert count(db, "stars") == 0 and count(second, "stars") == 1
    assert here.closed and there.closed
