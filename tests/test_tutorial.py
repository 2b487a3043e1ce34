"""The tutorial of Mother's manual, end to end, with and without sessions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mother import MO_SAVE, MotherSession
from tests.support.databases import count
from tests.support.manager_classes import MLifeforms, MMoonsInfo, MPlanets, MStars


def tutorial(session):
    """The manual's steps; returns what the checks need."""
    sun = MStars({"star_name": "sun", "star_mass": 20, "star_age": 10}, MO_SAVE, session=session)
    earth = sun.insertPlanets({"planet_name": "earth", "planet_mass": 6})
    mars = sun.insertPlanets({"planet_name": "mars", "planet_mass": 1})
    earth.insertMoonsInfo({"num_moons": 1})
    mars.insertMoonsInfo({"num_moons": 2})
    humans = earth.assignLifeforms({"life_name": "humans"}, MO_SAVE, {"age": 12})
    earth.assignLifeforms({"life_name": "mouses"}, MO_SAVE)
    mars.assignLifeforms({"life_name": "martians"}, MO_SAVE, {"age": 3})
    return sun, earth, mars, humans


def check(sun, earth, mars, humans):
    assert {p["planet_name"] for p in sun.getMultiplePlanets()} == {"earth", "mars"}
    assert [p["planet_name"] for p in sun.getMultiplePlanets(filter="planet_mass > 1")] == ["earth"]
    assert [r["life_name"] for r in earth.joinLifeforms(order=["life_name"])] == ["humans",
                                                                                "mouses"]
    by_moons = sun.getMultiplePlanets(jbuilder=MMoonsInfo, jfilter={"num_moons": 2})
    assert [p["planet_name"] for p in by_moons] == ["mars"]
    by_life = sun.getMultiplePlanets(jbuilder=MLifeforms, jfilter=humans.getFields(["life_id"]))
    assert [p.getField("planet_name") for p in by_life.getRecords(flag_obj=True)] == ["earth"]
    assert earth.paramsLifeforms(humans)["age"] == 12


def test_tutorial_in_a_session_committed(db, kind):
    with MotherSession("tutorial") as session:
        objs = tutorial(session)
        check(*objs)
        assert objs[1].session is session
        assert objs[3].session is session
    assert count(db, "planets") == 2
    assert count(db, "civilizations") == 3
    assert count(db, "moons_info") == 2


def test_tutorial_in_a_session_rolled_back(db, kind):
    session = MotherSession("tutorial")
    check(*tutorial(session))
    session.rollback()
    session.endSession()
    for table in ("stars", "planets", "moons_info", "lifeforms", "civilizations"):
        assert count(db, table) == 0


def test_tutorial_error_in_session_rolls_everything_back(db, kind):
    with pytest.raises(ZeroDivisionError), MotherSession("tutorial") as session:
        tutorial(session)
        raise ZeroDivisionError
    assert count(db, "stars") == 0
    assert count(db, "civilizations") == 0


def test_tutorial_on_the_shared_connection_committed(db, kind):
    check(*tutorial(None))
    assert count(db, "planets") == 2
    assert count(db, "civilizations") == 3


def test_tutorial_on_the_shared_connection_rolled_back(db, kind):
    sun = MStars({"star_name": "sun"}, MO_SAVE)
    sun.beginTrans()
    earth = sun.insertPlanets({"planet_name": "earth"})
    earth.assignLifeforms({"life_name": "humans"}, MO_SAVE)
    sun.rollback()
    assert count(db, "stars") == 1
    assert count(db, "planets") == 0
    assert count(db, "lifeforms") == 0


def test_lifeform_sees_its_planets_through_the_other_side(db, kind):
    with MotherSession() as session:
        _sun, earth, _mars, humans = tutorial(session)
        life = MLifeforms(humans.getFields(["life_id"]), session=session)
        assert [p["planet_name"] for p in life.joinPlanets()] == ["earth"]
        assert MPlanets  # the class used for the builder
        assert earth.getField("planet_id") == life.paramsPlanets(earth)["planet_id"]


DOCS = Path(__file__).resolve().parent.parent / "docs"


def code_blocks(path: Path) -> list[str]:
    """The ``.. code-block:: python`` bodies of a chapter, dedented."""
    blocks, current, inside = [], [], False
    for line in path.read_text().splitlines() + ["END"]:
        if line.strip() == ".. code-block:: python":
            inside, current = True, []
        elif inside and (not line.strip() or line.startswith("    ")):
            current.append(line[4:])
        elif inside:
            blocks.append(textwrap.dedent("\n".join(current)))
            inside = False
    return blocks


@pytest.mark.parametrize("chapter", ["children.rst", "sets.rst", "plugins.rst"])
def test_docs_examples_run(db, chapter):
    blocks = code_blocks(DOCS / chapter)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, chapter, "exec"), namespace)  # noqa: S102 - our own docs
