"""Provide a PostgreSQL server for the test suite that allows prepared transactions.

``python tools/pgcluster.py ensure`` (or ``python -m tools.pgcluster ensure``)
prints a DSN (without database name) of a server where
``max_prepared_transactions > 0``:

1. ``MOTHER_TEST_PG_DSN`` if it is set (it must allow prepared transactions);
2. otherwise the machine's server at 127.0.0.1:5432 if it already allows them;
3. otherwise a throwaway cluster under ``/tmp/dbmother-pgtest-<uid>`` made with
   the PostgreSQL binaries of this machine (``initdb`` refuses to run as root,
   so as root the cluster belongs to the ``postgres`` system user).

``python tools/pgcluster.py stop`` stops the throwaway cluster, but only if
this checkout started it (``make clean`` in one checkout must not stop the
server another checkout, or another person, is testing against): the
checkout that starts it writes its own path to ``OWNER``.

The tests call :func:`ensure` in their own process (the ``pg_server`` fixture of
tests/conftest.py). This module imports nothing of the checkout, so it also
runs by its path, before anything else is set up.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time

import psycopg

SYSTEM_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PORT = int(os.environ.get("MOTHER_TEST_PG_PORT", "54329"))
BASE = os.environ.get("MOTHER_TEST_PG_BASE", f"/tmp/dbmother-pgtest-{os.getuid()}")
DATA = os.path.join(BASE, "data")
OWNER = os.path.join(BASE, "started-by")
CHECKOUT = os.path.realpath(os.path.join(os.path.dirname(__file__), os.pardir))
SETTINGS = {
    "max_prepared_transactions": "64",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": f"'{BASE}'",
    # the replicas of tools/pgreplicas.py stream without a slot: keep WAL for a restart
    "wal_keep_size": "'256MB'",
}


class ClusterError(Exception):
    """No server that allows prepared transactions could be found or started."""


def prepared_allowed(dsn: str) -> bool | None:
    """True/False when the server answers, None when it cannot be reached."""
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            value = conn.execute("SHOW max_prepared_transactions").fetchone()[0]
            return int(value) > 0
    except psycopg.OperationalError:
        return None


def find_binary(name: str) -> str:
    """The path of PostgreSQL's program ``name``: on the PATH, else the newest installed."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise ClusterError(f"pgcluster: no PostgreSQL '{name}' binary on this machine; "
                 "install the postgresql package or set MOTHER_TEST_PG_DSN")
    return candidates[0]


def as_owner(cmd: list[str]) -> list[str]:
    """Run as the postgres system user when we are root (initdb refuses root)."""
    if os.getuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def cluster_dsn() -> str:
    return f"host=127.0.0.1 port={PORT} user=postgres dbname=postgres"


def start_cluster() -> str:
    dsn = cluster_dsn()
    if prepared_allowed(dsn):
        return dsn
    os.makedirs(BASE, exist_ok=True)
    if os.getuid() == 0:
        shutil.chown(BASE, "postgres", "postgres")
    if not os.path.exists(os.path.join(DATA, "PG_VERSION")):
        subprocess.run(
            as_owner([find_binary("initdb"), "-D", DATA, "-U", "postgres",
                      "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]),
            check=True, stdout=subprocess.DEVNULL,
        )
        with open(os.path.join(DATA, "postgresql.auto.conf"), "a") as conf:
            for key, value in SETTINGS.items():
                conf.write(f"{key} = {value}\n")
    options = f"-p {PORT}"
    with open(OWNER, "w") as owner:
        owner.write(CHECKOUT + "\n")
    subprocess.run(
        as_owner([find_binary("pg_ctl"), "-D", DATA, "-o", options, "-l",
                  os.path.join(BASE, "server.log"), "-w", "-t", "60", "start"]),
        check=True, stdout=subprocess.DEVNULL,
    )
    for _ in range(60):
        if prepared_allowed(dsn):
            return dsn
        time.sleep(0.5)
    raise ClusterError(f"pgcluster: the throwaway cluster on port {PORT} did not come up; "
             f"see {BASE}/server.log")


def ensure() -> str:
    """The DSN of a server that allows prepared transactions, started if need be."""
    explicit = os.environ.get("MOTHER_TEST_PG_DSN")
    if explicit:
        if not prepared_allowed(explicit):
            raise ClusterError("pgcluster: MOTHER_TEST_PG_DSN must reach a server with "
                     "max_prepared_transactions > 0")
        return explicit
    if prepared_allowed(SYSTEM_DSN):
        return SYSTEM_DSN
    return start_cluster()


def stop() -> None:
    """Stop the throwaway cluster if this checkout started it; say so otherwise."""
    if not os.path.exists(os.path.join(DATA, "postmaster.pid")):
        return
    try:
        with open(OWNER) as owner:
            started_by = owner.read().strip()
    except OSError:
        started_by = "someone else (no record)"
    if started_by != CHECKOUT:
        print(f"pgcluster: leaving the cluster on port {PORT} running: {started_by} "
              "started it, not this checkout")
        return
    subprocess.run(as_owner([find_binary("pg_ctl"), "-D", DATA, "-m", "fast", "stop"]),
                   check=False)
    os.remove(OWNER)


def main(argv: list[str]) -> None:
    """``ensure`` (the default) prints the DSN; ``stop`` stops this checkout's cluster."""
    action = argv[0] if argv else "ensure"
    try:
        if action == "ensure":
            print(ensure())
        elif action == "stop":
            stop()
        else:
            sys.exit("usage: pgcluster.py [ensure|stop]")
    except ClusterError as error:
        sys.exit(str(error))


if __name__ == "__main__":
    main(sys.argv[1:])
