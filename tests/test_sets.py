"""MotherBox, MotherMany and MotherFusion, with every filter form and the error cases."""

from __future__ import annotations

import pytest

from mother import (
    MO_DEL,
    MO_LOAD,
    MO_NOA,
    MO_SAVE,
    MO_UP,
    SQL_DEFAULT,
    InvalidFilterError,
    MoFilter,
    MotherBox,
    MotherFusion,
    MotherMany,
    MotherSession,
    ParanoidError,
    UnknownFieldError,
    UnknownTableError,
    init_mother,
)
from mother.joins import RelationError
from mother.sets import SetError
from tests.support.classes import ClsCivilizations, ClsLifeforms, ClsMoonsInfo, ClsPlanets, ClsStars
from tests.support.databases import count


@pytest.fixture
def stars(db):
    rows = [{"star_name": n, "star_mass": m} for n, m in (("sun", 20), ("vega", 5), ("rigel", 9))]
    MotherMany(ClsStars, rows, MO_SAVE)
    return db


def names(box):
    return sorted(row["star_name"] for row in box)


def test_box_load_with_each_filter_form(stars, kind):
    assert names(MotherBox(ClsStars, {"star_name": "sun"}, MO_LOAD)) == ["sun"]
    assert names(MotherBox(ClsStars, "star_mass > 6", MO_LOAD)) == ["rigel", "sun"]
    ph = "%(m)s" if kind == "postgresql" else ":m"
    assert names(MotherBox(ClsStars, MoFilter(f"star_mass < {ph}", store={"m": 10}),
                           MO_LOAD)) == ["rigel", "vega"]
    combined = MoFilter({"star_name": "vega"}).add_filter("star_mass = 5")
    assert names(MotherBox(ClsStars, combined, MO_LOAD)) == ["vega"]
    assert names(MotherBox(ClsStars, MoFilter(["star_name"], store={"star_name": "sun"}),
                           MO_LOAD)) == ["sun"]
    assert names(MotherBox(ClsStars, {"star_mass": None}, MO_LOAD)) == []
    assert len(MotherBox(ClsStars, None, MO_LOAD)) == 3


def test_box_string_filter_keeps_a_literal_percent(stars):
    assert names(MotherBox(ClsStars, "star_name LIKE 's%'", MO_LOAD)) == ["sun"]


def test_box_fields_order_distinct_and_table_name_builder(stars):
    box = MotherBox("stars", fields=["star_mass"], flag=MO_LOAD, order=["-star_mass"])
    assert box.getRecords() == [{"star_mass": 20}, {"star_mass": 9}, {"star_mass": 5}]
    MotherMany(ClsStars, [{"star_name": "sun", "star_mass": 1}], MO_SAVE)
    distinct = MotherBox(ClsStars, fields=["star_name"], flag=MO_LOAD, distinct=True,
                         order="star_name")
    assert [r["star_name"] for r in distinct] == ["rigel", "sun", "vega"]
    objs = MotherBox("stars", {"star_name": "vega"}, MO_LOAD).getRecords(flag_obj=True)
    assert objs[0].table_name == "stars" and objs[0].getField("star_mass") == 5


def test_box_flag_obj_gives_builder_instances_from_the_identity_map(stars):
    with MotherSession() as session:
        vega = ClsStars({"star_name": "vega"}, MO_LOAD, session=session)
        objs = MotherBox(ClsStars, order="star_name", flag=MO_LOAD,
                         session=session).getRecords(True)
        assert all(type(obj) is ClsStars for obj in objs)
        assert vega in objs
        assert all(obj.session is session for obj in objs)


def test_box_update_and_delete(stars):
    box = MotherBox(ClsStars, {"star_name": "vega"}, MO_UP, fields={"star_mass": 6})
    assert box.rowcount == 1
    assert MotherBox(ClsStars, {"star_mass": 6}, MO_LOAD).getRecords()[0]["star_name"] == "vega"
    assert MotherBox(ClsStars, "star_mass > 8", MO_DEL).rowcount == 2
    assert count(stars, "stars") == 1
    assert MotherBox(ClsStars, flag=MO_DEL).rowcount == 1
    assert count(stars, "stars") == 0


def test_box_errors(stars):
    with pytest.raises(UnknownFieldError):
        MotherBox(ClsStars, {"planet_name": "x"}, MO_LOAD)
    with pytest.raises(UnknownFieldError):
        MotherBox(ClsStars, fields=["nope"], flag=MO_LOAD)
    with pytest.raises(UnknownFieldError):
        MotherBox(ClsStars, flag=MO_LOAD, order=["nope"])
    with pytest.raises(UnknownFieldError):
        MotherBox(ClsStars, {"star_name": "sun"}, MO_UP, fields={"nope": 1})
    with pytest.raises(SetError):
        MotherBox(ClsStars, {"star_name": "sun"}, MO_UP)
    with pytest.raises(SetError):
        MotherBox(ClsStars, flag=99)
    with pytest.raises(InvalidFilterError):
        MotherBox(ClsStars, 42, MO_LOAD)
    with pytest.raises(UnknownTableError):
        MotherBox("nowhere", flag=MO_LOAD)
    assert len(MotherBox(ClsStars)) == 0  # MO_NOA does nothing
    assert count(stars, "stars") == 3


