"""A real server restarted in the middle of a two-phase commit (its own throwaway cluster).

``pg_ctl restart -m immediate`` is a crash of every backend: prepared
transactions survive it, nothing else does. The server is this test's own
(initdb as the ``postgres`` user, its own port), so the restart touches no
other test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import transaction

import mother
from mother import MO_SAVE, MotherSession
from mother.tm import join
from tests.support.classes import ClsStars
from tests.support.databases import count
from tests.support.tm import Foreign
from tools.pgcluster import as_owner, find_binary

pytestmark = [pytest.mark.usefixtures("clean_transaction"), pytest.mark.timeout(120)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A throwaway PostgreSQL cluster that allows prepared transactions."""

    def __init__(self, base: Path) -> None:
        self.base, self.data, self.port = base, base / "data", _free_port()
        base.mkdir()
        if os.getuid() == 0:
            shutil.chown(base, "postgres", "postgres")
        subprocess.run(as_owner([find_binary("initdb"), "-D", str(self.data), "-U", "postgres",
                                 "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]),
                       check=True, stdout=subprocess.DEVNULL)
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            conf.write(f"max_prepared_transactions = 10\nfsync = off\nport = {self.port}\n"
                       f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{base}'\n")
        self.ctl("start")

    def ctl(self, *args: str) -> None:
        subprocess.run(as_owner([find_binary("pg_ctl"), "-D", str(self.data), "-l",
                                 str(self.base / "server.log"), "-w", "-t", "60", *args]),
                       check=True, stdout=subprocess.DEVNULL)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # not under pytest's tmp_path: the postgres user must reach the folder
    top = Path(tempfile.mkdtemp(prefix="dbmother-restart-"))
    os.chmod(top, 0o755)
    server = Cluster(top / "pg")
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            for name in ("one", "two"):
                conn.execute(f"CREATE DATABASE {name}")
        yield server
    finally:
        server.ctl("stop", "-m", "immediate")
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def pair(cluster: Cluster) -> Iterator[tuple[mother.Database, mother.Database]]:
    dbs = tuple(mother.init_mother(dsn=cluster.dsn(name), name=label, pool_min=1,
                                   recover_interval=None)
                for name, label in (("one", "default"), ("two", "second")))
    for db in dbs:
        mother.tutorial.create(db)
    yield dbs
    mother.close_all()


def prepared(cluster: Cluster) -> list[Any]:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        return conn.execute("SELECT gid FROM pg_prepared_xacts").fetchall()


def write_both(sent: bool = False) -> None:
    """A star written in each database: with ``sent``, already in the server's open
    transaction; else owed to the vote (MO_SAVE waits for the next round trip)."""
    for name in ("default", "second"):
        s = MotherSession(database=name)
        join(s)
        ClsStars({"star_name": "restart"}, MO_SAVE, session=s)
        if sent:
            assert s.ov_query("SELECT count(*) FROM stars") == 1  # the insert rides along


def test_a_restart_before_the_prepares_rolls_back_both(cluster, pair) -> None:
    write_both(sent=True)
    transaction.get().join(Foreign("!first", "tpc_vote",
                                   lambda: cluster.ctl("restart", "-m", "immediate")))
    with pytest.raises(psycopg.OperationalError):
        transaction.commit()
    transaction.abort()
    assert (count(pair[0], "stars"), count(pair[1], "stars")) == (0, 0)
    assert prepared(cluster) == []


def test_a_restart_before_anything_was_sent_commits_both_on_new_connections(
        cluster, pair) -> None:
    # nothing of the transaction was on the server: the votes write it on new connections
    write_both()
    transaction.get().join(Foreign("!first", "tpc_vote",
                                   lambda: cluster.ctl("restart", "-m", "immediate")))
    transaction.commit()
    assert (count(pair[0], "stars"), count(pair[1], "stars")) == (1, 1)
    assert prepared(cluster) == []


def test_a_restart_between_the_prepares_and_the_decision_still_commits_both(
        cluster, pair) -> None:
    write_both()
    # after every PREPARE, before the decider's COMMIT PREPARED: prepared branches survive
    transaction.get().join(Foreign("~restart", "tpc_vote",
                                   lambda: cluster.ctl("restart", "-m", "immediate")))
    transaction.commit()
    assert (count(pair[0], "stars"), count(pair[1], "stars")) == (1, 1)
    assert prepared(cluster) == []


def test_a_restart_after_the_decision_still_commits_both(cluster, pair) -> None:
    write_both()
    transaction.get().join(Foreign("!first", "tpc_finish",
                                   lambda: cluster.ctl("restart", "-m", "immediate")))
    transaction.commit()
    assert (count(pair[0], "stars"), count(pair[1], "stars")) == (1, 1)
    assert prepared(cluster) == []
