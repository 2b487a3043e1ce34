"""Identity map: one object per row within a session, held weakly unless it has pending changes."""

from __future__ import annotations

import gc

import pytest

import mother
from classes import ClsPlanets, ClsStars
from conftest import count
from mother import MO_LOAD, MO_SAVE, MotherSession, getMotherBuilder


@pytest.fixture
def star_id(db: mother.Database) -> int:
    with MotherSession() as s:
        star = ClsStars({"star_name": "Sun", "star_age": 5}, MO_SAVE, session=s)
        ClsPlanets({"star_id": star.getField("star_id"), "planet_name": "Earth"}, MO_SAVE,
                   session=s)
        return star.getField("star_id")


def test_get_twice_is_one_object_and_one_query(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        first = s.get(ClsStars, star_id)
        batches = s.batches
        assert s.get(ClsStars, star_id) is first
        assert s.get(ClsStars, (star_id,)) is first
        assert s.get("stars", {"star_id": star_id}) is first
        assert s.batches == batches  # no SQL for an object the session holds


def test_get_of_missing_row_is_none(db: mother.Database) -> None:
    with MotherSession() as s:
        assert s.get(ClsStars, 424242) is None


def test_mo_load_gives_the_identity_object(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        assert ClsStars({"star_id": star_id}, MO_LOAD, session=s) is star
        # by another column: the row's key is looked up, the same object comes back
        assert ClsStars({"star_name": "Sun"}, MO_LOAD, session=s) is star
        fly = getMotherBuilder("stars")
        assert s.get(fly, star_id) is not None


def test_mo_load_first_then_get(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = ClsStars({"star_name": "Sun"}, MO_LOAD, session=s)
        batches = s.batches
        assert s.get(ClsStars, star_id) is star
        assert s.batches == batches


def test_from_row_gives_the_identity_object(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        rows = ClsStars.load_rows(s, {"star_id": star_id})
        assert ClsStars.from_row(s, rows[0]) is star
        planet_rows = ClsPlanets.load_rows(s, {"star_id": star_id})
        planet = ClsPlanets.from_row(s, planet_rows[0])
        assert s.get(ClsPlanets, planet.getField("planet_id")) is planet


def test_identity_keeps_unflushed_changes_on_reload(db: mother.Database, star_id: int) -> None:
    with MotherSession(autoflush=False) as s:
        star = s.get(ClsStars, star_id)
        star.setField("star_age", 99)
        again = ClsStars.from_row(s, ClsStars.load_rows(s, {"star_id": star_id})[0])
        assert again is star
        assert again.getField("star_age") == 99


def test_sessions_never_share_objects(db: mother.Database, star_id: int) -> None:
    with MotherSession() as a, MotherSession() as b:
        one = a.get(ClsStars, star_id)
        a.commit()  # SQLite lets one session at a time hold a transaction
        two = b.get(ClsStars, star_id)
        b.commit()
        assert one is not two
        assert one.session is a and two.session is b


def test_inserted_object_joins_identity(db: mother.Database) -> None:
    with MotherSession() as s:
        star = s.persist(ClsStars({"star_name": "Vega"}, session=s))
        s.flush()
        assert s.get(ClsStars, star.getField("star_id")) is star
        saved = ClsStars({"star_name": "Rigel"}, MO_SAVE, session=s)
        assert s.get(ClsStars, saved.getField("star_id")) is saved


def test_clean_objects_are_released(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        assert star in s
        del star
        gc.collect()
        assert list(s) == []
        batches = s.batches
        assert s.get(ClsStars, star_id).getField("star_name") == "Sun"
        assert s.batches == batches + 1  # loaded again


def test_dirty_objects_are_held_until_flushed(db: mother.Database, star_id: int) -> None:
    with MotherSession(autoflush=False) as s:
        s.get(ClsStars, star_id).setField("star_age", 6)
        gc.collect()
        (held,) = s.dirty
        assert held.getField("star_age") == 6
        del held
        s.flush()
        gc.collect()
        assert list(s) == [] and not s.dirty
        assert s.ov_query("SELECT star_age FROM stars") == 6


def test_pending_objects_are_held_until_flushed(db: mother.Database) -> None:
    with MotherSession() as s:
        s.persist(ClsStars({"star_name": "Deneb"}, session=s))
        gc.collect()
        assert len(s.new) == 1
        s.flush()
        gc.collect()
        assert not s.new
    assert count(db, "stars") == 1


class StarsWithChildren(mother.DbMother, mother.MotherManager):
    table_name = "stars"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.initChildManager()


def test_child_getters_and_record_sets_give_identity_objects(db: mother.Database,
                                                             star_id: int) -> None:
    with MotherSession() as s:
        planet = s.get(ClsPlanets, {"planet_id": 1})
        star = StarsWithChildren({"star_id": star_id}, MO_LOAD, session=s)
        assert s.get(StarsWithChildren, star_id) is star
        assert star.getPlanets({"planet_name": "Earth"}) is planet
        (boxed,) = star.getMultiplePlanets().getRecords(flag_obj=True)
        assert boxed is planet
        (boxed_star,) = mother.MotherBox(ClsStars, {"star_id": star_id}, MO_LOAD,
                                         session=s).getRecords(flag_obj=True)
        assert boxed_star is star  # one object per row, whatever class asked first
