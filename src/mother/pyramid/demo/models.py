"""The demo's data: Mother's tutorial tables (stars, planets, lifeforms) and sample rows."""

from __future__ import annotations

import logging
from typing import Any

from ... import MO_SAVE, DbMother, Session, tutorial
from ...database import Database
from ..websession import create_websession_table

log = logging.getLogger(__name__)


class Star(DbMother):
    table_name = "stars"


class Planet(DbMother):
    table_name = "planets"


class Lifeform(DbMother):
    table_name = "lifeforms"


class Civilization(DbMother):
    table_name = "civilizations"


SAMPLE = {
    ("Sun", 4600, 1): [("Mercury", 1), ("Venus", 15), ("Earth", 18), ("Mars", 2)],
    ("Sirius", 240, 2): [("Sirius b-I", 40)],
    ("Proxima Centauri", 4850, 0): [("Proxima b", 20), ("Proxima d", 1)],
}
LIFEFORMS = [("Humans", 1, "Earth"), ("Tardigrades", 600, "Earth"),
             ("Proximans", 3000, "Proxima b")]


def setup(database: Database) -> None:
    """Create the tables and the sample rows on first run (an existing database is kept)."""
    if "stars" not in database.schema.tables:
        tutorial.create(database, drop=False)
    create_websession_table(database)
    session = Session("demo-setup", database=database)
    try:
        if session.ov_query("SELECT COUNT(*) AS n FROM stars"):
            session.endSession()
            return
        planets = {}
        for (name, age, mass), children in SAMPLE.items():
            star = Star({"star_name": name, "star_age": age, "star_mass": mass}, MO_SAVE,
                        session=session)
            for planet_name, planet_mass in children:
                planet = Planet({"star_id": star.getField("star_id"), "planet_name": planet_name,
                                 "planet_mass": planet_mass}, MO_SAVE, session=session)
                planets[planet_name] = planet.getField("planet_id")
        for name, age, home in LIFEFORMS:
            life = Lifeform({"life_name": name, "life_age": age}, MO_SAVE, session=session)
            Civilization({"life_id": life.getField("life_id"), "planet_id": planets[home],
                          "age": age}, MO_SAVE, session=session)
        session.endSession()
        log.info("demo: sample data created")
    except BaseException:
        session.close()
        raise


def galaxy(session: Session) -> list[dict[str, Any]]:
    """Every star with its planets and, for each planet, its lifeforms."""
    stars = session.mr_query(
        "SELECT star_id, star_name, star_age, star_mass FROM stars ORDER BY star_id")
    planets = session.mr_query(
        "SELECT planet_id, star_id, planet_name, planet_mass FROM planets ORDER BY planet_id")
    lives = session.mr_query(
        "SELECT c.planet_id, l.life_name FROM civilizations c "
        "JOIN lifeforms l ON l.life_id = c.life_id ORDER BY l.life_id")
    by_star: dict[int, list[dict[str, Any]]] = {star["star_id"]: [] for star in stars}
    for planet in planets:
        planet["lifeforms"] = [life["life_name"] for life in lives
                               if life["planet_id"] == planet["planet_id"]]
        by_star.setdefault(planet["star_id"], []).append(planet)
    for star in stars:
        star["planets"] = by_star.get(star["star_id"], [])
    return stars


def totals(session: Session) -> dict[str, int]:
    quote = session.database.dialect.quote
    return {table: session.ov_query(f"SELECT COUNT(*) AS n FROM {quote(table)}")
            for table in ("stars", "planets", "lifeforms")}
