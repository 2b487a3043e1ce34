"""Named databases: several at once, replacing one closes its pool, close_all(); whether an
error is transient, and the translation hook."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest
import transaction

from mother import (
    MO_SAVE,
    ConfigError,
    Database,
    DbMother,
    MotherPoolStatus,
    MotherSession,
    PoolTimeoutError,
    close_all,
    databases,
    get_database,
    init_mother,
    is_transient,
    tutorial,
)
from mother.errors import NotUniqueError, StaleRecordError
from mother.executor import shared
from mother.tm import join
from tests.support import ROOT, child
from tests.support.databases import count, make_dsn
from tests.support.replicas import Replicated
from tests.support.tm import add_deferred_table


@pytest.fixture(autouse=True)
def _clean():
    yield
    close_all()


def test_several_named_databases(kind: str, pg_dsns: list[str], tmp_path: Path) -> None:
    first = init_mother(dsn=make_dsn(kind, pg_dsns, tmp_path, 0), pool_min=1)
    second = init_mother(dsn=make_dsn(kind, pg_dsns, tmp_path, 1), name="second", pool_min=1)
    tutorial.create(first)
    tutorial.create(second)
    assert {d.name for d in databases()} == {"default", "second"}
    with MotherSession(database="second") as s:
        s.oc_query("INSERT INTO stars (star_name) VALUES ('only in second')")
    with MotherSession() as s:
        assert s.ov_query("SELECT COUNT(*) AS n FROM stars") == 0
    assert count(second, "stars") == 1
    assert get_database("second") is second
    assert MotherSession(database=second).database is second


def test_replacing_a_database_closes_its_pool(kind: str, dsn: str) -> None:
    old = init_mother(dsn=dsn, pool_min=1)
    s = MotherSession()
    s.ov_query("SELECT 1 AS one")
    s.endSession()
    pool = old.pool
    new = init_mother(dsn=dsn, pool_min=1)
    assert new is not old and get_database() is new
    assert not old._pool.made
    with pytest.raises(PoolTimeoutError, match="closed"):
        pool.getconn()
    with MotherSession() as s:
        assert s.ov_query("SELECT 2 AS two") == 2


def test_close_all_forgets_every_database(kind: str, dsn: str) -> None:
    database = init_mother(dsn=dsn, pool_min=1)
    pool = database.pool  # opens it
    close_all()
    assert databases() == []
    with pytest.raises(ConfigError):
        get_database()
    with pytest.raises(PoolTimeoutError):
        pool.getconn()


def test_pool_status_before_use_opens_the_pool(kind: str, dsn: str) -> None:
    init_mother(dsn=dsn, pool_min=1, pool_max=3)
    status = MotherPoolStatus()
    assert status.maximum == 3 and status.minimum == 1 and status.in_use == 0


def test_twophase_detection(kind: str, dsn: str) -> None:
    database = init_mother(dsn=dsn, pool_min=1)
    assert database.twophase is (kind == "postgresql")


def test_sqlite_says_it_cannot_prepare_without_connecting(tmp_path: Path) -> None:
    database = init_mother(dsn=f"sqlite:///{tmp_path}/x.db")
    assert database.twophase is False
    assert not database._pool.made and not (tmp_path / "x.db").exists()


def test_twophase_forced_on_sqlite_is_a_config_error(tmp_path: Path) -> None:
    database = init_mother(dsn=f"sqlite:///{tmp_path}/x.db", twophase=True)
    with pytest.raises(ConfigError) as info:
        database.twophase  # noqa: B018
    assert info.value.key == "twophase"


def test_twophase_off(dsn: str) -> None:
    assert init_mother(dsn=dsn, twophase=False).twophase is False


def test_shared_connection_off(dsn: str) -> None:
    database = init_mother(dsn=dsn, persistent_one=False)
    with pytest.raises(ConfigError) as info:
        shared(database)
    assert info.value.key == "persistent_one"


def test_unreachable_database_fails_clearly() -> None:
    database = init_mother(dsn="host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=1",
                           pool_min=0, pool_max=1, pool_timeout=1)
    with pytest.raises(PoolTimeoutError):
        MotherSession().ov_query("SELECT 1")
    assert database.dialect.name == "postgresql"


# -- is it transient? one answer ------------------------------------------------------------
def _errors(kind: str) -> tuple[list[BaseException], list[BaseException]]:
    """Errors the database calls transient, and errors it does not."""
    stale = StaleRecordError("stars", (1,), "update")
    if kind == "postgresql":
        return ([stale, psycopg.errors.SerializationFailure(), psycopg.errors.DeadlockDetected()],
                [psycopg.errors.UniqueViolation(), psycopg.errors.LockNotAvailable(),
                 NotUniqueError("load stars", 0), sqlite3.OperationalError("database is locked")])
    return ([stale, sqlite3.OperationalError("database is locked")],
            [sqlite3.IntegrityError("UNIQUE constraint failed"), NotUniqueError("load stars", 0),
             psycopg.errors.SerializationFailure()])


def test_is_transient_is_one_answer_for_the_database_its_data_managers_and_adapters(
        db: Database, kind: str) -> None:
    """``Database.is_transient``, ``mother.is_transient`` and the data manager's
    ``should_retry`` say the same of every error (stale records included)."""
    transient, other = _errors(kind)
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    session = MotherSession(database=db)
    try:
        dm = join(session, manager)
        for error in transient:
            assert (db.is_transient(error), is_transient(error), dm.should_retry(error)) == (
                True, True, True), error
        for error in other:
            assert (db.is_transient(error), is_transient(error), dm.should_retry(error)) == (
                False, False, False), error
    finally:
        manager.abort()
    assert not is_transient(transient[-1], among=[])  # no database to ask
    assert is_transient(transient[0], among=[])  # a stale record needs no dialect


# -- the translation hook ---------------------------------------------------------------------
class Translated(Exception):
    """What the test translators make of an error."""


def _translator(seen: list[str], answer: bool = True):
    def translate(error: BaseException, where: str) -> Translated | None:
        seen.append(where)
        return Translated(f"{where}: {type(error).__name__}") if answer else None
    return translate


def test_a_translator_gets_a_statement_error_and_where(db: Database) -> None:
    seen: list[str] = []
    db.error_translators.append(_translator(seen))
    with MotherSession(database=db) as session:
        with pytest.raises(Translated, match="^statement: ") as caught:
            session.oc_query("SELECT star_name FROM nowhere")
        session.rollback()
    assert seen == ["statement"]
    assert caught.value.__cause__ is not None and "nowhere" in str(caught.value.__cause__)


def test_the_first_translator_that_answers_wins_and_none_leaves_the_error(db: Database) -> None:
    first: list[str] = []
    second: list[str] = []
    db.error_translators[:] = [_translator(first, answer=False), _translator(second)]
    error = ValueError("x")
    assert isinstance(db.translate(error, "tpc_vote"), Translated)
    assert (first, second) == (["tpc_vote"], ["tpc_vote"])
    db.error_translators[:] = [_translator(first, answer=False)]
    assert db.translate(error, "statement") is None


@pytest.mark.parametrize("phase", ["tpc_begin", "tpc_vote"])
def test_a_translator_gets_the_commit_phase_that_failed(phase: str, pgdb: Database,
                                                        pg_dsns: list[str],
                                                        request: pytest.FixtureRequest) -> None:
    """A deferred foreign key fails at COMMIT (the only resource commits in ``tpc_begin``)
    or at PREPARE TRANSACTION (two databases: ``tpc_vote``); the translator hears which,
    and its exception is what ``transaction.commit()`` raises, from the database's error."""
    add_deferred_table(pgdb, request)
    seen: list[str] = []
    pgdb.error_translators.append(_translator(seen))
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    failing = MotherSession(database=pgdb)
    join(failing, manager)
    failing.oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
    if phase == "tpc_vote":
        other = init_mother(dsn=pg_dsns[1], name="other", pool_min=1, recover_interval=None)
        tutorial.create(other)
        second = MotherSession(database=other)
        join(second, manager)
        second.oc_query("INSERT INTO stars (star_name) VALUES ('both or none')")
    with pytest.raises(Translated, match=f"^{phase}: ForeignKeyViolation") as caught:
        manager.commit()
    assert isinstance(caught.value.__cause__, psycopg.errors.ForeignKeyViolation)
    assert seen == [phase]
    assert count(pgdb, "deferred_child") == 0
    if phase == "tpc_vote":
        assert count(get_database("other"), "stars") == 0


