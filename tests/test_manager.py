"""MotherManager: generated child, many and relation methods, and their errors."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import mother
from mother import (
    MO_DEL,
    MO_LOAD,
    MO_NOA,
    MO_SAVE,
    ArgumentError,
    DbMother,
    MotherBox,
    MotherError,
    MotherManager,
    MotherMany,
    MotherSession,
    NotLoadedError,
    NotUniqueError,
    UnknownFieldError,
    UnknownTableError,
)
from mother.executor import shared
from mother.joins import AmbiguousRelationError, RelationError
from mother.manager import MotherNaming
from tests.support.databases import count
from tests.support.manager_classes import MLifeforms, MMoonsInfo, MPlanets, MStars


@pytest.fixture
def solar(db):
    with MotherSession("solar") as session:
        sun = MStars({"star_name": "sun"}, MO_SAVE, session=session)
        earth = sun.insertPlanets({"planet_name": "earth", "planet_mass": 6})
        sun.insertPlanets({"planet_name": "mars", "planet_mass": 1})
        yield session, sun, earth


def test_naming_from_table_names():
    assert MotherNaming("moons_info", "insert") == "insertMoonsInfo"
    assert MotherNaming("planets", "getMultiple") == "getMultiplePlanets"
    assert MotherNaming("planets") == "Planets"


def test_methods_are_made_once_per_class_not_per_instance(solar):
    session, sun, _earth = solar
    assert "insertPlanets" in MStars.__dict__
    assert "insertPlanets" not in sun.__dict__
    generated = MStars.__dict__["insertPlanets"]
    MStars({"star_name": "other"}, MO_SAVE, session=session)
    assert MStars.__dict__["insertPlanets"] is generated


def test_a_method_the_class_defines_is_never_overwritten(db):
    class Stars(DbMother, MotherManager):
        table_name = "stars"

        def insertPlanets(self, store=None):
            return "mine"

    star = Stars({"star_name": "x"}, MO_SAVE)
    star.initChildManager()
    assert star.insertPlanets({}) == "mine"
    assert callable(star.getMultiplePlanets)


def test_init_after_dbmother_init_and_all_children_by_default(db):
    class Stars(DbMother, MotherManager):
        table_name = "stars"

    star = Stars({"star_name": "x"}, MO_SAVE)
    star.initChildManager()
    star.initManyManager()
    planet = star.insertPlanets({"planet_name": "p"})
    assert type(planet).table_name == "planets"
    assert planet.getField("star_id") == star.getField("star_id")
    assert len(star.insertManyPlanets([{"planet_name": "a"}, {"planet_name": "b"}])) == 2
    assert count(db, "planets", "WHERE star_id IS NOT NULL") == 3


def test_fnaming_hook_changes_the_names(db):
    class Stars(DbMother, MotherManager):
        table_name = "stars"
        fnaming = staticmethod(lambda table, prefix: f"{prefix}_{table}")

    star = Stars({"star_name": "x"}, MO_SAVE)
    star.initChildManager(["planets"])
    assert star.insert_planets({"planet_name": "p"}).getField("planet_name") == "p"
    assert not hasattr(star, "insertPlanets")


def test_not_a_child_and_unknown_table_are_refused(db):
    star = MStars({"star_name": "x"}, MO_SAVE)
    with pytest.raises(RelationError):
        star.initChildManager(["lifeforms"])
    with pytest.raises(UnknownTableError):
        star.initChildManager(["nowhere"])
    with pytest.raises(RelationError):
        star.initRelationManager(["moons_info"])
    assert issubclass(RelationError, MotherError)


def test_insert_and_get_child_fill_the_foreign_key(solar):
    session, sun, earth = solar
    assert earth.getField("star_id") == sun.getField("star_id")
    assert earth.session is session
    got = sun.getPlanets({"planet_name": "earth"})
    assert got is earth  # the session's identity map
    with pytest.raises(NotUniqueError):
        sun.getPlanets()
    with pytest.raises(NotUniqueError):
        sun.getPlanets({"planet_name": "pluto"})


def test_child_methods_need_the_parent_key(db):
    star = MStars({"star_name": "nobody"})
    with pytest.raises(NotUniqueError):
        star.insertPlanets({"planet_name": "p"})  # autoload finds no such star
    assert count(db, "planets") == 0
    assert isinstance(NotLoadedError("x"), MotherError)


def test_get_multiple_with_fields_filter_order(solar):
    _session, sun, _earth = solar
    box = sun.getMultiplePlanets(fields=["planet_name"], order=["-planet_mass"])
    assert isinstance(box, MotherBox)
    assert box.getRecords() == [{"planet_name": "earth"}, {"planet_name": "mars"}]
    assert [r["planet_name"] for r in sun.getMultiplePlanets(filter={"planet_mass": 1})] == [
        "mars"]
    with pytest.raises(UnknownFieldError):
        sun.getMultiplePlanets(filter={"num_moons": 1})


def test_get_multiple_through_grandchild_and_related_table(solar):
    session, sun, earth = solar
    earth.insertMoonsInfo({"num_moons": 1})
    humans = earth.assignLifeforms({"life_name": "humans"}, MO_SAVE)
    through_moons = sun.getMultiplePlanets(jbuilder=MMoonsInfo, jfilter={"num_moons": 1})
    assert [r["planet_name"] for r in through_moons] == ["earth"]
    through_life = sun.getMultiplePlanets(jbuilder=MLifeforms,
                                          jfilter={"life_name": "humans"})
    assert [r["planet_name"] for r in through_life] == ["earth"]
    by_link = sun.getMultiplePlanets(jbuilder="lifeforms", jfilter=humans.getFields(["life_id"]))
    assert len(by_link) == 1
    outer = sun.getMultiplePlanets(jbuilder=MMoonsInfo, outer=True, order="planet_name")
    assert [r["planet_name"] for r in outer] == ["earth", "mars"]
    with pytest.raises(RelationError):
        sun.getMultiplePlanets(jbuilder=MStars)


def test_update_and_delete_multiple_only_touch_this_parents_children(solar):
    session, sun, _earth = solar
    other = MStars({"star_name": "other"}, MO_SAVE, session=session)
    other.insertPlanets({"planet_name": "far", "planet_mass": 1})
    assert sun.updateMultiplePlanets({"planet_mass": 9}, {"planet_name": "mars"}) == 1
    assert sun.getPlanets({"planet_name": "mars"}).getField("planet_mass", autoload=True) in (1, 9)
    rows = MotherBox(MPlanets, {"planet_mass": 9}, MO_LOAD, session=session)
    assert [r["planet_name"] for r in rows] == ["mars"]
    assert sun.deleteMultiplePlanets("planet_mass = 9") == 1
    assert sun.deleteMultiplePlanets() == 1
    assert [r["planet_name"] for r in other.getMultiplePlanets()] == ["far"]


def test_many_children(solar):
    session, sun, earth = solar
    rows = [{"planet_name": "a"}, {"planet_name": "b"}]
    many = sun.insertManyPlanets(rows)
    assert isinstance(many, MotherMany)
    assert all(row["star_id"] == sun.getField("star_id") and row["planet_id"] for row in rows)
    loaded = sun.loadManyPlanets([{"planet_name": "a"}, {"planet_name": "b"}])
    assert sorted(r["planet_name"] for r in loaded) == ["a", "b"]
    sun.updateManyPlanets([{"planet_name": "a", "planet_mass": 3}], fields=["planet_mass"])
    assert sun.getPlanets({"planet_name": "a"}).getFields(["planet_mass"], autoload=True) == {
        "planet_mass": 3}
    sun.deleteManyPlanets([{"planet_name": "a"}, {"planet_name": "b"}])
    assert len(sun.getMultiplePlanets()) == 2
    earth.insertManyMoonsInfo([{"num_moons": 4}])
    assert earth.getMoonsInfo().getField("num_moons") == 4


def test_many_children_refuse_a_read_only_mapping_naming_the_table(solar):
    session, sun, earth = solar
    with pytest.raises(ArgumentError, match="planets rows get the foreign key added in place"):
        sun.insertManyPlanets([types.MappingProxyType({"planet_name": "ro"})])
    assert len(sun.getMultiplePlanets(filter={"planet_name": "ro"})) == 0


MIXIN_USE = """
from mother import DbMother, MotherManager