def test_box_paranoid_refuses_unfiltered_writes(dsn, kind):
    from mother import tutorial

    db = init_mother(dsn=dsn, paranoid=True)
    tutorial.create(db)
    MotherMany(ClsStars, [{"star_name": "a"}], MO_SAVE)
    with pytest.raises(ParanoidError):
        MotherBox(ClsStars, flag=MO_DEL)
    with pytest.raises(ParanoidError):
        MotherBox(ClsStars, flag=MO_UP, fields={"star_mass": 1})
    assert count(db, "stars") == 1


def test_many_insert_returns_keys_and_handles_mixed_rows(db):
    rows = [{"star_name": "a"}, {"star_name": "b", "star_mass": 2},
            {"star_name": "c", "star_mass": SQL_DEFAULT}, {"star_name": "d"}]
    many = MotherMany(ClsStars, rows, MO_SAVE)
    keys = [row["star_id"] for row in many.getRecords()]
    assert len(set(keys)) == 4 and all(keys)
    assert "star_mass" not in rows[2]
    by_id = {r["star_id"]: r["star_name"] for r in MotherBox(ClsStars, flag=MO_LOAD)}
    assert [by_id[k] for k in keys] == ["a", "b", "c", "d"]
    objs = many.getRecords(flag_obj=True)
    assert [o.getField("star_name") for o in objs] == ["a", "b", "c", "d"]
    assert len(many) == 4 and [r["star_name"] for r in many] == ["a", "b", "c", "d"]


def test_many_in_a_session_rolls_back(db):
    with MotherSession() as session:
        MotherMany(ClsStars, [{"star_name": str(i)} for i in range(50)], MO_SAVE, session)
        assert len(MotherBox(ClsStars, flag=MO_LOAD, session=session)) == 50
        session.rollback()
    assert count(db, "stars") == 0


def test_many_load_update_delete_and_add_rows(db):
    MotherMany(ClsStars, [{"star_name": n, "star_mass": 1} for n in "abcd"], MO_SAVE)
    many = MotherMany(ClsStars, flag=MO_NOA)
    many.addRows({"star_name": "a"})
    many.addRows([{"star_name": "b"}, {"star_name": "zz"}])
    assert len(many) == 3
    many.load()
    assert sorted(r["star_name"] for r in many) == ["a", "b"]
    MotherMany(ClsStars, [{"star_name": "a", "star_mass": 7}], MO_UP, fields=["star_mass"])
    star_a = MotherBox(ClsStars, {"star_name": "a"}, MO_LOAD).getRecords()[0]
    MotherMany(ClsStars, [{"star_id": star_a["star_id"], "star_age": 4}], MO_UP)  # SET non-keys
    assert MotherBox(ClsStars, {"star_age": 4}, MO_LOAD).getRecords()[0]["star_name"] == "a"
    MotherMany(ClsStars, [{"star_name": "c", "star_age": 3, "star_mass": 8}], MO_UP,
               fields=["star_mass"])
    loaded = MotherMany(ClsStars, [{"star_mass": 7}, {"star_mass": 8}], MO_LOAD,
                        fields=["star_name"])
    assert sorted(r["star_name"] for r in loaded) == ["a"]  # c had no star_age 3
    MotherMany(ClsStars, [{"star_name": "a"}, {"star_name": "b", "star_age": None}], MO_DEL)
    assert count(db, "stars") == 2


def test_many_errors(db):
    with pytest.raises(SetError):
        MotherMany(ClsStars, "not rows", MO_SAVE)
    with pytest.raises(UnknownFieldError):
        MotherMany(ClsStars, [{"nope": 1}], MO_SAVE)
    with pytest.raises(SetError):
        MotherMany(ClsStars, [{"star_id": 1}], MO_UP)  # nothing to set
    with pytest.raises(SetError):
        MotherMany(ClsStars, [{"star_name": "x"}], MO_UP, fields=["star_mass"])
    with pytest.raises(SetError):
        MotherMany(ClsStars, [{"star_name": "x"}], 42)
    MotherMany(ClsStars, [], MO_SAVE)  # nothing to do
    assert count(db, "stars") == 0


