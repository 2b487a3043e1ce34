"""mother.tm.commitlog: the decisions, the database's id, and what counts as "no log"."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import transaction
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import mother
from mother import MotherSession, sql
from mother.tm import commitlog, join
from tests.support.databases import count as conftest_count
from tests.support.pgserver import create_databases, drop_databases


def test_a_database_without_a_log_has_no_id_and_no_decision(db: mother.Database) -> None:
    conn = db.dialect.connect()
    try:
        # the PostgreSQL test databases live for the whole run: earlier tests made a log
        db.dialect.begin(conn)
        db.dialect.execute(conn, f"DROP TABLE IF EXISTS {db.dialect.quote(commitlog.COMMIT_LOG)}")
        db.dialect.commit(conn)
        assert commitlog.read(db, conn, ["f" * 32]) == {}
        if db.dialect.stable_id() is None:  # PostgreSQL: the id lives in the log
            assert commitlog.recorded_id(db, conn) is None
        assert commitlog.clean(db, conn, set(), before=2e9) == 0
    finally:
        conn.close()


def test_the_id_is_made_once_and_decisions_and_fences_read_back(db: mother.Database) -> None:
    session = MotherSession()
    made = commitlog.database_id(db, session)
    session.oc_query(*commitlog.decision(db, "a" * 32))
    session.endSession()
    conn = db.dialect.connect()
    try:
        assert commitlog.recorded_id(db, conn) == made
        assert commitlog.fence(db, conn, "a" * 32, 0.5) == commitlog.COMMIT  # decided: kept
        assert commitlog.fence(db, conn, "b" * 32, 0.5) == commitlog.ABORT
        assert commitlog.read(db, conn) == {"a" * 32: "commit", "b" * 32: "abort"}
        assert commitlog.clean(db, conn, {"b" * 32}, before=2e9) == 1
        assert commitlog.read(db, conn) == {"b" * 32: "abort"}
    finally:
        conn.close()


def test_an_error_that_is_not_a_missing_log_is_raised(db: mother.Database) -> None:
    conn = db.dialect.connect()
    conn.close()  # a read on a closed connection must not pass for "nothing decided"
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error, whatever its class
        commitlog.read(db, conn, ["f" * 32])


HOSTILE_IDS = ["x'); DROP TABLE stars; --", '"; DELETE FROM mother_commit_log; --', "%(key)s",
               ":key", "100%", "Database", "' OR '1'='1"]


def test_hostile_global_ids_are_bound_and_stored_verbatim(db: mother.Database) -> None:
    conn = db.dialect.connect()
    try:  # the PostgreSQL test databases live for the whole run: start from no log
        db.dialect.begin(conn)
        db.dialect.execute(conn, f"DROP TABLE IF EXISTS {db.dialect.quote(commitlog.COMMIT_LOG)}")
        db.dialect.commit(conn)
    finally:
        conn.close()
    session = MotherSession()
    commitlog.database_id(db, session)
    session.oc_query(*commitlog.decision(db, HOSTILE_IDS[0]))
    session.endSession()
    conn = db.dialect.connect()
    try:
        for global_id in HOSTILE_IDS[1:]:
            assert commitlog.fence(db, conn, global_id, 0.5) == commitlog.ABORT
        assert commitlog.fence(db, conn, HOSTILE_IDS[0], 0.5) == commitlog.COMMIT
        wanted = [*HOSTILE_IDS, commitlog.ID_KEY, "never decided"]
        assert commitlog.read(db, conn, wanted) == {
            HOSTILE_IDS[0]: commitlog.COMMIT,
            **dict.fromkeys(HOSTILE_IDS[1:], commitlog.ABORT)}
        assert commitlog.read(db, conn, [commitlog.ID_KEY]) == {}  # the id row is no decision
        assert commitlog.clean(db, conn, set(HOSTILE_IDS[1:]), before=2e9) == 1
        assert set(commitlog.read(db, conn, HOSTILE_IDS)) == set(HOSTILE_IDS[1:])
    finally:
        conn.close()
    assert conftest_count(db, "stars") == 0


@pytest.fixture
def unprivileged(pg_server: str) -> Iterator[list[str]]:
    """Two fresh databases whose table ``t`` a role without ``CREATE`` (on any schema)
    may read and write: that role's DSNs."""
    role = f"mother_dml_{uuid.uuid4().hex[:8]}"
    names = [f"mother_test_{uuid.uuid4().hex[:10]}_{suffix}" for suffix in ("a", "b")]
    owners = create_databases(pg_server, names)
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
    for dsn in owners:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            conn.execute("CREATE TABLE t (id serial PRIMARY KEY, tag text)")
            conn.execute(f'GRANT SELECT, INSERT ON t TO "{role}"; '
                         f'GRANT USAGE ON SEQUENCE t_id_seq TO "{role}"')
    dsns = [make_conninfo(dsn, user=role) for dsn in owners]
    yield owners + dsns
    mother.close_all()
    drop_databases(pg_server, names)
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.usefixtures("clean_transaction")
def test_a_role_without_create_commits_once_an_owner_made_the_log(
        unprivileged: list[str]) -> None:
    owners, dsns = unprivileged[:2], unprivileged[2:]
    for name, dsn in zip(("default", "second"), dsns):
        mother.init_mother(dsn=dsn, name=name, recover_interval=None, pool_min=0)

    def both(tag: str) -> None:
        for name in ("default", "second"):
            session = MotherSession(database=name)
            join(session)
            session.oc_query("INSERT INTO t (tag) VALUES (%(tag)s)", {"tag": tag})
        transaction.commit()

    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the first vote makes the log
        both("refused")
    transaction.abort()
    create, _ = sql.create_table(mother.get_database("default").dialect, commitlog.LOG)
    for dsn in owners:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(create)
            role = conninfo_to_dict(dsns[0])["user"]
            conn.execute(f'GRANT SELECT, INSERT, DELETE ON mother_commit_log TO "{role}"')
    both("committed")
    for dsn in owners:
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT tag FROM t").fetchall() == [("committed",)]
            assert conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)


def test_has_table_reads_the_catalog(db: mother.Database) -> None:
    conn = db.dialect.connect()
    try:
        db.dialect.begin(conn)
        assert db.dialect.has_table(conn, "stars")
        assert not db.dialect.has_table(conn, "no_such_table")
        assert not db.dialect.has_table(conn, 'st"ars')  # a name, never SQL
        db.dialect.rollback(conn)
    finally:
        conn.close()
