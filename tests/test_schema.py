"""Schema introspection: columns, composite keys, link tables, search_path, refresh_schema()."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from mother import (
    MO_LOAD,
    MO_SAVE,
    MotherSession,
    UnknownFieldError,
    UnknownTableError,
    getMotherObj,
)
from mother.database import Database
from tests.support.databases import run_ddl

COMPOSITE = """
CREATE TABLE regions (country TEXT NOT NULL, code INTEGER NOT NULL, label TEXT,
                      PRIMARY KEY (country, code));
CREATE TABLE towns (town_id {serial} PRIMARY KEY, country TEXT, code INTEGER, town TEXT,
                    FOREIGN KEY (country, code) REFERENCES regions (country, code));
CREATE TABLE twinnings (a_id INTEGER REFERENCES towns (town_id),
                        country TEXT, code INTEGER, since INTEGER,
                        FOREIGN KEY (country, code) REFERENCES regions (country, code))
"""


DROP_COMPOSITE = ("DROP TABLE IF EXISTS twinnings; DROP TABLE IF EXISTS towns; "
                  "DROP TABLE IF EXISTS regions;")


@pytest.fixture
def composite(db: Database) -> Iterator[Database]:
    run_ddl(db, DROP_COMPOSITE + COMPOSITE.format(serial=db.dialect.serial_type))
    db.refresh_schema()
    yield db
    run_ddl(db, DROP_COMPOSITE)  # the PostgreSQL database is shared by the whole run


def test_tutorial_tables_and_columns(db: Database) -> None:
    schema = db.schema
    assert {"stars", "planets", "moons_info", "lifeforms", "civilizations"} <= set(schema.tables)
    stars = schema.table("stars")
    assert list(stars.columns) == ["star_id", "star_name", "star_age", "star_mass"]
    assert stars.primary_key == ("star_id",)
    assert stars.columns["star_id"].has_default
    assert "int" in stars.columns["star_age"].type.lower()
    assert "text" in stars.columns["star_name"].type.lower()
    assert schema.table("civilizations").primary_key == ()


def test_tutorial_foreign_keys_and_link(db: Database) -> None:
    schema = db.schema
    planets = schema.table("planets")
    assert [(fk.columns, fk.ref_table, fk.ref_columns) for fk in planets.foreign_keys] == [
        (("star_id",), "stars", ("star_id",))]
    assert {fk.table for fk in schema.child_keys("planets")} == {"moons_info", "civilizations"}
    links = schema.links_of("planets")
    assert [(link.table, {link.left.ref_table, link.right.ref_table}) for link in links] == [
        ("civilizations", {"planets", "lifeforms"})]
    assert schema.rank("stars") < schema.rank("planets") < schema.rank("moons_info")


def test_composite_primary_and_foreign_keys(composite: Database) -> None:
    schema = composite.schema
    assert schema.table("regions").primary_key == ("country", "code")
    assert not schema.table("regions").columns["code"].has_default  # not a rowid alias
    (fk,) = schema.table("towns").foreign_keys
    assert fk.columns == ("country", "code") and fk.ref_columns == ("country", "code")
    assert fk.ref_table == "regions"
    link = [link for link in schema.links if link.table == "twinnings"][0]
    assert {link.left.ref_table, link.right.ref_table} == {"towns", "regions"}
    assert link.towards("regions")[0].columns == ("country", "code")


def test_records_on_composite_keys(composite: Database) -> None:
    with MotherSession() as session:
        region = getMotherObj("regions", {"country": "it", "code": 6, "label": "Lazio"},
                              MO_SAVE, session)
        assert region.getFields(["country", "code"]) == {"country": "it", "code": 6}
        town = getMotherObj("towns", {"country": "it", "code": 6, "town": "Rome"}, MO_SAVE,
                            session)
        assert isinstance(town.getField("town_id"), int)
    with MotherSession() as session:
        again = getMotherObj("regions", {"country": "it", "code": 6}, MO_LOAD, session)
        assert again.getField("label") == "Lazio"


def test_as_dict_is_json_ready(composite: Database) -> None:
    import json

    data = json.loads(json.dumps(composite.schema.as_dict()))
    assert data["tables"]["regions"]["primary_key"] == ["country", "code"]
    assert {"table": "civilizations", "left": "lifeforms", "right": "planets"} in data["links"] \
        or {"table": "civilizations", "left": "planets", "right": "lifeforms"} in data["links"]


def test_unknown_table_and_column(db: Database) -> None:
    with pytest.raises(UnknownTableError, match="'galaxies'"):
        db.schema.table("galaxies")
    with pytest.raises(UnknownFieldError) as info:
        db.schema.table("stars").column("star_colour")
    assert (info.value.table, info.value.field) == ("stars", "star_colour")


def test_schema_is_cached_until_refresh(db: Database) -> None:
    first = db.schema
    assert db.schema is first
    run_ddl(db, "CREATE TABLE comets (comet_id INTEGER PRIMARY KEY, name TEXT)")
    assert "comets" not in db.schema
    refreshed = db.refresh_schema()
    assert refreshed is db.schema and refreshed is not first
    assert db.schema.table("comets").primary_key == ("comet_id",)
    run_ddl(db, "DROP TABLE comets")


def test_search_path_is_respected(pg_dsns: list[str], pgdb: Database) -> None:
    run_ddl(pgdb, "DROP SCHEMA IF EXISTS hidden CASCADE; CREATE SCHEMA hidden; "
                  "CREATE TABLE hidden.secrets (secret_id SERIAL PRIMARY KEY, word TEXT)")
    pgdb.refresh_schema()
    assert "secrets" not in pgdb.schema
    with pytest.raises(UnknownTableError):
        getMotherObj("secrets", {"word": "x"}, MO_SAVE)
    # on the search_path, it becomes visible
    params = psycopg.conninfo.conninfo_to_dict(pg_dsns[0])
    params["options"] = "-c search_path=hidden,public"
    from mother import init_mother

    visible = init_mother(dsn=psycopg.conninfo.make_conninfo(**params), name="visible",
                          pool_min=1)
    assert visible.schema.table("secrets").primary_key == ("secret_id",)
    assert "stars" in visible.schema
    run_ddl(pgdb, "DROP SCHEMA hidden CASCADE")
