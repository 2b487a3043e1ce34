"""Fixtures: two streaming replicas of the test server (tools/pgreplicas.py) and a
database on the primary that both replicate.

Loaded by tests/conftest.py (``pytest_plugins``). The replicas are made and
started once per test run and stopped at its end; a test may stop one and
start it again (:func:`tools.pgreplicas.stop`, :func:`tools.pgreplicas.start`),
and gets it running again afterwards in any case (``replicas`` checks each test's
end). ``replicated`` is a database with the tutorial tables on the primary,
replayed by both replicas before the first test uses it.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

import mother
from mother import tutorial
from tests.support.pgserver import create_databases, drop_databases, with_db
from tools import pgreplicas


@dataclasses.dataclass(frozen=True)
class Replicated:
    """A database on the primary and its two replicas: DSNs and the replicas' servers."""

    primary: str
    normal: pgreplicas.Replica
    delayed: pgreplicas.Replica

    @property
    def dbname(self) -> str:
        return str(psycopg.conninfo.conninfo_to_dict(self.primary)["dbname"])

    def dsn(self, replica: pgreplicas.Replica) -> str:
        """The DSN of this database on ``replica``."""
        return with_db(replica.dsn, self.dbname)

    @property
    def replicas(self) -> list[str]:
        return [self.dsn(self.normal), self.dsn(self.delayed)]

    def settings(self, **overrides: object) -> dict[str, object]:
        """Settings for :func:`mother.init_mother` of this database with both replicas (fast
        checks, the delayed replica's delay well above the lag allowed)."""
        return {"dsn": self.primary, "replicas": self.replicas, "pool_min": 1,
                "pool_max": 4, "pool_timeout": 5, "recover_interval": None,
                "replica_max_lag": 1.0, "replica_check": 0.2, "replica_wait": 1.0,
                **overrides}


def primary_position(dsn: str) -> str:
    """The primary's current WAL insert position."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_catalog.pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def wait_replayed(dsn: str, position: str, timeout: float = 30.0) -> None:
    """Wait until the replica at ``dsn`` (any of its databases) has replayed the primary's
    ``position``."""
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(with_db(dsn, "postgres"), autocommit=True) as conn:
            row = conn.execute("SELECT pg_catalog.pg_last_wal_replay_lsn() >= %s::pg_lsn",
                               (position,)).fetchone()
        if row and row[0]:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"replica {dsn} did not replay {position} in {timeout} s")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def replica_servers(pg_server: str) -> Iterator[tuple[pgreplicas.Replica, pgreplicas.Replica]]:
    """Both replicas, made afresh from the test server and started; stopped at the end."""
    normal, delayed = pgreplicas.REPLICAS
    try:
        for replica in (normal, delayed):
            pgreplicas.make(replica, pg_server)
            pgreplicas.start(replica)
        yield normal, delayed
    finally:
        for replica in (normal, delayed):
            pgreplicas.stop(replica)


@pytest.fixture(scope="session")
def replicated_db(pg_server: str, replica_servers: tuple[pgreplicas.Replica, pgreplicas.Replica]
                  ) -> Iterator[Replicated]:
    """A database with the tutorial tables on the primary, replayed by both replicas."""
    name = f"mother_test_{uuid.uuid4().hex[:10]}_replicated"
    [primary] = create_databases(pg_server, [name])
    found = Replicated(primary, *replica_servers)
    database = mother.init_mother(dsn=primary, name="replicated-setup", recover_interval=None)
    try:
        tutorial.create(database)
    finally:
        database.close()
    position = primary_position(primary)
    for dsn in found.replicas:
        wait_replayed(dsn, position)
    yield found
    mother.close_all()
    drop_databases(pg_server, [name])


@pytest.fixture
def replicas(replicated_db: Replicated) -> Iterator[Replicated]:
    """:func:`replicated_db`, both replicas running again after the test."""
    yield replicated_db
    mother.close_all()
    for replica in (replicated_db.normal, replicated_db.delayed):
        pgreplicas.start(replica)
