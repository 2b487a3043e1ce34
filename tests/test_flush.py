"""Flush: parents first, children deleted first, one batch per flush, cycles refused."""

from __future__ import annotations

import pytest

import mother
from mother import MO_SAVE, FlushError, MotherSession
from tests.support.classes import ClsMoonsInfo, ClsPlanets, ClsStars
from tests.support.databases import count


def test_inserts_given_child_first_are_written_parents_first(db: mother.Database) -> None:
    with MotherSession() as s:
        s.persist(ClsMoonsInfo({"moon_info_id": 7, "planet_id": 20, "num_moons": 1}, session=s))
        s.persist(ClsPlanets({"planet_id": 20, "star_id": 10, "planet_name": "Mars"}, session=s))
        s.persist(ClsStars({"star_id": 10, "star_name": "Sun"}, session=s))
        s.flush()
        assert not s.new
    assert (count(db, "stars"), count(db, "planets"), count(db, "moons_info")) == (1, 1, 1)


def test_deletes_given_parent_first_are_written_children_first(db: mother.Database) -> None:
    with MotherSession() as s:
        star = ClsStars({"star_id": 10, "star_name": "Sun"}, MO_SAVE, session=s)
        planet = ClsPlanets({"planet_id": 20, "star_id": 10}, MO_SAVE, session=s)
        moon = ClsMoonsInfo({"moon_info_id": 7, "planet_id": 20}, MO_SAVE, session=s)
        for obj in (star, planet, moon):
            s.delete(obj)
        assert s.deleted == {star, planet, moon}
        s.flush()
        assert not s.deleted and star not in s
    assert (count(db, "stars"), count(db, "planets"), count(db, "moons_info")) == (0, 0, 0)


def test_one_flush_is_one_batch(db: mother.Database) -> None:
    with MotherSession() as s:
        old = [ClsStars({"star_name": f"old{i}"}, MO_SAVE, session=s) for i in range(3)]
        s.commit()
        batches, statements = s.batches, s.statements
        for i in range(5):
            s.persist(ClsStars({"star_id": 100 + i, "star_name": f"new{i}"}, session=s))
            s.persist(ClsPlanets({"star_id": 100 + i, "planet_name": f"p{i}"}, session=s))
        old[0].setField("star_age", 1)
        old[1].setField("star_age", 2)
        s.delete(old[2])
        s.flush()
        assert s.batches == batches + 1
        assert s.statements == statements + 10 + 2 + 1
        assert all(p.getField("planet_id") for p in s if p.table_name == "planets")
    assert count(db, "stars") == 7 and count(db, "planets") == 5
    assert count(db, "stars", "WHERE star_age IS NOT NULL") == 2


def test_commit_rides_in_the_flush_batch(db: mother.Database) -> None:
    with MotherSession() as s:
        s.persist(ClsStars({"star_name": "Sun"}, session=s))
        s.commit()
        assert s.batches == 1
        assert count(db, "stars") == 1
        s.commit()  # nothing pending: a plain commit
        assert s.batches == 1


def test_generated_keys_come_back_in_order(db: mother.Database) -> None:
    with MotherSession() as s:
        stars = [s.persist(ClsStars({"star_name": f"s{i}"}, session=s)) for i in range(4)]
        s.flush()
        rows = s.mr_query("SELECT star_id, star_name FROM stars ORDER BY star_id")
        assert [(r["star_id"], r["star_name"]) for r in rows] == [
            (star.getField("star_id"), star.getField("star_name")) for star in stars]


def test_rows_of_defaults_only_are_inserted_with_default_values(db: mother.Database) -> None:
    with MotherSession() as s:
        stars = [s.persist(ClsStars({})) for _ in range(2)]
        s.flush()
        assert all(star.getField("star_id") for star in stars)
        assert len({star.getField("star_id") for star in stars}) == 2
    assert count(db, "stars") == 2


def test_flush_of_nothing_sends_nothing(db: mother.Database) -> None:
    with MotherSession() as s:
        s.flush()
        assert s.batches == 0


@pytest.fixture
def cyclic(db: mother.Database) -> mother.Database:
    conn = db.dialect.connect()
    cascade = " CASCADE" if db.dialect.name == "postgresql" else ""
    for sql in ('DROP TABLE IF EXISTS "eggs"' + cascade, 'DROP TABLE IF EXISTS "hens"' + cascade,
                'CREATE TABLE "hens" (hen_id INTEGER PRIMARY KEY, egg_id INTEGER '
                'REFERENCES "eggs"(egg_id))',
                'CREATE TABLE "eggs" (egg_id INTEGER PRIMARY KEY, hen_id INTEGER '
                'REFERENCES "hens"(hen_id))'):
        db.dialect.begin(conn)
        if db.dialect.name == "postgresql" and "eggs\"(egg_id" in sql:
            sql = sql.replace(' REFERENCES "eggs"(egg_id)', "")
        db.dialect.execute(conn, sql)
    if db.dialect.name == "postgresql":
        db.dialect.execute(conn, 'ALTER TABLE "hens" ADD FOREIGN KEY (egg_id) '
                                 'REFERENCES "eggs"(egg_id)')
    db.dialect.commit(conn)
    conn.close()
    db.refresh_schema()
    return db


def test_cycle_raises_flush_error_and_keeps_objects_pending(cyclic: mother.Database) -> None:
    with MotherSession() as s:
        hen = s.persist(mother.getMotherObj("hens", {"hen_id": 1}, session=s))
        egg = s.persist(mother.getMotherObj("eggs", {"egg_id": 1, "hen_id": 1}, session=s))
        with pytest.raises(FlushError, match="cycle"):
            s.flush()
        assert s.new == {hen, egg}
        s.detach(egg)
        s.flush()  # one table of the cycle alone is fine
        assert s.ov_query('SELECT COUNT(*) AS n FROM "hens"') == 1
        assert not s.new


def test_cycle_refused_for_deletes_too(cyclic: mother.Database) -> None:
    with MotherSession() as s:
        hen = mother.getMotherObj("hens", {"hen_id": 1}, MO_SAVE, session=s)
        egg = mother.getMotherObj("eggs", {"egg_id": 1}, MO_SAVE, session=s)
        s.commit()
        s.delete(hen)
        s.delete(egg)
        with pytest.raises(FlushError, match="cycle"):
            s.flush()
        assert s.deleted == {hen, egg}
        s.rollback()
        assert not s.deleted and hen in s