@pytest.fixture
def solar(db):
    sun = ClsStars({"star_name": "sun", "star_mass": 20}, MO_SAVE)
    earth = ClsPlanets({"planet_name": "earth", "star_id": sun.getField("star_id")}, MO_SAVE)
    ClsPlanets({"planet_name": "mars", "star_id": sun.getField("star_id")}, MO_SAVE)
    ClsStars({"star_name": "lonely"}, MO_SAVE)
    humans = ClsLifeforms({"life_name": "humans"}, MO_SAVE)
    ClsCivilizations({"planet_id": earth.getField("planet_id"),
                      "life_id": humans.getField("life_id"), "age": 12}, MO_SAVE)
    ClsMoonsInfo({"planet_id": earth.getField("planet_id"), "num_moons": 1}, MO_SAVE)
    return db


def test_fusion_parent_child_in_either_order(solar):
    a = MotherFusion(ClsPlanets, ClsStars, order=["planet_name"])
    b = MotherFusion(ClsStars, ClsPlanets, order=["planet_name"])
    assert a.getRecords() == b.getRecords()
    assert [(r["star_name"], r["planet_name"]) for r in a] == [("sun", "earth"), ("sun", "mars")]
    pairs = a.getRecords(flag_obj=True)
    assert type(pairs[0][0]) is ClsStars and type(pairs[0][1]) is ClsPlanets


def test_fusion_fields_forms(solar):
    flat = MotherFusion(ClsStars, ClsPlanets, fields=["star_mass", "planet_name"],
                        order="planet_name")
    assert flat.getRecords()[0] == {"star_mass": 20, "planet_name": "earth"}
    aliased = MotherFusion(ClsStars, ClsPlanets, fields={"star_name": "foo",
                                                         "planets.planet_name": "bar"})
    assert sorted(r["bar"] for r in aliased) == ["earth", "mars"]
    parts = MotherFusion(ClsPlanets, ClsStars, fields=({"planet_mass": "pm"}, ["star_name"]))
    assert set(parts.getRecords()[0]) == {"star_name", "pm"}  # the tuple follows the swap
    everything = MotherFusion(ClsStars, ClsPlanets, fields=({}, ["planet_name"]))
    assert set(everything.getRecords()[0]) == {"star_id", "star_name", "star_age", "star_mass",
                                               "planet_name"}
    with pytest.raises(UnknownFieldError):
        MotherFusion(ClsStars, ClsPlanets, fields=["life_name"])


def test_fusion_filters_side_and_distinct(solar):
    assert len(MotherFusion(ClsStars, ClsPlanets, filter={"planet_name": "mars"})) == 1
    assert len(MotherFusion(ClsStars, ClsPlanets, filter="planet_name = 'mars'")) == 1
    left = MotherFusion(ClsStars, ClsPlanets, side="LEFT", order="star_name")
    assert len(left) == 3
    lonely = [pair for pair in left.getRecords(True) if pair[1] is None]
    assert lonely[0][0].getField("star_name") == "lonely"
    assert len(MotherFusion(ClsStars, ClsPlanets, fields=["star_name"], distinct=True)) == 1
    with pytest.raises(InvalidFilterError):
        MotherFusion(ClsStars, ClsPlanets, side="SIDEWAYS")


def test_fusion_through_link_table_with_params(solar):
    fusion = MotherFusion(ClsPlanets, ClsLifeforms, params=True)
    row = fusion.getRecords()[0]
    assert row["age"] == 12 and row["planet_name"] == "earth" and row["life_name"] == "humans"
    planet, link, life = fusion.getRecords(flag_obj=True)[0]
    assert link.table_name == "civilizations" and link.getField("age") == 12
    assert life.getField("life_name") == "humans"
    assert len(MotherFusion(ClsPlanets, ClsLifeforms, jfilter={"age": 13})) == 0
    assert len(MotherFusion(ClsPlanets, ClsLifeforms, rtbl="civilizations",
                            params=["age"])) == 1
    no_params = MotherFusion(ClsPlanets, ClsLifeforms).getRecords(flag_obj=True)[0]
    assert len(no_params) == 2
    with pytest.raises(RelationError):
        MotherFusion(ClsStars, ClsLifeforms)
    with pytest.raises(RelationError):
        MotherFusion(ClsPlanets, ClsLifeforms, rtbl="moons_info")


def test_many_insert_in_several_chunks_maps_every_key_to_its_row(db):
    rows = [{"star_name": f"s{i}", "star_age": i} for i in range(2500)]
    MotherMany(ClsStars, rows, MO_SAVE)
    stored = {r["star_id"]: r["star_age"] for r in MotherBox(ClsStars, flag=MO_LOAD)}
    assert len(stored) == 2500
    assert all(stored[row["star_id"]] == row["star_age"] for row in rows)
