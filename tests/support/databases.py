"""The databases of a test, of either kind: their DSNs, DDL run, rows counted and added."""

from __future__ import annotations

from pathlib import Path

import mother

#: the kinds of database every ``kind``-parametrised test runs on
KINDS = ("postgresql", "sqlite")


def make_dsn(kind: str, pg_dsns: list[str], tmp_path: Path, index: int = 0) -> str:
    """The DSN of the test's database number ``index`` of ``kind``."""
    if kind == "postgresql":
        return pg_dsns[index]
    return f"sqlite:///{tmp_path / f'test{index}.db'}"


def run_ddl(database: mother.Database, ddl: str) -> None:
    """Run the statements of ``ddl`` (separated by ``;``) on a connection of their own,
    committed together."""
    dialect = database.dialect
    conn = dialect.connect()
    try:
        for statement in filter(None, (part.strip() for part in ddl.split(";"))):
            dialect.begin(conn)
            dialect.execute(conn, statement)
        dialect.commit(conn)
    finally:
        conn.close()


def count(database: mother.Database, table: str, where: str = "") -> int:
    """Rows in ``table`` seen by a fresh connection (so only committed rows count)."""
    conn = database.dialect.connect()
    try:
        sql = f"SELECT COUNT(*) AS n FROM {database.dialect.quote(table)} {where}"
        return database.dialect.execute(conn, sql).fetchone()["n"]
    finally:
        conn.close()


def add_stars(*names: str) -> None:
    """Commit one star per name, numbered from 1, each of age 0."""
    with mother.MotherSession() as s:
        for number, name in enumerate(names, 1):
            s.oc_query("INSERT INTO stars (star_id, star_name, star_age) VALUES "
                       f"({number}, {s.database.dialect.placeholder('name')}, 0)", {"name": name})
