"""Change tracking, autoflush, refresh/merge/detach, rollback of object state, and errors."""

from __future__ import annotations

import gc
import sqlite3
import weakref

import psycopg
import pytest

import mother
from mother import (
    MO_SAVE,
    ConnectionLostError,
    FlushError,
    MotherSession,
    SessionConflictError,
)
from tests.support.classes import ClsPlanets, ClsStars
from tests.support.databases import count

DB_ERRORS = (psycopg.Error, sqlite3.Error)


@pytest.fixture
def star_id(db: mother.Database) -> int:
    with MotherSession() as s:
        return ClsStars({"star_name": "Sun", "star_age": 5}, MO_SAVE, session=s).getField("star_id")


# -- change tracking ---------------------------------------------------------------------
def test_set_field_marks_dirty_and_flush_writes_only_changes(db: mother.Database,
                                                             star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        assert not s.dirty
        star.setField("star_age", 6)
        star.setFields({"star_mass": 3})
        assert s.dirty == {star}
        assert star._mo_dirty == {"star_age", "star_mass"}
        s.oc_query("UPDATE stars SET star_name = 'Sol'")  # another writer of star_name
        s.flush()
        assert not s.dirty
        row = s.or_query("SELECT star_name, star_age, star_mass FROM stars")
        assert row == {"star_name": "Sol", "star_age": 6, "star_mass": 3}


def test_persist_and_delete_fill_new_and_deleted(db: mother.Database, star_id: int) -> None:
    with MotherSession(autoflush=False) as s:
        star = s.get(ClsStars, star_id)
        vega = s.persist(ClsStars({"star_name": "Vega"}))
        assert vega.session is s and s.new == {vega} and vega in s
        s.delete(star)
        assert s.deleted == {star}
        s.delete(vega)  # a pending object is simply dropped
        assert not s.new and vega not in s
    assert count(db, "stars") == 0


def test_immediate_flags_write_at_once_without_deferral(db: mother.Database,
                                                        star_id: int) -> None:
    with MotherSession(defer_writes=False) as s:
        star = s.get(ClsStars, star_id)
        star.setField("star_age", 9)
        star.update()
        assert not s.dirty
        assert s.ov_query("SELECT star_age FROM stars") == 9
        ClsPlanets({"star_id": star_id, "planet_name": "x"}, MO_SAVE, session=s)
        s.rollback()
        assert star.getField("star_age") == 5  # object state restored with the rows


# -- autoflush -----------------------------------------------------------------------------
def test_queries_see_pending_changes(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        s.get(ClsStars, star_id).setField("star_age", 50)
        s.persist(ClsStars({"star_name": "Vega"}, session=s))
        assert s.ov_query("SELECT COUNT(*) AS n FROM stars") == 2
        assert s.ov_query("SELECT star_age FROM stars WHERE star_name = 'Sun'") == 50
        assert not s.new and not s.dirty
        assert count(db, "stars") == 1  # flushed, not committed
    assert count(db, "stars") == 2


def test_executemany_sees_pending_changes(db: mother.Database) -> None:
    with MotherSession() as s:
        s.persist(ClsStars({"star_id": 1, "star_name": "Vega"}, session=s))
        s.mq_query("INSERT INTO planets (star_id, planet_name) VALUES (1, 'a')", [{}])
    assert count(db, "planets") == 1


@pytest.mark.parametrize("where", ["session", "database"])
def test_autoflush_off(dsn: str, db: mother.Database, where: str) -> None:
    if where == "database":
        mother.init_mother(dsn=dsn, pool_min=1, autoflush=False)
        session = MotherSession()
    else:
        session = MotherSession(autoflush=False)
    with session as s:
        assert s.autoflush is False
        s.persist(ClsStars({"star_name": "Vega"}, session=s))
        assert s.ov_query("SELECT COUNT(*) AS n FROM stars") == 0
        assert len(s.new) == 1
    assert count(db, "stars") == 1  # commit and endSession still flush


# -- refresh / merge / detach ----------------------------------------------------------------
def test_refresh_drops_changes_and_reads_the_row(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        s.oc_query("UPDATE stars SET star_mass = 12")
        star.setField("star_age", 77)
        assert s.refresh(star) is star
        assert not s.dirty
        assert star.getFields(["star_age", "star_mass"]) == {"star_age": 5, "star_mass": 12}


def test_refresh_refuses_pending_and_foreign_objects(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        pending = s.persist(ClsStars({"star_name": "Vega"}))
        with pytest.raises(mother.PrimaryKeyError):
            s.refresh(pending)
        with pytest.raises(SessionConflictError):
            s.refresh(ClsStars({"star_id": star_id}))


def test_merge_copies_a_detached_object(db: mother.Database, star_id: int) -> None:
    with MotherSession() as first:
        old = first.get(ClsStars, star_id)
        first.detach(old)
    old.setField("star_age", 8)  # a detached object: changed in memory only
    with MotherSession() as s:
        mine = s.merge(old)
        assert mine is not old and mine is s.get(ClsStars, star_id)
        assert s.dirty == {mine} and mine.getField("star_age") == 8
        assert s.merge(ClsStars({"star_id": star_id, "star_age": 8})) is mine
        new = s.merge(ClsStars({"star_id": 999, "star_name": "Altair"}))
        assert s.new == {new}
    assert count(db, "stars", "WHERE star_age = 8") == 1
    assert count(db, "stars") == 2


def test_detach_stops_tracking(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        star.setField("star_age", 1)
        vega = s.persist(ClsStars({"star_name": "Vega"}))
        s.detach(star)
        s.detach(vega)
        assert star not in s and vega not in s and not s.new and not s.dirty
        assert mother.object_session(star) is None
        assert s.get(ClsStars, star_id) is not star
    assert count(db, "stars") == 1
    assert count(db, "stars", "WHERE star_age = 5") == 1


# -- rollback --------------------------------------------------------------------------------
def test_rollback_restores_objects(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        star.setField("star_age", 40)
        vega = s.persist(ClsStars({"star_name": "Vega"}))
        s.flush()
        s.delete(star)
        s.flush()
        assert star not in s
        s.rollback()
        assert star in s and star.getField("star_age") == 5 and not s.dirty
        assert vega not in s and "star_id" not in vega.getFields()
        assert s.get(ClsStars, star_id) is star
        s.persist(vega)  # a transient object may be persisted again
    assert count(db, "stars") == 2


def test_commit_makes_changes_survive_a_later_rollback(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        star.setField("star_age", 40)
        s.commit()
        star.setField("star_age", 41)
        s.rollback()
        assert star.getField("star_age") == 40


# -- errors ------------------------------------------------------------------------------------
def test_constraint_violation_keeps_objects_pending(db: mother.Database, star_id: int) -> None:
    s = MotherSession()
    star = s.get(ClsStars, star_id)
    star.setField("star_age", 6)
    good = s.persist(ClsStars({"star_name": "Vega"}))
    bad = s.persist(ClsPlanets({"star_id": 424242, "planet_name": "orphan"}))
    with pytest.raises(DB_ERRORS):
        s.commit()
    assert s.new == {good, bad} and s.dirty == {star}
    assert "star_id" not in good.getFields()
    with pytest.raises(FlushError, match="rollback"):
        s.mr_query("SELECT * FROM stars")
    s.rollback()
    assert not s.new and not s.dirty and star.getField("star_age") == 5
    s.persist(good)
    s.endSession()
    assert count(db, "stars") == 2 and count(db, "planets") == 0


def test_flush_error_inside_nested_block_is_undone_with_it(db: mother.Database) -> None:
    with MotherSession() as s:
        s.persist(ClsStars({"star_id": 1, "star_name": "Vega"}))
        with pytest.raises(DB_ERRORS), s.begin_nested():
            s.persist(ClsPlanets({"star_id": 424242}))
        assert s.ov_query("SELECT COUNT(*) AS n FROM stars") == 1
    assert count(db, "stars") == 1 and count(db, "planets") == 0


def _kill(s: mother.Session) -> None:
    """Lose the session's connection for real: terminate its backend / close the file."""
    conn = s.connection()
    if s.database.dialect.name == "postgresql":
        pid = conn.info.backend_pid
        with psycopg.connect(s.database.settings.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    else:
        conn.close()


def test_lost_connection_keeps_objects_pending(db: mother.Database, star_id: int) -> None:
    s = MotherSession()
    star = s.get(ClsStars, star_id)
    star.setField("star_age", 6)
    vega = s.persist(ClsStars({"star_name": "Vega"}))
    _kill(s)
    with pytest.raises(DB_ERRORS):
        s.flush()
    assert s.new == {vega} and s.dirty == {star}
    with pytest.raises(ConnectionLostError):
        s.flush()
    s.rollback()
    assert s.ov_query("SELECT COUNT(*) AS n FROM stars") == 1
    s.persist(vega)
    s.endSession()
    assert count(db, "stars") == 2


def test_lost_connection_inside_nested_block(db: mother.Database, star_id: int) -> None:
    s = MotherSession()
    star = s.get(ClsStars, star_id)
    with pytest.raises(DB_ERRORS), s.begin_nested():
        star.setField("star_age", 6)
        _kill(s)
    s.rollback()
    assert star.getField("star_age") == 5 and not s.dirty
    s.endSession()


def test_persisting_an_object_of_another_session(db: mother.Database, star_id: int) -> None:
    with MotherSession() as a:
        star = a.get(ClsStars, star_id)
        b = MotherSession()
        for action in (b.persist, b.delete):
            with pytest.raises(SessionConflictError, match="merge"):
                action(star)
        assert star.session is a
        b.close()
    b2 = MotherSession()
    b2.persist(star)  # the first session has ended: the object may move
    assert star.session is b2
    b2.close()


def test_session_closed_refuses_work(db: mother.Database) -> None:
    s = MotherSession()
    s.endSession()
    for action in (s.flush, lambda: s.persist(ClsStars({})), lambda: s.get(ClsStars, 1)):
        with pytest.raises(mother.SessionClosedError):
            action()


# -- immediate writes deferred to the next round trip --------------------------------------
class ClsStarsAtOnce(ClsStars):
    defer_writes = False


def test_an_immediate_insert_waits_until_its_key_is_read(db: mother.Database) -> None:
    with MotherSession() as s:
        sent = s.batches
        vega = ClsStars({"star_name": "Vega"}, MO_SAVE, session=s)
        assert s.batches == sent and s.new == {vega}  # nothing sent yet
        key = vega.getField("star_id")  # reading the key sends it
        assert isinstance(key, int) and s.batches == sent + 1 and not s.new
        assert s.get(ClsStars, key) is vega


@pytest.mark.parametrize("read", ["getField", "getFields", "load"])
def test_reading_any_column_of_a_deferred_insert_sends_it(db: mother.Database,
                                                         read: str) -> None:
    with MotherSession() as s:
        vega = ClsStars({"star_name": "Vega"}, MO_SAVE, session=s)
        values = {"getField": lambda: {"star_name": vega.getField("star_name")},
                  "getFields": lambda: vega.getFields(["star_name"]),
                  "load": lambda: vega.load()}[read]()
        assert values["star_name"] == "Vega" and not s.new
        assert s.ov_query("SELECT COUNT(*) AS n FROM stars WHERE star_name = 'Vega'") == 1


def test_raw_queries_read_the_deferred_writes(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = ClsStars({"star_id": star_id}, mother.MO_LOAD, session=s)
        star.update({"star_age": 6})
        ClsPlanets({"star_id": star_id, "planet_name": "Mars"}, MO_SAVE, session=s)
        assert s.dirty == {star}  # the UPDATE waits too
        assert s.or_query("SELECT COUNT(*) AS n, MAX(star_age) AS age FROM planets "
                          "JOIN stars USING (star_id)") == {"n": 1, "age": 6}
        assert not s.new and not s.dirty


def test_deferred_writes_ride_with_the_commit(db: mother.Database, star_id: int) -> None:
    s = MotherSession()
    star = ClsStars({"star_id": star_id}, mother.MO_LOAD, session=s)
    sent = s.batches
    star.setField("star_age", 7)
    star.update()
    for name in ("Mars", "Venus"):
        ClsPlanets({"star_id": star_id, "planet_name": name}, MO_SAVE, session=s)
    assert s.batches == sent
    s.endSession()  # the writes and the COMMIT: one batch
    assert s.batches == sent + 1
    assert count(db, "planets") == 2 and count(db, "stars", "WHERE star_age = 7") == 1


@pytest.mark.parametrize("opt_out", ["class", "session", "autoflush"])
def test_opting_out_sends_each_immediate_write_at_once(db: mother.Database,
                                                       opt_out: str) -> None:
    options = {"class": {}, "session": {"defer_writes": False},
               "autoflush": {"autoflush": False}}[opt_out]
    cls = ClsStarsAtOnce if opt_out == "class" else ClsStars
    with MotherSession(**options) as s:
        sent = s.batches
        vega = cls({"star_name": "Vega"}, MO_SAVE, session=s)
        assert s.batches == sent + 1 and not s.new
        assert isinstance(vega._mo_store["star_id"], int)  # the key is back already


def test_a_delete_then_an_insert_of_the_same_key_keep_their_order(db: mother.Database,
                                                                   star_id: int) -> None:
    """The flush sends inserts before deletes: a deferred insert that a deferred delete of
    its table came before sends that delete first."""
    with MotherSession() as s:
        ClsStars({"star_id": star_id}, mother.MO_LOAD, session=s).delete()
        ClsStars({"star_id": star_id, "star_name": "Reborn"}, MO_SAVE, session=s)
    assert count(db, "stars", f"WHERE star_id = {star_id} AND star_name = 'Reborn'") == 1


def test_a_deferred_insert_that_fails_raises_at_the_next_round_trip(db: mother.Database,
                                                                     star_id: int) -> None:
    s = MotherSession()
    ClsPlanets({"star_id": star_id, "planet_name": "fine"}, MO_SAVE, session=s)
    twin = ClsStars({"star_id": star_id, "star_name": "Twin"}, MO_SAVE, session=s)  # key taken
    with pytest.raises(DB_ERRORS) as info:
        s.mr_query("SELECT * FROM planets")
    note = " ".join(getattr(info.value, "__notes__", []))
    assert f"insert of {twin!r}" in note and repr(s.name) in note
    with pytest.raises(FlushError):  # the session goes no further...
        s.endSession()
    assert s.closed  # ...and ended rolled back: nothing half-written
    assert count(db, "planets") == 0 and count(db, "stars") == 1


def test_a_deferred_insert_that_fails_never_lets_the_commit_succeed(db: mother.Database,
                                                                     star_id: int) -> None:
    s = MotherSession()
    ClsPlanets({"star_id": star_id, "planet_name": "fine"}, MO_SAVE, session=s)
    ClsStars({"star_id": star_id, "star_name": "Twin"}, MO_SAVE, session=s)
    with pytest.raises(DB_ERRORS):
        s.endSession()  # the COMMIT rode with the failing INSERT
    assert s.closed
    assert count(db, "planets") == 0 and count(db, "stars") == 1


def test_detaching_a_deferred_insert_sends_it_first(db: mother.Database) -> None:
    """detach() drops unflushed changes, not a write that was asked for with MO_SAVE."""
    with MotherSession() as s:
        vega = ClsStars({"star_name": "Vega"}, MO_SAVE, session=s)
        s.detach(vega)
        assert vega.session is None and isinstance(vega.getField("star_id"), int)
    assert count(db, "stars", "WHERE star_name = 'Vega'") == 1


def test_an_ended_session_and_its_unit_of_work_are_freed_at_once(db: mother.Database) -> None:
    gc.collect()
    gc.disable()  # what is freed is freed by reference counting, not a cyclic collection
    try:
        s = MotherSession()
        star = ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
        s.get(ClsStars, star.getField("star_id"))
        held = [weakref.ref(thing) for thing in (s, s.uow, s.uow.identity)]
        s.endSession()
        del s, star
        assert [ref() for ref in held] == [None] * len(held)
    finally:
        gc.enable()
