"""Dialects: choice from the DSN, quoting, placeholders, SQLite specifics, foreign keys."""

from __future__ import annotations

import gc
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from mother import (
    MO_LOAD,
    MO_SAVE,
    ArgumentError,
    ConfigError,
    MotherError,
    MotherSession,
    close_all,
    getMotherObj,
    init_mother,
    tutorial,
)
from mother.config import make_settings
from mother.database import Database
from mother.dialects import dialect_for
from mother.dialects.base import ByConnection, RowNotChangedError
from tests.support.databases import count


@pytest.fixture(autouse=True)
def _clean():
    yield
    close_all()


@pytest.mark.parametrize(("dsn", "name"), [
    ("postgresql://u@h/db", "postgresql"), ("postgres://u@h/db", "postgresql"),
    ("host=h dbname=d", "postgresql"), ("sqlite://", "sqlite"), ("sqlite:///x.db", "sqlite"),
    ("sqlite:////tmp/x.db", "sqlite"),
])
def test_dialect_from_dsn(dsn: str, name: str) -> None:
    assert dialect_for(make_settings(dsn=dsn), "default").name == name


def test_quote_keeps_embedded_quotes_in_the_name(db: Database) -> None:
    name = 'we"ird`name'
    with MotherSession() as session:
        session.oc_query(f"CREATE TABLE {db.dialect.quote(name)} ({db.dialect.quote(name)} "
                         "INTEGER PRIMARY KEY)")
    db.refresh_schema()
    assert list(db.schema.table(name).columns) == [name]
    getMotherObj(name, {name: 7}, MO_SAVE)
    assert getMotherObj(name, {name: 7}, MO_LOAD).getField(name) == 7


def test_quoted_unknown_name_is_an_error_not_a_string(db: Database) -> None:
    """SQLite reads a double-quoted unknown name as a string literal; the dialect's quoting
    must not: the comparison fails instead of being true for every row."""
    ident = db.dialect.quote("no_such_column")
    with MotherSession() as session:
        session.oc_query("INSERT INTO stars (star_name) VALUES ('no_such_column')")
    session = MotherSession()
    with pytest.raises(Exception, match="no_such_column") as caught:
        session.oc_query(f"DELETE FROM stars WHERE {ident} = 'no_such_column'")
    session.close()
    assert not isinstance(caught.value, MotherError)
    assert count(db, "stars") == 1


def test_placeholders(db: Database, kind: str) -> None:
    expected = "%(x)s" if kind == "postgresql" else ":x"
    assert db.dialect.placeholder("x") == expected


def test_server_version(db: Database, kind: str) -> None:
    conn = db.dialect.connect()
    try:
        version = db.dialect.server_version(conn)
    finally:
        conn.close()
    assert version.startswith("PostgreSQL" if kind == "postgresql" else "SQLite")


def test_foreign_keys_are_enforced(db: Database) -> None:
    session = MotherSession()
    with pytest.raises((psycopg.errors.ForeignKeyViolation, sqlite3.IntegrityError)):
        session.oc_query("INSERT INTO planets (star_id, planet_name) VALUES (999, 'orphan')")
    session.close()


def test_sqlite_memory_database_is_shared_by_the_pool() -> None:
    database = init_mother(dsn="sqlite://", pool_min=1)
    tutorial.create(database)
    with MotherSession() as one:
        one.oc_query("INSERT INTO stars (star_name) VALUES ('mem')")
    held = MotherSession()
    held.connection()  # a second pooled connection sees the same database
    with MotherSession() as two:
        assert two.ov_query("SELECT star_name FROM stars") == "mem"
    held.close()


def test_two_memory_databases_are_separate() -> None:
    a = init_mother(dsn="sqlite://", name="a")
    b = init_mother(dsn="sqlite://", name="b")
    tutorial.create(a)
    with MotherSession(database="a") as s:
        s.oc_query("INSERT INTO stars (star_name) VALUES ('a')")
    conn = b.dialect.connect()
    try:
        tables = conn.execute("SELECT name FROM sqlite_schema").fetchall()
    finally:
        conn.close()
    assert tables == []


def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    database = init_mother(dsn=f"sqlite:///{tmp_path}/w.db")
    with MotherSession() as s:
        assert s.ov_query("PRAGMA journal_mode") == "wal"
        assert s.ov_query("PRAGMA foreign_keys") == 1
    assert database.dialect.memory is False


def test_sqlite_bad_dsn() -> None:
    with pytest.raises(ConfigError) as info:
        init_mother(dsn="sqlite:relative")
    assert info.value.key == "dsn"


