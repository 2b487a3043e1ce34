"""Read-only sessions: writes refused before anything is sent, and by the database behind them."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import transaction

import mother
from mother import (
    MO_DEL,
    MO_SAVE,
    MO_UP,
    MotherBox,
    MotherSession,
    ReadOnlySessionError,
    SessionConflictError,
    session_scope,
)
from mother.tm import current_session
from tests.support.classes import ClsStars
from tests.support.databases import add_stars, count

WRITES: dict[str, Callable[[mother.Session], Any]] = {
    "persist": lambda s: s.persist(ClsStars({"star_name": "new"})),
    "MO_SAVE": lambda s: ClsStars({"star_name": "new"}, MO_SAVE, session=s),
    "MO_UP": lambda s: ClsStars({"star_id": 1, "star_age": 3}, MO_UP, session=s),
    "MO_DEL": lambda s: ClsStars({"star_id": 1}, MO_DEL, session=s),
    "oc_query": lambda s: s.oc_query("INSERT INTO stars (star_name) VALUES ('raw')"),
    "lowercase": lambda s: s.oc_query("  delete from stars"),
    "mq_query": lambda s: s.mq_query("UPDATE stars SET star_age = 1", [{}, {}]),
    "box": lambda s: MotherBox(ClsStars, {"star_id": 1}, MO_DEL, session=s),
    "locking read": lambda s: s.get(ClsStars, 1, lock="update"),
}


@pytest.mark.parametrize("write", WRITES)
def test_a_write_is_refused_before_anything_is_sent(
        db: mother.Database, write: str, caplog: pytest.LogCaptureFixture) -> None:
    add_stars("Sun")
    s = MotherSession(readonly=True)
    with caplog.at_level(logging.DEBUG, logger="mother.sql"), \
            pytest.raises(ReadOnlySessionError) as info:
        WRITES[write](s)
    assert isinstance(info.value, mother.MotherError)
    assert "is read-only" in str(info.value) and s.name in str(info.value)
    # nothing sent: no statement logged, none counted, not even a connection taken
    assert [r for r in caplog.records if r.name == "mother.sql"] == []
    assert s.statements == 0 and s._conn is None
    assert s.mr_query("SELECT star_name FROM stars") == [{"star_name": "Sun"}]
    s.endSession()
    assert count(db, "stars") == 1


@pytest.mark.parametrize("how", ["update", "delete", "flush"])
def test_changes_of_loaded_records_are_refused(db: mother.Database, how: str) -> None:
    add_stars("Sun")
    s = MotherSession(readonly=True)
    sun = s.get(ClsStars, 1)
    if how == "flush":
        sun.setField("star_age", 9)  # allowed: nothing is written yet
        assert s.mr_query("SELECT star_age FROM stars") == [{"star_age": 0}]  # no autoflush
    sent = s.statements
    with pytest.raises(ReadOnlySessionError):
        if how == "update":
            sun.update({"star_age": 9})
        elif how == "delete":
            sun.delete()
        else:
            s.flush()
    assert s.statements == sent
    with pytest.raises(ReadOnlySessionError):
        s.delete(sun)
    if how == "delete":
        s.endSession()
    else:  # the change is still pending: ending the session refuses it too (and rolls back)
        with pytest.raises(ReadOnlySessionError):
            s.endSession()
        assert s.closed and sun.getField("star_age") == 0
    assert count(db, "stars", "WHERE star_age = 0") == 1


#: writes a read-only session lets through (they start as reads): the database refuses them
SNEAKY = {
    "postgresql": ["SELECT sneaky() AS one",  # a function that inserts
                   "WITH x AS (INSERT INTO stars (star_name) VALUES ('sneaky') "
                   "RETURNING star_id) SELECT star_id FROM x"],
    "sqlite": ["WITH x AS (SELECT 'sneaky' AS name) INSERT INTO stars (star_name) "
               "SELECT name FROM x"],
}


def test_a_write_behind_a_read_is_refused_by_the_database(db: mother.Database,
                                                          kind: str) -> None:
    if kind == "postgresql":
        with MotherSession() as s:
            s.oc_query("CREATE OR REPLACE FUNCTION sneaky() RETURNS integer LANGUAGE sql AS "
                       "$$ INSERT INTO stars (star_name) VALUES ('sneaky') RETURNING 1 $$")
    for sql in SNEAKY[kind]:
        s = MotherSession(readonly=True)
        with pytest.raises((psycopg.errors.ReadOnlySqlTransaction,
                            sqlite3.OperationalError)) as info:
            s.mr_query(sql)
        assert "read-only" in str(info.value) or "readonly" in str(info.value)
        s.rollback()
        s.endSession()
    assert count(db, "stars") == 0


def test_the_transaction_itself_is_read_only(db: mother.Database, kind: str) -> None:
    s = MotherSession(readonly=True)
    if kind == "postgresql":
        assert s.ov_query("SHOW transaction_read_only") == "on"
    else:
        s.mr_query("SELECT 1 AS one")
        assert s.connection().execute("PRAGMA query_only").fetchone() == {"query_only": 1}
    s.endSession()


def test_the_connection_is_writable_again_after_a_read_only_session(
        db: mother.Database, kind: str) -> None:
    ro = MotherSession(readonly=True)
    ro.mr_query("SELECT 1 AS one")
    conn = ro.connection()
    ro.endSession()
    with MotherSession() as rw:
        ClsStars({"star_name": "written"}, MO_SAVE, session=rw)
        if kind == "sqlite":  # the same pooled connection: its query_only was reset
            assert rw.connection() is conn
    assert count(db, "stars") == 1


def test_a_read_only_session_does_not_hold_sqlites_write_lock(tmp_path: Any) -> None:
    db = mother.init_mother(dsn=f"sqlite:///{tmp_path / 'ro.db'}", busy_timeout=0.1)
    mother.tutorial.create(db)
    try:
        reader = MotherSession(readonly=True)
        assert reader.mr_query("SELECT * FROM stars") == []  # its transaction is open
        with MotherSession() as writer:  # would wait 0.1 s and fail behind BEGIN IMMEDIATE
            ClsStars({"star_name": "Sun"}, MO_SAVE, session=writer)
        assert reader.mr_query("SELECT * FROM stars") == []  # its snapshot
        reader.endSession()
        assert count(db, "stars") == 1
    finally:
        mother.close_all()


def test_session_scope_and_current_session_take_readonly(db: mother.Database,
                                                        clean_transaction: None) -> None:
    add_stars("Sun")
    with session_scope(readonly=True) as s:
        assert s.readonly and s.get(ClsStars, 1).getField("star_name") == "Sun"
        with pytest.raises(ReadOnlySessionError):
            s.oc_query("UPDATE stars SET star_age = 2")
    s = current_session(readonly=True)
    assert s.readonly and current_session() is s and current_session(readonly=True) is s
    with pytest.raises(SessionConflictError, match="read-only"):
        current_session(readonly=False)
    with pytest.raises(ReadOnlySessionError):
        ClsStars({"star_name": "x"}, MO_SAVE, session=s)
    assert s.mr_query("SELECT star_name FROM stars") == [{"star_name": "Sun"}]
    transaction.commit()
    assert s.closed and count(db, "stars") == 1
