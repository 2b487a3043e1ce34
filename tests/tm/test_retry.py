"""should_retry() and transaction.manager.attempts() against real transient failures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
import transaction

import mother
from mother import MotherSession
from mother.tm import join
from tests.support.databases import count

# the thread's transaction is aborted before and after every test (conftest.py)
pytestmark = pytest.mark.usefixtures("clean_transaction")


def _star(db: mother.Database) -> None:
    with MotherSession() as s:
        s.oc_query("INSERT INTO stars (star_id, star_name, star_age) VALUES (1, 'Sun', 0)")


def test_attempts_retries_a_real_serialization_failure(pgdb: mother.Database) -> None:
    _star(pgdb)
    tries = 0
    for attempt in transaction.manager.attempts(3):
        with attempt:
            tries += 1
            s = MotherSession()
            join(s)
            s.oc_query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            age = s.ov_query("SELECT star_age FROM stars WHERE star_id = 1")
            if tries == 1:  # another connection changes the row under our snapshot
                with psycopg.connect(pgdb.settings.dsn, autocommit=True) as other:
                    other.execute("UPDATE stars SET star_age = 100 WHERE star_id = 1")
            s.oc_query("UPDATE stars SET star_age = %(age)s WHERE star_id = 1", {"age": age + 1})
    assert tries == 2
    assert count(pgdb, "stars", "WHERE star_age = 101") == 1
    assert pgdb.status().in_use == 0


def test_should_retry_is_true_for_serialization_failures_only(pgdb: mother.Database) -> None:
    _star(pgdb)
    dm = join(MotherSession())
    errors = []
    for sql in ("SELECT 1/0", "SELECT * FROM nowhere"):
        with psycopg.connect(pgdb.settings.dsn) as conn:
            try:
                conn.execute(sql)
            except psycopg.Error as error:
                errors.append(error)
    with psycopg.connect(pgdb.settings.dsn) as a, psycopg.connect(pgdb.settings.dsn) as b:
        a.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        a.execute("SELECT * FROM stars").fetchall()
        b.execute("UPDATE stars SET star_age = 5")
        b.commit()
        with pytest.raises(psycopg.errors.SerializationFailure) as info:
            a.execute("UPDATE stars SET star_age = 6")
    assert dm.should_retry(info.value)
    assert [dm.should_retry(error) for error in errors] == [False, False]


def test_should_retry_is_true_for_sqlite_database_is_locked(tmp_path: Path) -> None:
    db = mother.init_mother(dsn=f"sqlite:///{tmp_path / 'locked.db'}", busy_timeout=0.05)
    mother.tutorial.create(db)
    try:
        holder = MotherSession()
        holder.oc_query("INSERT INTO stars (star_name) VALUES ('x')")  # holds the write lock
        dm = join(MotherSession())
        with pytest.raises(sqlite3.OperationalError, match="locked") as info:
            dm.session.oc_query("INSERT INTO stars (star_name) VALUES ('y')")
        assert dm.should_retry(info.value)
        assert not dm.should_retry(sqlite3.OperationalError("no such table: x"))
        holder.close()
    finally:
        transaction.abort()
        mother.close_all()


def test_attempts_retries_when_sqlite_is_locked(tmp_path: Path) -> None:
    db = mother.init_mother(dsn=f"sqlite:///{tmp_path / 'locked.db'}", busy_timeout=0.05)
    mother.tutorial.create(db)
    holder = MotherSession()
    holder.oc_query("INSERT INTO stars (star_name) VALUES ('holder')")
    tries = 0
    try:
        for attempt in transaction.manager.attempts(3):
            with attempt:
                tries += 1
                s = MotherSession()
                join(s)
                if tries == 2:
                    holder.endSession()  # the lock goes away before the retry writes
                s.oc_query("INSERT INTO stars (star_name) VALUES ('mine')")
        assert tries == 2 and count(db, "stars") == 2
    finally:
        mother.close_all()


def test_a_locked_database_is_retried_on_the_first_transaction_after_init(
        tmp_path: Path) -> None:
    """Issue 11, case 12: nothing may connect before the data manager has joined."""
    path = tmp_path / "first.db"
    setup = sqlite3.connect(path)  # SQLite's default journal mode: WAL is not set yet
    setup.execute("CREATE TABLE stars (star_id INTEGER PRIMARY KEY, star_name TEXT)")
    setup.commit()
    setup.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # switching to WAL now times out: "database is locked"
    db = mother.init_mother(dsn=f"sqlite:///{path}", busy_timeout=0.05)
    tries = 0
    try:
        for attempt in transaction.manager.attempts(3):
            with attempt:
                tries += 1
                s = MotherSession()
                join(s)
                if tries == 2:
                    holder.execute("ROLLBACK")  # the lock goes away before the retry
                s.oc_query("INSERT INTO stars (star_name) VALUES ('first')")
        assert tries == 2 and count(db, "stars") == 1
    finally:
        holder.close()
        mother.close_all()