def test_sqlite_writers_are_serialized_not_failed(tmp_path: Path) -> None:
    """Two sessions writing at once: the second waits for the first (busy timeout)."""
    database = init_mother(dsn=f"sqlite:///{tmp_path}/s.db", busy_timeout=30)
    tutorial.create(database)
    assert database.dialect.concurrent_writes is False
    first = MotherSession()
    first.oc_query("INSERT INTO stars (star_name) VALUES ('first')")
    started, done = threading.Event(), threading.Event()

    def second() -> None:
        started.set()
        with MotherSession() as s:
            s.oc_query("INSERT INTO stars (star_name) VALUES ('second')")
        done.set()

    worker = threading.Thread(target=second)
    worker.start()
    started.wait()
    assert not done.is_set()
    first.endSession()
    worker.join()
    with MotherSession() as s:
        assert [r["star_name"] for r in s.mr_query("SELECT star_name FROM stars ORDER BY star_id")
                ] == ["first", "second"]


def test_is_transient(db: Database, kind: str) -> None:
    dialect = db.dialect
    if kind == "postgresql":
        assert dialect.is_transient(psycopg.errors.SerializationFailure())
        assert dialect.is_transient(psycopg.errors.DeadlockDetected())
        assert not dialect.is_transient(psycopg.errors.UniqueViolation())
        assert not dialect.is_transient(psycopg.errors.LockNotAvailable())  # NOWAIT
    else:
        assert dialect.is_transient(sqlite3.OperationalError("database is locked"))
        assert not dialect.is_transient(sqlite3.IntegrityError("UNIQUE constraint failed"))


def _batch_statements(db: Database) -> list[tuple[str, list[dict[str, object]], bool]]:
    ph = db.dialect.placeholder
    return [
        (f"INSERT INTO stars (star_name) VALUES ({ph('n')}) RETURNING star_name",
         [{"n": "a"}, {"n": "b"}], True),
        (f"UPDATE stars SET star_age = 1 WHERE star_name = {ph('n')}",
         [{"n": "a"}, {"n": "nobody"}, {"n": "b"}], False),
        (f"DELETE FROM stars WHERE star_age = {ph('age')}", [{"age": 1}], False),
    ]


def test_run_batch_counts_each_parameter_set(db: Database) -> None:
    conn = db.dialect.connect()
    try:
        db.dialect.begin(conn)
        inserted, updated, deleted = db.dialect.run_batch(conn, _batch_statements(db))
        db.dialect.rollback(conn)
    finally:
        conn.close()
    assert inserted.rows == [{"star_name": "a"}, {"star_name": "b"}]
    assert inserted.counts == [1, 1]
    assert (updated.rows, updated.counts) == ([], [1, 0, 1])
    assert deleted.counts == [2]


@pytest.mark.parametrize("commit", [False, True])
def test_run_batch_refuses_a_statement_that_must_change_a_row_and_did_not(
        db: Database, commit: bool) -> None:
    conn = db.dialect.connect()
    try:
        db.dialect.begin(conn)
        with pytest.raises(RowNotChangedError) as info:
            db.dialect.run_batch(conn, _batch_statements(db)[:2], commit, must_change={1})
        assert (info.value.statement, info.value.index) == (1, 1)
        db.dialect.rollback(conn)
    finally:
        conn.close()
    assert count(db, "stars") == 0  # the COMMIT that rode along did not happen


def test_sqlite_create_setting(tmp_path: Path) -> None:
    """``create = false`` refuses a missing file (a typo) instead of making an empty one;
    the default still makes it, as a new application wants."""
    typo = tmp_path / "typo.db"
    database = init_mother(dsn=f"sqlite:///{typo}", create=False)
    with pytest.raises(ConfigError, match=f"no SQLite database file {typo}: check the path, "
                       "or set create = true to make a new one"):
        database.schema  # noqa: B018 - reading it connects
    assert not typo.exists()
    init_mother(dsn=f"sqlite:///{typo}").schema  # noqa: B018
    assert typo.exists()
    assert init_mother(dsn=f"sqlite:///{typo}", create="false").schema.tables == {}


def test_sqlite_refuses_a_psycopg_composed_query_naming_it(tmp_path: Path) -> None:
    init_mother(dsn=f"sqlite:///{tmp_path}/c.db", create=True, recover_interval=None)
    try:
        with MotherSession() as session, pytest.raises(
                ArgumentError, match=r"on sqlite is SQL text \(str\), not psycopg\.sql\.SQL: "
                                     r"psycopg\.sql composes PostgreSQL's"):
            session.mr_query(sql.SQL("SELECT 1"))
    finally:
        close_all()


def test_state_by_connection_goes_with_its_connection(pgdb: Database) -> None:
    states: ByConnection[list[str]] = ByConnection()
    kept, dropped = (psycopg.connect(pgdb.settings.dsn) for _ in range(2))
    states.attach(kept, ["kept"])
    states.attach(dropped, ["dropped"])
    dropped.close()
    del dropped
    gc.collect()
    assert list(states.values()) == [["kept"]] and states.get(id(kept)) == ["kept"]
    kept.close()
