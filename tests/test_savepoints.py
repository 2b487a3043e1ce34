"""begin_nested(): SAVEPOINTs that restore rows and the objects changed inside them."""

from __future__ import annotations

import pytest

import mother
from mother import MO_SAVE, MotherSession
from tests.support.classes import ClsPlanets, ClsStars
from tests.support.databases import count


class Boom(Exception):
    pass


@pytest.fixture
def star_id(db: mother.Database) -> int:
    with MotherSession() as s:
        return ClsStars({"star_name": "Sun", "star_age": 5}, MO_SAVE, session=s).getField("star_id")


def test_error_rolls_back_rows_and_objects(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        star.setField("star_mass", 1)  # before the block: kept
        with pytest.raises(Boom), s.begin_nested():
            star.setField("star_age", 6)
            vega = s.persist(ClsStars({"star_name": "Vega"}))
            s.flush()
            assert vega.getField("star_id")
            s.delete(star)
            s.flush()
            assert star not in s
            raise Boom
        assert star in s and star.getFields(["star_age", "star_mass"]) == {
            "star_age": 5, "star_mass": 1}
        assert vega not in s and "star_id" not in vega.getFields()
        assert s.mr_query("SELECT star_name, star_age, star_mass FROM stars") == [
            {"star_name": "Sun", "star_age": 5, "star_mass": 1}]
    assert count(db, "stars") == 1


def test_unflushed_changes_inside_the_block_are_undone(db: mother.Database, star_id: int) -> None:
    with MotherSession(autoflush=False) as s:
        star = s.get(ClsStars, star_id)
        with pytest.raises(Boom), s.begin_nested():
            star.setField("star_age", 6)
            s.persist(ClsStars({"star_name": "Vega"}))
            raise Boom
        assert not s.dirty and not s.new and star.getField("star_age") == 5
    assert count(db, "stars") == 1 and count(db, "stars", "WHERE star_age = 5") == 1


def test_success_keeps_the_block(db: mother.Database, star_id: int) -> None:
    with MotherSession(autoflush=False) as s:
        star = s.get(ClsStars, star_id)
        with s.begin_nested():
            star.setField("star_age", 6)
            s.persist(ClsPlanets({"star_id": star_id, "planet_name": "Earth"}))
        assert not s.dirty and not s.new  # flushed on leaving the block
        s.rollback()  # the enclosing transaction still decides
        assert star.getField("star_age") == 5
    assert count(db, "planets") == 0


def test_nested_blocks(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        with s.begin_nested():
            star.setField("star_age", 10)
            with s.begin_nested():
                star.setField("star_age", 20)
                s.persist(ClsStars({"star_name": "inner-kept"}))
            with pytest.raises(Boom), s.begin_nested():
                star.setField("star_age", 30)
                s.persist(ClsStars({"star_name": "inner-undone"}))
                with s.begin_nested():
                    star.setField("star_mass", 3)
                raise Boom
            assert star.getFields(["star_age", "star_mass"]) == {"star_age": 20, "star_mass": None}
        with pytest.raises(Boom), s.begin_nested():
            star.setField("star_age", 40)
            raise Boom
        assert star.getField("star_age") == 20
    assert count(db, "stars") == 2
    assert count(db, "stars", "WHERE star_age = 20") == 1
    assert count(db, "stars", "WHERE star_name = 'inner-undone'") == 0


def test_savepoint_methods(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        first = s.savepoint()
        star.setField("star_age", 6)
        second = s.savepoint()  # flushes the change first
        star.setField("star_age", 7)
        s.rollback_savepoint(second)
        assert star.getField("star_age") == 6 and not s.dirty
        s.release_savepoint(first)
        s.rollback()
        assert star.getField("star_age") == 5
