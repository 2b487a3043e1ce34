"""Streaming replicas of the test server, for the replica tests.

``python tools/pgreplicas.py start`` makes (``pg_basebackup -R``) and starts
two hot standbys of the server :func:`tools.pgcluster.ensure` gives, and
prints their DSNs, one a line; ``stop`` stops them. The first replica
(``MOTHER_TEST_REPLICA_PORT``, default 26450) replays at once; the second (the
next port) is delayed by ``recovery_min_apply_delay`` (:data:`DELAY`, seconds),
which makes replication lag real. Each is made afresh from the primary each
time it is started with :func:`make`, under ``<pgcluster base>/replica-<port>``,
and is stopped and started again with :func:`stop` and :func:`start` (a restart
keeps its data: it catches up by streaming).

The primary needs nothing more than ``initdb --auth=trust`` gives: streaming
replication (``wal_level = replica``, ``max_wal_senders = 10``) is PostgreSQL's
default and ``pg_hba.conf`` trusts replication connections from 127.0.0.1. No
replication slot is made, so a replica left behind by a crashed test run holds
no WAL on the primary. As root, the PostgreSQL programs run as the ``postgres``
system user (like tools/pgcluster.py).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time

import psycopg

try:
    from tools import pgcluster
except ImportError:  # run by its path: tools/ itself is on sys.path
    import pgcluster  # type: ignore[no-redef]

#: below Linux's ephemeral ports (32768-60999), which an outgoing connection may hold
PORT = int(os.environ.get("MOTHER_TEST_REPLICA_PORT", "26450"))
#: seconds the delayed replica waits before it applies a commit
DELAY = float(os.environ.get("MOTHER_TEST_REPLICA_DELAY", "3"))
#: seconds a replica is started again while its port is held by a closed connection
BIND_WAIT = 90.0
#: what a replica changes from the primary's configuration (copied by pg_basebackup)
SETTINGS = {"hot_standby": "on", "max_connections": "200",
            # a query on the replica is never cancelled for a conflict with replay
            "max_standby_streaming_delay": "-1", "hot_standby_feedback": "on"}


class ReplicaError(Exception):
    """A replica could not be made or started."""


@dataclasses.dataclass(frozen=True)
class Replica:
    """One streaming replica of the test server: its port, its data and its delay."""

    port: int
    delay: float = 0.0

    @property
    def data(self) -> str:
        return os.path.join(pgcluster.BASE, f"replica-{self.port}")

    @property
    def dsn(self) -> str:
        """The DSN of its maintenance database (``postgres``)."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def answers(self) -> bool:
        """Whether it accepts connections as a hot standby."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=3, autocommit=True) as conn:
                row = conn.execute("SELECT pg_catalog.pg_is_in_recovery()").fetchone()
                return bool(row and row[0])
        except psycopg.OperationalError:
            return False


#: the two replicas of the tests: one immediate, one delayed
REPLICAS = (Replica(PORT), Replica(PORT + 1, DELAY))


def _run(cmd: list[str]) -> None:
    done = subprocess.run(pgcluster.as_owner(cmd), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode:
        raise ReplicaError(f"pgreplicas: {' '.join(cmd)} failed: {done.stderr.strip()}")


def make(replica: Replica, primary: str) -> None:
    """Copy the primary afresh into the replica's data directory (``pg_basebackup -R``
    writes ``standby.signal`` and ``primary_conninfo``) and configure it; stopped first
    if it runs."""
    stop(replica)
    shutil.rmtree(replica.data, ignore_errors=True)
    info = psycopg.conninfo.conninfo_to_dict(primary)
    _run([pgcluster.find_binary("pg_basebackup"), "-D", replica.data, "-R", "-X", "stream",
          "--no-sync", "-c", "fast", "-h", str(info.get("host", "127.0.0.1")),
          "-p", str(info.get("port", 5432)), "-U", str(info.get("user", "postgres"))])
    settings = {**SETTINGS, "port": str(replica.port),
                "recovery_min_apply_delay": f"'{int(replica.delay * 1000)}ms'",
                "unix_socket_directories": f"'{replica.data}'"}
    with open(os.path.join(replica.data, "postgresql.auto.conf"), "a") as conf:
        for key, value in settings.items():
            conf.write(f"{key} = {value}\n")


def start(replica: Replica) -> None:
    """Start the replica (made already) and wait until it accepts connections.

    A replica stopped and started again (as the tests do) may find its port still
    held a little while by its closed connections; it is then started again until
    it can bind it (:data:`BIND_WAIT`)."""
    log = os.path.join(replica.data, "server.log")
    deadline = time.monotonic() + BIND_WAIT
    while not os.path.exists(os.path.join(replica.data, "postmaster.pid")):
        size = os.path.getsize(log) if os.path.exists(log) else 0
        try:
            _run([pgcluster.find_binary("pg_ctl"), "-D", replica.data, "-l", log, "-w",
                  "-t", "60", "start"])
        except ReplicaError:
            with open(log) as text:
                text.seek(size)
                said = text.read()
            if "Address already in use" not in said or time.monotonic() > deadline:
                tail = "\n".join(said.strip().splitlines()[-5:])
                raise ReplicaError(f"pgreplicas: the replica on port {replica.port} did not "
                                   f"start; the end of {log}:\n{tail}") from None
            time.sleep(1)
    for _ in range(120):
        if replica.answers():
            return
        time.sleep(0.25)
    raise ReplicaError(f"pgreplicas: the replica on port {replica.port} did not come up; "
                       f"see {replica.data}/server.log")


def stop(replica: Replica) -> None:
    """Stop the replica now (``-m immediate``: a standby loses nothing by it)."""
    if os.path.exists(os.path.join(replica.data, "postmaster.pid")):
        _run([pgcluster.find_binary("pg_ctl"), "-D", replica.data, "-m", "immediate",
              "-w", "stop"])


def main(argv: list[str]) -> None:
    """``start`` makes and starts both replicas and prints their DSNs; ``stop`` stops them."""
    action = argv[0] if argv else "start"
    try:
        if action == "start":
            primary = pgcluster.ensure()
            for replica in REPLICAS:
                make(replica, primary)
                start(replica)
                print(replica.dsn)
        elif action == "stop":
            for replica in REPLICAS:
                stop(replica)
        else:
            sys.exit("usage: pgreplicas.py [start|stop]")
    except (ReplicaError, pgcluster.ClusterError) as error:
        sys.exit(str(error))


if __name__ == "__main__":
    main(sys.argv[1:])