class Star(DbMother):
    table_name = "stars"


def _failing_commit(database: Database, session: MotherSession, fails: str) -> type[Exception]:
    """Leave ``session`` a commit that fails: in a write riding with its COMMIT (an insert
    of a taken key, deferred to the commit's round trip) or in the COMMIT itself (a
    deferred foreign key); the error the database raises."""
    if fails == "write":
        with MotherSession(database=database) as first:
            taken = Star({"star_name": "Sun"}, MO_SAVE, session=first).getField("star_id")
        Star({"star_id": taken, "star_name": "Twin"}, MO_SAVE, session=session)
        assert session.new  # waiting for the commit's round trip
        return (psycopg.errors.UniqueViolation if database.dialect.name == "postgresql"
                else sqlite3.IntegrityError)
    session.oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
    return (psycopg.errors.ForeignKeyViolation if database.dialect.name == "postgresql"
            else sqlite3.IntegrityError)


@pytest.mark.parametrize("fails", ["write", "COMMIT"])
@pytest.mark.parametrize("how", ["transaction.commit", "session.commit", "endSession"])
def test_a_commit_s_error_is_translated_once_where_it_stands(
        how: str, fails: str, db: Database, request: pytest.FixtureRequest) -> None:
    """A commit's flush rides with its COMMIT: whether a write or the COMMIT fails, the
    translators hear the error once, at ``tpc_begin`` for a transaction's only resource,
    at ``commit`` for an unmanaged session's ``commit()`` or ``endSession()``, and what
    they make of it is raised (not translated again); nothing is written."""
    add_deferred_table(db, request)
    manager = transaction.TransactionManager(explicit=True)
    session = MotherSession(database=db)
    if how == "transaction.commit":
        manager.begin()
        join(session, manager)
    error = _failing_commit(db, session, fails)
    before = count(db, "stars")
    seen: list[str] = []
    db.error_translators.append(_translator(seen))
    where = "tpc_begin" if how == "transaction.commit" else "commit"
    end = {"transaction.commit": manager.commit, "session.commit": session.commit,
           "endSession": session.endSession}[how]
    with pytest.raises(Translated) as caught:
        end()
    assert str(caught.value) == f"{where}: {error.__name__}"
    assert isinstance(caught.value.__cause__, error)
    assert seen == [where]
    if how == "transaction.commit":
        manager.abort()
    elif how == "session.commit":
        session.rollback()
        session.close()
    assert session.closed
    assert (count(db, "stars"), count(db, "deferred_child")) == (before, 0)


