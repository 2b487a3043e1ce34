"""Record classes, and the tables they live in. The columns come from the database."""

from mother import DbMother, MotherSession, get_database


class Star(DbMother):
    table_name = "stars"


class Planet(DbMother):
    table_name = "planets"


def create_tables(database: str = "default") -> None:
    """Create the tables if they are not there yet (at every start: harmless)."""
    db = get_database(database)
    key = db.dialect.serial_type      # INTEGER on SQLite, SERIAL on PostgreSQL: numbered keys
    with MotherSession("create_tables", database=db) as session:
        session.oc_query(f"CREATE TABLE IF NOT EXISTS stars (star_id {key} PRIMARY KEY, "
                         "star_name TEXT NOT NULL)")
        session.oc_query(f"CREATE TABLE IF NOT EXISTS planets (planet_id {key} PRIMARY KEY, "
                         "star_id INTEGER NOT NULL REFERENCES stars(star_id), "
                         "planet_name TEXT NOT NULL)")
    db.refresh_schema()               # read the schema again: it may have just changed
