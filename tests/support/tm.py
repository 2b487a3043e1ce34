"""Helpers shared by the mother.tm tests: a second database and real foreign resources."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import transaction
from transaction.interfaces import IDataManager
from zope.interface import implementer

import mother
from mother import tutorial


def second_database(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                    name: str = "second", **settings: Any) -> mother.Database:
    """A second configured database of the same kind, with fresh tutorial tables."""
    if kind == "postgresql":
        dsn = request.getfixturevalue("pg_dsns")[1]
    else:
        dsn = f"sqlite:///{tmp_path / (name + '.db')}"
    settings.setdefault("recover_interval", None)  # tests look at what they leave prepared
    database = mother.init_mother(dsn=dsn, name=name, pool_min=1, pool_max=10, pool_timeout=5,
                                  **settings)
    tutorial.create(database)
    return database


def prepared(dsn: str) -> list[str]:
    """The gids prepared in the PostgreSQL database of ``dsn``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [gid for gid, in conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()")]


@implementer(IDataManager)
class Observer:
    """A real (non-dbmother) resource: runs ``on_vote`` when it votes, after every dbmother branch.

    Its sort key puts it after dbmother's preparing branches but before those that
    commit in their vote (``~mother``).
    """

    def __init__(self, on_vote: Any = None, manager: Any = None) -> None:
        self.on_vote = on_vote
        self.transaction_manager = manager or transaction.manager
        self.seen: Any = None
        self.calls: list[str] = []

    def sortKey(self) -> str:
        return "observer"

    def abort(self, txn: Any) -> None:
        self.calls.append("abort")

    def tpc_begin(self, txn: Any) -> None:
        self.calls.append("tpc_begin")

    def commit(self, txn: Any) -> None:
        self.calls.append("commit")

    def tpc_vote(self, txn: Any) -> None:
        self.calls.append("tpc_vote")
        if self.on_vote is not None:
            self.seen = self.on_vote()

    def tpc_finish(self, txn: Any) -> None:
        self.calls.append("tpc_finish")

    def tpc_abort(self, txn: Any) -> None:
        self.calls.append("tpc_abort")


class Boom(Exception):
    """What a foreign resource raises."""


def boom() -> None:
    raise Boom("the foreign resource fails")


@implementer(IDataManager)
class Foreign:
    """A real foreign resource: runs ``action`` in ``phase``, sorted by ``key``."""

    def __init__(self, key: str, phase: str | None = None,
                 action: Callable[[], Any] | None = None) -> None:
        self.key, self.phase, self.action = key, phase, action
        self.transaction_manager = transaction.manager
        self.calls: list[str] = []

    def sortKey(self) -> str:
        return self.key

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if name == self.phase and self.action is not None:
            self.action()

    def abort(self, txn: Any) -> None:
        self.calls.append("abort")

    def tpc_abort(self, txn: Any) -> None:
        self.calls.append("tpc_abort")

    def commit(self, txn: Any) -> None:
        self._step("commit")

    def tpc_begin(self, txn: Any) -> None:
        self._step("tpc_begin")

    def tpc_vote(self, txn: Any) -> None:
        self._step("tpc_vote")

    def tpc_finish(self, txn: Any) -> None:
        self._step("tpc_finish")


def add_deferred_table(database: mother.Database, request: pytest.FixtureRequest) -> None:
    """A table whose foreign key is checked at COMMIT / PREPARE: a real way to fail a vote.

    Dropped at the end of the test (the PostgreSQL databases live for the whole run).
    """
    dsn, dialect = database.settings.dsn, database.dialect

    def drop() -> None:
        conn = dialect.connect()
        try:
            dialect.begin(conn)
            dialect.execute(conn, "DROP TABLE IF EXISTS deferred_child")
            dialect.commit(conn)
        finally:
            conn.close()

    request.addfinalizer(drop)
    assert dsn
    with mother.MotherSession(database=database) as s:
        s.oc_query("CREATE TABLE deferred_child (child_id INTEGER PRIMARY KEY, star_id INTEGER "
                   "REFERENCES stars(star_id) DEFERRABLE INITIALLY DEFERRED)")
    database.refresh_schema()