def test_a_flush_s_error_is_a_statement_s(db: Database) -> None:
    """An explicit flush is a round trip like any statement's: translated at "statement"."""
    session = MotherSession(database=db)
    error = _failing_commit(db, session, "write")
    seen: list[str] = []
    db.error_translators.append(_translator(seen))
    with pytest.raises(Translated, match="^statement: ") as caught:
        session.flush()
    assert isinstance(caught.value.__cause__, error) and seen == ["statement"]
    session.close()


def test_without_translators_a_commit_error_is_the_database_s_own(
        pgdb: Database, request: pytest.FixtureRequest) -> None:
    add_deferred_table(pgdb, request)
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    session = MotherSession(database=pgdb)
    dm = join(session, manager)
    session.oc_query("INSERT INTO deferred_child (child_id, star_id) VALUES (1, 999)")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        manager.commit()
    assert not {"tpc_begin", "commit", "tpc_vote"} & set(vars(dm))  # nothing patched on


def test_a_forked_worker_opens_its_own_connections_and_leaves_its_parents_alone(
        pgdb: Database) -> None:
    check_forked(child("fork_child", pgdb.settings.dsn))


def test_a_forked_worker_opens_its_own_replica_connections(replicas: Replicated) -> None:
    check_forked(child("fork_child", replicas.primary, replicas.dsn(replicas.normal)),
                 kinds=frozenset({"pool", "shared", "replica"}))


def check_forked(command: list[str], kinds: frozenset[str] = frozenset({"pool", "shared"})
                 ) -> None:
    """Run tests/support/fork_child.py: the worker it forks used none of its parent's
    connections (of each kind), and the parent goes on on its own."""
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    before, forked, after = seen["before"], seen["child"], seen["after"]
    assert isinstance(forked, dict), forked  # the worker's work ran
    assert set(forked) == set(before) == kinds, seen
    # none of the worker's statements went on a connection of its parent's
    assert all(forked[kind] != before[kind] for kind in kinds), seen
    # and the parent goes on on its own connections, which the worker did not close
    assert after == before, seen
