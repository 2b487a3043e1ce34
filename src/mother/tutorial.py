"""The tutorial schema of Mother's manual: stars, planets, moons_info, lifeforms, civilizations.

Used by the demo, the documentation and the tests.
"""

from __future__ import annotations

from .database import Database

TABLES = ("civilizations", "moons_info", "lifeforms", "planets", "stars")

DDL = """
CREATE TABLE stars (
    star_id {serial} PRIMARY KEY, star_name TEXT, star_age INTEGER, star_mass INTEGER);
CREATE TABLE planets (
    star_id INTEGER REFERENCES stars(star_id), planet_id {serial} PRIMARY KEY,
    planet_name TEXT, planet_mass INTEGER);
CREATE TABLE moons_info (
    planet_id INTEGER REFERENCES planets(planet_id), moon_info_id {serial} PRIMARY KEY,
    num_moons INTEGER);
CREATE TABLE lifeforms (
    life_id {serial} PRIMARY KEY, life_name TEXT, life_age INTEGER);
CREATE TABLE civilizations (
    life_id INTEGER REFERENCES lifeforms(life_id),
    planet_id INTEGER REFERENCES planets(planet_id), age INTEGER);
"""


def create(database: Database, drop: bool = True) -> None:
    """(Re)create the tutorial tables in ``database`` and refresh its schema."""
    statements = []
    if drop:
        statements += [f"DROP TABLE IF EXISTS {database.dialect.quote(name)}" for name in TABLES]
    statements += [part.strip() for part in
                   DDL.format(serial=database.dialect.serial_type).split(";") if part.strip()]
    conn = database.dialect.connect()
    try:
        for statement in statements:
            database.dialect.begin(conn)
            database.dialect.execute(conn, statement)
        database.dialect.commit(conn)
    finally:
        conn.close()
    database.refresh_schema()
