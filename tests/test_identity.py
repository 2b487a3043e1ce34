"""Identity map: one object per row within a session, held weakly unless it has pending changes."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

import mother
from benchmarks.bench_uow import retained  # the benchmark's own measure
from mother import MO_LOAD, MO_SAVE, MotherSession, getMotherBuilder
from mother.executor import shared
from tests.support.classes import ClsPlanets, ClsStars
from tests.support.databases import count


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


def test_from_rows_maps_each_row_once_in_order(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        ClsStars({"star_name": "Vega"}, MO_SAVE, session=s)
        held = s.get(ClsStars, star_id)
        rows = ClsStars.load_rows(s, None, order="star_id")
        got = list(ClsStars.from_rows(s, rows))
        assert [r.getField("star_id") for r in got] == [row["star_id"] for row in rows]
        assert got[0] is held  # the row the session held: its object, not a new one
        assert s.get(ClsStars, got[1].getField("star_id")) is got[1]  # a new one: mapped
        assert got[1] not in s.uow.dirty.values()  # loaded clean: nothing to write


def test_from_rows_makes_records_through_a_class_of_its_own(db: mother.Database,
                                                           star_id: int) -> None:
    made: list[dict[str, Any]] = []

    class Counted(ClsStars):
        def __init__(self, store: Any = None, *args: Any, **kwargs: Any) -> None:
            made.append(dict(store or {}))
            super().__init__(store, *args, **kwargs)

    with MotherSession() as s:
        rows = Counted.load_rows(s, {"star_id": star_id})
        (star,) = Counted.from_rows(s, rows)
        assert isinstance(star, Counted) and made == rows
        assert s.get(Counted, star_id) is star


def test_from_rows_refuses_a_column_the_table_lacks(db: mother.Database) -> None:
    with MotherSession() as s, pytest.raises(mother.UnknownFieldError, match="star_colour"):
        list(ClsStars.from_rows(s, [{"star_id": 1, "star_colour": "red"}]))


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


# -- the identity map under weak references: every loading path, release, reload, sweep ----
LOADERS = {
    "get": lambda s, star_id: s.get(ClsStars, star_id),
    "MO_LOAD by key": lambda s, star_id: ClsStars({"star_id": star_id}, MO_LOAD, session=s),
    "MO_LOAD by name": lambda s, star_id: ClsStars({"star_name": "Sun"}, MO_LOAD, session=s),
    "from_row": lambda s, star_id: ClsStars.from_row(
        s, ClsStars.load_rows(s, {"star_id": star_id})[0]),
    "record set": lambda s, star_id: mother.MotherBox(
        ClsStars, {"star_id": star_id}, MO_LOAD, session=s).getRecords(flag_obj=True)[0],
}


@pytest.mark.parametrize("how", LOADERS)
def test_every_loading_path_gives_one_object_released_when_unused(
        db: mother.Database, star_id: int, how: str) -> None:
    load = LOADERS[how]
    with MotherSession() as s:
        star = load(s, star_id)
        assert load(s, star_id) is star and s.get(ClsStars, star_id) is star
        assert list(s) == [star]
        gone = weakref.ref(star)
        del star
        gc.collect()
        assert gone() is None and list(s) == []
        again = load(s, star_id)  # loaded afresh: a new object, mapped again
        assert again.getField("star_name") == "Sun" and list(s) == [again]
        assert load(s, star_id) is again
        batches = s.batches
        assert s.get(ClsStars, star_id) is again and s.batches == batches


def test_child_getter_gives_the_mapped_child(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(StarsWithChildren, star_id)
        planet = star.getPlanets({"planet_name": "Earth"})
        assert s.get(ClsPlanets, planet.getField("planet_id")) is planet
        gone = weakref.ref(planet)
        del planet
        gc.collect()
        assert gone() is None and list(s) == [star]
        assert star.getPlanets({"planet_name": "Earth"}) in s


def test_reload_replaces_the_dead_entry(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        s.get(ClsStars, star_id)  # dropped at once
        gc.collect()
        again = s.get(ClsStars, star_id)
        s.uow.identity.sweep()  # the sweep keeps the live entry of the same key
        batches = s.batches
        assert s.get(ClsStars, star_id) is again and s.batches == batches
        assert list(s) == [again]


def test_dead_entries_are_swept(db: mother.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mother.unitofwork, "SWEEP_MIN", 10)
    with MotherSession() as s:
        for i in range(30):
            s.persist(ClsStars({"star_name": f"star {i}"}))
        s.commit()
        gc.collect()
        identity = s.uow.identity
        identity.dead = 0
        stars = mother.MotherBox(ClsStars, None, MO_LOAD, session=s).getRecords(flag_obj=True)
        keep, other_id = stars[0], stars[1].getField("star_id")
        del stars
        gc.collect()
        assert identity.dead == 29  # counted, not yet removed
        assert identity.entries == 30 == sum(len(rows) for rows in identity.tables.values())
        assert set(s) == {keep}
        other = s.get(ClsStars, other_id)  # a new entry: the map sweeps itself
        assert identity.dead == 0
        assert identity.entries == 2 == sum(len(rows) for rows in identity.tables.values())
        assert set(s) == {keep, other}
        s.detach(other)
        assert identity.entries == 1 == sum(len(rows) for rows in identity.tables.values())


def test_deleted_objects_are_held_until_flushed(db: mother.Database, star_id: int) -> None:
    with MotherSession(autoflush=False) as s:
        s.delete(s.get(ClsPlanets, 1))
        s.delete(s.get(ClsStars, star_id))
        gc.collect()
        assert len(s.deleted) == 2
        assert s.get(ClsStars, star_id) is None  # deleted in the session already
        s.flush()
        gc.collect()
        assert not s.deleted and list(s) == []
        assert s.get(ClsStars, star_id) is None
    assert count(db, "stars") == 0


def test_detach_delete_and_rollback_keep_the_map_consistent(db: mother.Database,
                                                            star_id: int) -> None:
    with MotherSession() as s:
        star = s.get(ClsStars, star_id)
        s.detach(star)
        mine = s.get(ClsStars, star_id)
        assert mine is not star and list(s) == [mine] and star not in s
        s.detach(star)  # detaching again (or an object of no session) changes nothing
        assert s.get(ClsStars, star_id) is mine
        vega = s.persist(ClsStars({"star_name": "Vega"}))
        s.commit()
        vega_id = vega.getField("star_id")
        assert s.get(ClsStars, vega_id) is vega
        rigel = s.persist(ClsStars({"star_name": "Rigel"}))
        s.delete(vega)
        s.flush()
        rigel_id = rigel.getField("star_id")
        assert s.get(ClsStars, vega_id) is None and set(s) == {mine, rigel}
        s.rollback()  # rigel was never written, vega comes back
        assert set(s) == {mine, vega} and rigel not in s
        batches = s.batches
        assert s.get(ClsStars, vega_id) is vega and s.batches == batches
        assert s.get(ClsStars, rigel_id) is None
        with pytest.raises(RuntimeError), s.begin_nested():
            deneb = s.persist(ClsStars({"star_name": "Deneb"}))
            s.flush()
            deneb_id = deneb.getField("star_id")
            raise RuntimeError
        assert deneb not in s and s.get(ClsStars, deneb_id) is None
        assert set(s) == {mine, vega}


def test_held_rows_cost_less_than_twice_plain_dicts(db: mother.Database) -> None:
    """The requirement, smaller: rows held in a session against the same rows as plain dicts."""
    rows = 5000
    marks = ", ".join(db.dialect.placeholder(name) for name in ("n", "a", "m"))
    with MotherSession() as s:
        s.mq_query(f"INSERT INTO stars (star_name, star_age, star_mass) VALUES ({marks})",
                   [{"n": f"star number {i}", "a": i, "m": i * 7} for i in range(rows)])
        s.mr_query("SELECT * FROM stars")  # statement caches warm before anything counts
        mother.MotherBox(ClsStars, None, MO_LOAD, session=s).getRecords(flag_obj=True)
    with MotherSession() as s:
        plain, held = retained(lambda: s.mr_query("SELECT * FROM stars"))
        assert len(held) == rows
        del held
    with MotherSession() as s:
        session, held = retained(lambda: mother.MotherBox(ClsStars, None, MO_LOAD, session=s)
                                  .getRecords(flag_obj=True))
        assert len(held) == rows == len(list(s))
        del held
    assert session < 2 * plain, (session / rows, plain / rows)


# -- keys: read from the store, one column or several ------------------------------------------
def test_composite_keys_map_one_object_per_row(db: mother.Database) -> None:
    shared(db).oc_query("CREATE TABLE grids (gx INTEGER, gy INTEGER, label TEXT, "
                       "PRIMARY KEY (gx, gy))")
    db.refresh_schema()
    grids = getMotherBuilder("grids")
    with MotherSession() as s:
        for gx, gy in ((1, 2), (2, 1)):
            s.persist(grids({"gx": gx, "gy": gy, "label": f"{gx}{gy}"}))
        s.commit()
        one = s.get(grids, (1, 2))
        assert one._mo_key == (1, 2) and one.getField("label") == "12"
        assert s.get(grids, {"gy": 2, "gx": 1}) is one
        assert grids({"gx": 1, "gy": 2}, MO_LOAD, session=s) is one
        assert grids({"label": "12"}, MO_LOAD, session=s) is one
        (boxed,) = mother.MotherBox(grids, {"gx": 1, "gy": 2}, MO_LOAD,
                                    session=s).getRecords(flag_obj=True)
        assert boxed is one
        other = s.get(grids, (2, 1))
        assert other is not one and set(s) == {one, other}
        del one, boxed
        gc.collect()
        assert set(s) == {other}
        again = s.get(grids, (1, 2))
        assert again.getField("label") == "12" and set(s) == {other, again}
        s.delete(again)
        s.flush()
        assert s.get(grids, (1, 2)) is None and set(s) == {other}
    shared(db).oc_query("DROP TABLE grids")
    db.refresh_schema()


def test_the_key_follows_the_store(db: mother.Database, star_id: int) -> None:
    with MotherSession(autoflush=False) as s:
        vega = ClsStars({"star_name": "Vega"})
        assert vega._mo_key is None
        vega.setField("star_id", 77)  # a transient object may change its key
        assert vega._mo_key == (77,)
        s.persist(vega)
        assert s.get(ClsStars, 77) is None  # not mapped before it is written
        s.flush()
        assert s.get(ClsStars, 77) is vega
        rigel = s.persist(ClsStars({"star_name": "Rigel"}))
        s.flush()  # the generated key comes back into the store, and into the map
        assert rigel._mo_key == (rigel.getField("star_id"),)
        assert s.get(ClsStars, rigel.getField("star_id")) is rigel
        s.rollback()
        assert rigel._mo_key is None and vega._mo_key == (77,)
        assert set(s) == set()
    assert repr(vega) == "<ClsStars stars (77,)>"
    mother.close_all()  # no schema left to read the key by: repr shows the store
    assert repr(rigel) == "<ClsStars stars {'star_name': 'Rigel'}>"


def test_rows_without_a_primary_key_are_not_mapped(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        s.oc_query("INSERT INTO civilizations (age) VALUES (3)")
        first, second = (mother.MotherBox("civilizations", None, MO_LOAD, session=s)
                         .getRecords(flag_obj=True)[0] for _ in range(2))
        assert first is not second and first._mo_key is None
        # not tracked (the session cannot tell such rows apart): neither listed nor "in"
        assert list(s) == [] and first not in s


def test_membership_and_iteration_agree(db: mother.Database, star_id: int) -> None:
    with MotherSession() as s:
        held = s.get(ClsStars, star_id)
        pending = s.persist(ClsStars({"star_name": "Vega"}))
        probe = ClsStars({"star_id": star_id}, session=s)
        probe.load()  # a second object for a held row: filled, but not the mapped one
        doomed = s.get(ClsPlanets, {"planet_id": s.ov_query("SELECT MIN(planet_id) AS p "
                                                            "FROM planets")})
        s.delete(doomed)
        detached = s.persist(ClsStars({"star_name": "Deneb"}))
        s.detach(detached)
        listed = set(s)
        for obj in (held, pending, probe, doomed, detached):
            assert (obj in s) == (obj in listed), obj
        assert listed == {held, pending, doomed} and probe.getField("star_name") == "Sun"
        s.flush()
        assert doomed not in s and doomed not in set(s)  # deleted in the database: gone
