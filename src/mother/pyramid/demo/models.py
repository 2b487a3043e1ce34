"""The demo's data: Mother's tutorial tables (stars, planets, lifeforms) and sample rows
in the first database, and a hangar of starships in each of the two databases."""

from __future__ import annotations

import logging
from typing import Any

from ... import MO_SAVE, DbMother, Session, tutorial
from ...database import Database
from ..websession import create_websession_table

log = logging.getLogger(__name__)

#: the demo's two databases (configured names) and the galaxy each one stands for
GALAXIES = {"default": "Milky Way", "andromeda": "Andromeda"}
#: the ships each hangar holds on first run
FIRST_SHIPS = {"default": 7, "andromeda": 5}
HANGAR_DDL = ("CREATE TABLE hangars (hangar_id INTEGER PRIMARY KEY, hangar_name TEXT NOT NULL, "
              "ships INTEGER NOT NULL CHECK (ships >= 0))")


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


def setup_hangar(database: Database) -> None:
    """Create the database's hangar with its first ships on first run (an existing one is kept)."""
    if "hangars" in database.schema.tables:
        return
    session = Session("demo-setup", database=database)
    try:
        session.oc_query(HANGAR_DDL)
        placeholder = database.dialect.placeholder
        session.oc_query(f"INSERT INTO hangars (hangar_id, hangar_name, ships) VALUES "
                         f"(1, {placeholder('name')}, {placeholder('ships')})",
                         {"name": GALAXIES[database.name], "ships": FIRST_SHIPS[database.name]})
        session.endSession()
    except BaseException:
        session.close()
        raise
    database.refresh_schema()


def ships(session: Session) -> int:
    """The ships in the hangar of the session's database."""
    count: int = session.ov_query("SELECT ships AS n FROM hangars WHERE hangar_id = 1")
    return count


def move_ships(session: Session, change: int) -> None:
    """Add ``change`` ships (a negative number takes them away) to the session's hangar.

    The table's ``CHECK (ships >= 0)`` refuses to take more than there are.
    """
    placeholder = session.database.dialect.placeholder("change")
    session.oc_query(f"UPDATE hangars SET ships = ships + {placeholder} WHERE hangar_id = 1",
                     {"change": change})


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
    """How many stars, planets and lifeforms the session's database holds."""
    quote = session.database.dialect.quote
    return {table: session.ov_query(f"SELECT COUNT(*) AS n FROM {quote(table)}")
            for table in ("stars", "planets", "lifeforms")}
