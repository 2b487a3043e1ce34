"""Fixtures: a real PostgreSQL server (with prepared transactions) and real SQLite files.

``MOTHER_TEST_PG_DSN`` names the server; without it ``tools/pgcluster.py``
finds or starts one. Each test run gets its own databases, dropped at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import transaction

import mother
from mother import tutorial

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("postgresql", "sqlite")


def _server_dsn() -> str:
    dsn = os.environ.get("MOTHER_TEST_PG_DSN")
    if dsn:
        return dsn
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "pgcluster.py"), "ensure"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _with_db(dsn: str, dbname: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**params)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The DSN of the test server's maintenance database."""
    return _server_dsn()


@pytest.fixture(scope="session")
def pg_dsns(pg_server: str) -> Iterator[list[str]]:
    """DSNs of two fresh databases on the test server (two-phase tests need two)."""
    names = [f"mother_test_{uuid.uuid4().hex[:10]}_{suffix}" for suffix in ("a", "b")]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    yield [_with_db(pg_server, name) for name in names]
    mother.close_all()
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for gid, in conn.execute("SELECT gid FROM pg_prepared_xacts WHERE database = ANY(%s)",
                                 (names,)).fetchall():
            with psycopg.connect(_with_db(pg_server, names[0]), autocommit=True) as other:
                other.execute(psycopg.sql.SQL("ROLLBACK PREPARED {}").format(gid))
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_dsn(kind: str, pg_dsns: list[str], tmp_path: Path, index: int = 0) -> str:
    if kind == "postgresql":
        return pg_dsns[index]
    return f"sqlite:///{tmp_path / f'test{index}.db'}"


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def dsn(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "postgresql":
        return request.getfixturevalue("pg_dsns")[0]
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def db(dsn: str) -> Iterator[mother.Database]:
    """The default database, on each kind, with fresh tutorial tables (no automatic
    recovery: tests look at what they leave prepared)."""
    database = mother.init_mother(dsn=dsn, pool_min=1, pool_max=10, pool_timeout=5,
                                  recover_interval=None)
    tutorial.create(database)
    yield database
    mother.close_all()


@pytest.fixture
def pgdb(pg_dsns: list[str]) -> Iterator[mother.Database]:
    """The default database on PostgreSQL only, with fresh tutorial tables."""
    database = mother.init_mother(dsn=pg_dsns[0], pool_min=1, pool_max=10, pool_timeout=5,
                                  recover_interval=None)
    tutorial.create(database)
    yield database
    mother.close_all()


@pytest.fixture
def clean_transaction() -> Iterator[None]:
    """The thread's ``transaction`` aborted before and after the test (mother.tm tests)."""
    transaction.abort()
    yield
    transaction.abort()


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
