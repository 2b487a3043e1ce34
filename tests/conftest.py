"""Fixtures: a real PostgreSQL server (with prepared transactions) and real SQLite files.

The server is ``MOTHER_TEST_PG_DSN``, or one ``tools/pgcluster.py`` finds or
starts (:mod:`tests.support.pgserver`). Each test run gets its own databases,
dropped at the end. The helpers the tests share are in :mod:`tests.support`.
Some suites also run through PgBouncer in transaction mode (``pg_route``,
:mod:`tests.support.pooler`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import transaction

import mother
from mother import tutorial
from tests.support import pooler
from tests.support.databases import KINDS
from tests.support.pgserver import create_databases, drop_databases, server_dsn
from tools import pgbouncer as pgbouncer_tool


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    pooler.routed(metafunc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    pooler.deselect_sqlite(config, items)

#: the replica fixtures (replicas, replicated_db, replica_servers)
pytest_plugins = ["tests.support.replicas"]


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The DSN of the test server's maintenance database (the server found or started once)."""
    return server_dsn()


@pytest.fixture(scope="session")
def pg_databases(pg_server: str) -> Iterator[list[str]]:
    """DSNs of two fresh databases on the test server (two-phase tests need two)."""
    names = [f"mother_test_{uuid.uuid4().hex[:10]}_{suffix}" for suffix in ("a", "b")]
    yield create_databases(pg_server, names)
    mother.close_all()
    drop_databases(pg_server, names)


@pytest.fixture(scope="session")
def pgbouncer(pg_server: str) -> Iterator[str]:
    """PgBouncer in transaction mode in front of the test server (tools/pgbouncer.py): the
    DSN of the maintenance database through it. Stopped at the end if started here."""
    dsn, started = pgbouncer_tool.ensure(pg_server)
    yield dsn
    if started:
        mother.close_all()
        pgbouncer_tool.stop()


@pytest.fixture
def pg_route(request: pytest.FixtureRequest) -> str:
    """How the test reaches PostgreSQL: ``direct``, or ``pgbouncer`` for the suites of
    :data:`tests.support.pooler.ROUTED` (which run both)."""
    return getattr(request, "param", "direct")


@pytest.fixture
def pg_dsns(pg_databases: list[str], pg_route: str, request: pytest.FixtureRequest,
            monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The DSNs of the two test databases, on the test's route: through PgBouncer, every
    database the test configures is set for it (``MOTHER_POOLER``)."""
    if pg_route == "direct":
        return pg_databases
    request.getfixturevalue("pgbouncer")
    monkeypatch.setenv("MOTHER_POOLER", pooler.POOLER)
    return [pgbouncer_tool.through(dsn) for dsn in pg_databases]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def dsn(kind: str, pg_route: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
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