class Stars(DbMother, MotherManager):
    table_name = "stars"


class Loose(MotherManager):
    table_name = "stars"


Stars().getChildren("planets")
Loose().getChildren("planets")
"""


def test_a_type_checker_refuses_the_mixin_methods_on_a_class_that_is_not_a_record(tmp_path):
    # MotherManager's methods take a self type: a class with the mixin but without DbMother
    # has no schema or session for them, and mypy says so at the call, not at run time.
    # mypy runs in its own process: in this one it would retune and freeze the garbage
    # collector, keeping the earlier tests' unreferenced sessions (and their locks) alive
    (tmp_path / "use.py").write_text(MIXIN_USE)
    (tmp_path / "mypy.ini").write_text(
        f"[mypy]\nstrict = True\nmypy_path = {Path(mother.__file__).parent.parent}\n"
        "follow_imports = silent\nignore_missing_imports = True\n")
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", str(tmp_path / "use.py"), "--config-file",
         str(tmp_path / "mypy.ini"), "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary"], capture_output=True, text=True, timeout=240)
    out = checked.stdout
    assert checked.returncode == 1, out + checked.stderr
    loose = MIXIN_USE.splitlines().index('Loose().getChildren("planets")') + 1
    assert [line.split(": ", 1)[0] for line in out.splitlines() if ": error:" in line] == [
        f"{tmp_path / 'use.py'}:{loose}"]
    assert 'Invalid self argument "Loose"' in out


def test_relation_methods(solar):
    session, _sun, earth = solar
    humans = earth.assignLifeforms({"life_name": "humans"}, MO_SAVE, {"age": 12})
    existing = MLifeforms({"life_name": "cats"}, MO_SAVE, session=session)
    assert earth.assignLifeforms(existing, params={"age": 2}) is existing
    loaded = earth.assignLifeforms({"life_name": "cats"}, MO_LOAD, {"age": 5})
    assert loaded is existing
    assert [r["life_name"] for r in earth.joinLifeforms(order="life_name")] == ["cats", "humans"]
    assert len(earth.joinLifeforms(filter={"age": 12})) == 1
    assert len(earth.joinLifeforms(jfilter={"life_name": "cats"})) == 1
    assert earth.paramsLifeforms(humans) == {"planet_id": earth.getField("planet_id"),
                                             "life_id": humans.getField("life_id"), "age": 12}
    assert earth.paramsLifeforms({"life_name": "humans"}, fields=["age"])["age"] == 12
    link = earth.paramsLifeforms(humans, flag_obj=True)
    assert link.table_name == "civilizations" and link.getField("age") == 12
    with pytest.raises(NotUniqueError):
        earth.paramsLifeforms(existing)  # two link rows (ages 2 and 5)
    assert earth.dropMultipleLifeforms(filter={"age": 2}) == 1
    assert len(earth.joinLifeforms(jfilter={"life_name": "cats"})) == 1
    assert earth.dropMultipleLifeforms(jfilter={"life_name": "humans"}, flag=MO_DEL) == 1
    gone = MotherBox(MLifeforms, {"life_name": "humans"}, MO_LOAD, session=session)
    assert gone.getRecords() == []
    assert len(MotherBox(MLifeforms, {"life_name": "cats"}, MO_LOAD, session=session)) == 1


def test_assign_is_atomic(db, kind):
    earth = MPlanets({"planet_name": "earth"}, MO_SAVE)
    with pytest.raises(UnknownFieldError):
        earth.assignLifeforms({"life_name": "ghosts"}, MO_SAVE, {"no_such_column": 1})
    assert count(db, "lifeforms") == 0
    with MotherSession() as session:
        planet = MPlanets(earth.getFields(), session=session)
        keep = planet.assignLifeforms({"life_name": "kept"}, MO_SAVE)
        with pytest.raises(UnknownFieldError):
            planet.assignLifeforms({"life_name": "ghosts"}, MO_SAVE, {"no_such_column": 1})
        assert keep.getField("life_id")
    assert count(db, "lifeforms") == 1
    assert count(db, "civilizations") == 1


def test_drop_with_delete_is_atomic(db, kind):
    with MotherSession() as session:
        earth = MPlanets({"planet_name": "earth"}, MO_SAVE, session=session)
        mars = MPlanets({"planet_name": "mars"}, MO_SAVE, session=session)
        shared = earth.assignLifeforms({"life_name": "shared"}, MO_SAVE)
        mars.assignLifeforms(shared)
    with MotherSession() as session:
        earth = MPlanets(earth.getFields(["planet_id"]), session=session)
        with pytest.raises(Exception) as info:  # still linked to mars: the FK refuses
            earth.dropMultipleLifeforms(flag=MO_DEL)
        assert not isinstance(info.value, MotherError)
        assert len(earth.joinLifeforms()) == 1  # the link row came back with the savepoint
    assert count(db, "civilizations") == 2


def test_ambiguous_link_needs_r_tbl(db, kind):
    shared(db).oc_query("CREATE TABLE visits (life_id INTEGER REFERENCES lifeforms(life_id), "
                       "planet_id INTEGER REFERENCES planets(planet_id), day INTEGER)")
    db.refresh_schema()

    class Planets(DbMother, MotherManager):
        table_name = "planets"

    earth = Planets({"planet_name": "earth"}, MO_SAVE)
    earth.initRelationManager(["lifeforms"])  # allowed: the choice is made per call
    with pytest.raises(AmbiguousRelationError) as info:
        earth.assignLifeforms({"life_name": "x"}, MO_SAVE)
    assert "r_tbl" in str(info.value)
    earth.assignLifeforms({"life_name": "tourist"}, MO_SAVE, {"day": 3}, r_tbl="visits")
    assert [r["life_name"] for r in earth.joinLifeforms(r_tbl="visits")] == ["tourist"]
    assert earth.joinLifeforms(r_tbl="civilizations").getRecords() == []
    assert earth.paramsLifeforms({"life_name": "tourist"}, r_tbl="visits")["day"] == 3
    with pytest.raises(RelationError):
        earth.joinLifeforms(r_tbl="stars")
    assert count(db, "visits") == 1
    shared(db).oc_query("DROP TABLE visits")
    db.refresh_schema()


def test_composite_foreign_keys(db, kind):
    shared(db).oc_query("CREATE TABLE grids (gx INTEGER, gy INTEGER, label TEXT, "
                       "PRIMARY KEY (gx, gy))")
    shared(db).oc_query("CREATE TABLE cells (cell_id INTEGER PRIMARY KEY, gx INTEGER, gy INTEGER, "
                       "note TEXT, FOREIGN KEY (gx, gy) REFERENCES grids(gx, gy))")
    db.refresh_schema()

    class Grids(DbMother, MotherManager):
        table_name = "grids"

    grid = Grids({"gx": 1, "gy": 2, "label": "a"}, MO_SAVE)
    Grids({"gx": 1, "gy": 3}, MO_SAVE)
    grid.initChildManager()
    grid.initManyManager()
    cell = grid.insertCells({"cell_id": 10, "note": "n"})
    assert cell.getFields(["gx", "gy"]) == {"gx": 1, "gy": 2}
    grid.insertManyCells([{"cell_id": 11}, {"cell_id": 12}])
    assert sorted(r["cell_id"] for r in grid.getMultipleCells()) == [10, 11, 12]
    assert grid.deleteMultipleCells() == 3
    for name in ("cells", "grids"):
        shared(db).oc_query(f"DROP TABLE {name}")
    db.refresh_schema()


def test_pending_parent_is_flushed_before_children(db, kind):
    with MotherSession() as session:
        star = MStars({"star_name": "pending"}, MO_NOA, session=session)
        session.persist(star)
        planet = star.insertPlanets({"planet_name": "p"})
        assert planet.getField("star_id") == star.getField("star_id") is not None
    assert count(db, "planets", "WHERE star_id IS NOT NULL") == 1


def test_noa_flag_is_default_for_assign(solar):
    _session, _sun, earth = solar
    known = MLifeforms({"life_name": "known"}, MO_SAVE, session=earth.session)
    got = earth.assignLifeforms({"life_id": known.getField("life_id")}, MO_NOA)
    assert got.getField("life_id") == known.getField("life_id")
    assert len(earth.joinLifeforms()) == 1
    assert MO_NOA == 0
