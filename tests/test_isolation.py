"""Isolation levels: database-wide, per session, per transaction-scoped session; retries."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import transaction

import mother
from mother import ConfigError, MotherSession, SessionConflictError, session_scope
from mother.tm import current_session, join
from tests.support.databases import add_stars, count


def _level(s: mother.Session) -> str:
    return s.ov_query("SHOW transaction_isolation")


def test_the_setting_applies_to_every_transaction(pg_dsns: list[str]) -> None:
    db = mother.init_mother(dsn=pg_dsns[0], isolation_level="serializable")
    try:
        s = MotherSession()
        assert _level(s) == "serializable"
        s.commit()
        assert _level(s) == "serializable"  # the next transaction too
        s.endSession()
        with db.dialect.connect() as conn:
            db.dialect.begin(conn)  # what dbmother itself opens (recovery, web sessions)
            assert db.dialect.execute(conn, "SHOW transaction_isolation").fetchone() == {
                "transaction_isolation": "serializable"}
    finally:
        mother.close_all()


@pytest.mark.parametrize("level", ["read committed", "repeatable read", "serializable"])
def test_a_session_overrides_the_setting(pg_dsns: list[str], level: str) -> None:
    mother.init_mother(dsn=pg_dsns[0], isolation_level="repeatable read")
    try:
        with MotherSession(isolation_level=level.upper()) as s:
            assert s.isolation_level == level and _level(s) == level
        with session_scope(isolation_level=level) as s:
            assert _level(s) == level
    finally:
        mother.close_all()


def test_a_savepoint_first_keeps_the_level(pgdb: mother.Database) -> None:
    s = MotherSession(isolation_level="serializable", readonly=True)
    with s.begin_nested():  # the SAVEPOINT opens the transaction
        assert _level(s) == "serializable"
        assert s.ov_query("SHOW transaction_read_only") == "on"
    s.endSession()


@pytest.mark.parametrize("value", ["chaos", "read uncommitted", "snapshot", 3])
def test_bad_levels_are_config_errors_naming_the_setting(dsn: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        mother.init_mother(dsn=dsn, isolation_level=value)
    assert info.value.key == "isolation_level" and "'serializable'" in str(info.value)
    db = mother.init_mother(dsn=dsn)
    try:
        with pytest.raises(ConfigError, match="isolation_level"):
            MotherSession(isolation_level=value)  # type: ignore[arg-type]
        assert db.status().in_use == 0
    finally:
        mother.close_all()


def test_every_level_is_accepted_on_sqlite_whose_transactions_are_serializable(
        tmp_path: Path) -> None:
    """A read transaction on SQLite sees one snapshot, whatever level it asked for."""
    db = mother.init_mother(dsn=f"sqlite:///{tmp_path}/iso.db", isolation_level="read committed")
    mother.tutorial.create(db)
    try:
        add_stars("Sun")
        reader = MotherSession(readonly=True, isolation_level="read committed")
        assert reader.ov_query("SELECT COUNT(*) AS n FROM stars") == 1
        with MotherSession() as writer:
            writer.oc_query("INSERT INTO stars (star_name) VALUES ('Vega')")
        # no non-repeatable read: the reader's transaction keeps its snapshot
        assert reader.ov_query("SELECT COUNT(*) AS n FROM stars") == 1
        reader.endSession()
        assert count(db, "stars") == 2
    finally:
        mother.close_all()


def test_current_session_takes_the_level(db: mother.Database, clean_transaction: None) -> None:
    s = current_session(isolation_level="serializable")
    assert s.isolation_level == "serializable"
    assert current_session(isolation_level="Serializable") is s
    with pytest.raises(SessionConflictError, match="serializable"):
        current_session(isolation_level="read committed")
    transaction.abort()


def _write_skew(level: str, tries: list[int]) -> None:
    """Each transaction counts the stars and adds one if there are fewer than two: at
    SERIALIZABLE one of two that overlap fails (40001) and its retry sees the other's."""
    for attempt in transaction.manager.attempts(3):
        with attempt:
            tries.append(1)
            s = MotherSession(isolation_level=level)
            join(s)
            n = s.ov_query("SELECT COUNT(*) AS n FROM stars")
            if len(tries) == 1:  # another transaction does the same meanwhile, and commits
                with MotherSession(isolation_level=level) as other:
                    if other.ov_query("SELECT COUNT(*) AS n FROM stars") < 2:
                        other.oc_query("INSERT INTO stars (star_id, star_name) "
                                       "VALUES (10, 'other')")
            if n < 2:
                s.oc_query("INSERT INTO stars (star_id, star_name) VALUES (20, 'mine')")


def test_serialization_failure_at_serializable_is_retried(pgdb: mother.Database,
                                                          clean_transaction: None) -> None:
    add_stars("Sun")
    tries: list[int] = []
    _write_skew("serializable", tries)
    assert len(tries) == 2  # the first attempt failed with a serialization failure
    assert count(pgdb, "stars") == 2  # the retry saw the other's star and added none
    assert pgdb.status().in_use == 0


def test_read_committed_lets_the_write_skew_through(pgdb: mother.Database,
                                                   clean_transaction: None) -> None:
    add_stars("Sun")
    tries: list[int] = []
    _write_skew("read committed", tries)
    assert len(tries) == 1 and count(pgdb, "stars") == 3  # both added one: the rule broken


def test_should_retry_is_true_for_the_serialization_failure(pgdb: mother.Database,
                                                            clean_transaction: None) -> None:
    add_stars("Sun")
    a = MotherSession(isolation_level="serializable")
    dm = join(a)
    a.ov_query("SELECT COUNT(*) AS n FROM stars")
    with MotherSession(isolation_level="serializable") as b:
        b.ov_query("SELECT COUNT(*) AS n FROM stars")
        b.oc_query("INSERT INTO stars (star_id, star_name) VALUES (10, 'b')")
    with pytest.raises(psycopg.errors.SerializationFailure) as info:
        a.oc_query("INSERT INTO stars (star_id, star_name) VALUES (20, 'a')")
        transaction.commit()
    assert dm.should_retry(info.value)
