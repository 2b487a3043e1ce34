"""PgBouncer in transaction mode in front of a PostgreSQL server, for the tests and benchmarks.

``python tools/pgbouncer.py ensure [SERVER_DSN]`` (or ``python -m tools.pgbouncer``)
starts Debian's PgBouncer (``/usr/sbin/pgbouncer``; ``make pgbouncer`` installs it)
on 127.0.0.1, port ``MOTHER_TEST_PGBOUNCER_PORT`` (default 26432), in front of
the server of ``SERVER_DSN`` (default: the test server of ``tools/pgcluster.py``),
and prints the DSN of its maintenance database through PgBouncer. Every database
of that server is reachable through it (a ``*`` entry), as the server's user,
with ``pool_mode = transaction`` and ``default_pool_size = POOL_SIZE`` server
connections per database, so that a test shows fewer server connections than
clients. ``auth_type = any``: clients are not authenticated (loopback only), and
any user may open the admin console (database ``pgbouncer``: ``SHOW POOLS``,
``SHOW SERVERS``; :func:`admin_dsn`).

PgBouncer refuses to run as root: as root it runs as the ``postgres`` system
user, its files (configuration, log, pid) under ``/tmp/dbmother-pgbouncer-<uid>-<port>``.
``python tools/pgbouncer.py stop`` stops it only if this checkout started it
(the starter writes its checkout's path to ``OWNER``), as ``tools/pgcluster.py`` does.
This module imports nothing of the checkout but :mod:`tools.pgcluster`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import psycopg

try:
    from tools import pgcluster
except ImportError:  # run by its path: tools/ itself is on sys.path
    import pgcluster  # type: ignore[no-redef]

BINARY = "/usr/sbin/pgbouncer"
#: below Linux's ephemeral ports (32768-60999): an outgoing connection may hold one of
#: those for a while, and a PgBouncer started then listens on its socket file only
PORT = int(os.environ.get("MOTHER_TEST_PGBOUNCER_PORT", "26432"))
BASE = f"/tmp/dbmother-pgbouncer-{os.getuid()}-{PORT}"
CONFIG = os.path.join(BASE, "pgbouncer.ini")
PIDFILE = os.path.join(BASE, "pgbouncer.pid")
LOG = os.path.join(BASE, "pgbouncer.log")
OWNER = os.path.join(BASE, "started-by")
CHECKOUT = os.path.realpath(os.path.join(os.path.dirname(__file__), os.pardir))
#: server connections per database (and user): fewer than a test's clients
POOL_SIZE = 4
#: what a client waits for a server connection before PgBouncer gives up (seconds): a
#: test that needs more server connections than POOL_SIZE at once fails within this
WAIT = 20


class PoolerError(Exception):
    """PgBouncer could not be found, started or reached."""


def through(dsn: str) -> str:
    """``dsn`` (of the server behind PgBouncer) with its host and port replaced by
    PgBouncer's: the same database, through the pooler."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params.update(host="127.0.0.1", port=str(PORT))
    params.pop("hostaddr", None)
    return psycopg.conninfo.make_conninfo(**params)


def admin_dsn() -> str:
    """The DSN of PgBouncer's admin console (``SHOW POOLS``; simple queries, autocommit)."""
    return f"host=127.0.0.1 port={PORT} dbname=pgbouncer user=pgbouncer"


def _config(server_dsn: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(server_dsn)
    target = " ".join(f"{key}={params[key]}" for key in ("host", "port", "user", "password")
                      if params.get(key))
    return "\n".join([
        "[databases]",
        f"* = {target}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {PORT}",
        f"unix_socket_dir = {BASE}",
        "auth_type = any",
        "admin_users = pgbouncer",
        "pool_mode = transaction",
        f"default_pool_size = {POOL_SIZE}",
        "min_pool_size = 0",
        "reserve_pool_size = 0",
        "max_client_conn = 500",
        f"query_wait_timeout = {WAIT}",
        f"logfile = {LOG}",
        f"pidfile = {PIDFILE}",
        "",
    ])


def answers() -> str | None:
    """The ``pool_mode`` of the PgBouncer answering on PORT (None: nothing answers)."""
    try:
        with psycopg.connect(admin_dsn(), autocommit=True, connect_timeout=3) as conn:
            for row in conn.execute("SHOW CONFIG").fetchall():
                if row[0] == "pool_mode":
                    return str(row[1])
    except psycopg.OperationalError:
        return None
    raise PoolerError(f"pgbouncer: the server on port {PORT} has no pool_mode: not PgBouncer?")


def _alive(pid: str) -> bool:
    """Whether process ``pid`` (a pid file's text) is running."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return ""


def ensure(server_dsn: str | None = None) -> tuple[str, bool]:
    """The DSN of the maintenance database through PgBouncer, and whether this call
    started PgBouncer (False: it was running already, with the same configuration)."""
    server_dsn = server_dsn or pgcluster.ensure()
    wanted = _config(server_dsn)
    mode = answers()
    if mode is not None:
        if mode != "transaction" or _read(CONFIG) != wanted.strip():
            raise PoolerError(
                f"pgbouncer: port {PORT} is taken by a PgBouncer (pool_mode {mode}) that is "
                f"not in front of {server_dsn} in transaction mode; stop it or choose "
                "another port with MOTHER_TEST_PGBOUNCER_PORT")
        return through(server_dsn), False
    if not os.access(BINARY, os.X_OK):
        raise PoolerError(f"pgbouncer: no {BINARY}; install Debian's pgbouncer package "
                          "(make pgbouncer)")
    if _alive(_read(PIDFILE)):
        # running but not answering on the port: it started while another was still
        # bound there (and listens on its socket file only); no use to anybody
        stop(force=True)
    os.makedirs(BASE, exist_ok=True)
    with open(CONFIG, "w") as config:
        config.write(wanted)
    with open(OWNER, "w") as owner:
        owner.write(CHECKOUT + "\n")
    if os.getuid() == 0:
        for path in (BASE, CONFIG, OWNER):
            shutil.chown(path, "postgres", "postgres")
    subprocess.run(pgcluster.as_owner([BINARY, "-d", "-q", CONFIG]), check=True)
    for _ in range(100):
        if answers() is not None:
            return through(server_dsn), True
        time.sleep(0.1)
    raise PoolerError(f"pgbouncer: it did not come up on port {PORT}; see {LOG}")


def stop(force: bool = False) -> None:
    """Stop PgBouncer if this checkout started it (``force``: whoever did); say so otherwise."""
    pid = _read(PIDFILE)
    if not pid.isdigit():
        return
    started_by = _read(OWNER) or "someone else (no record)"
    if started_by != CHECKOUT and not force:
        print(f"pgbouncer: leaving the one on port {PORT} running: {started_by} started it, "
              "not this checkout")
        return
    try:
        os.kill(int(pid), signal.SIGTERM)  # immediate shutdown: the clients are the tests'
    except ProcessLookupError:
        pass
    for _ in range(200):  # gone, its port and socket file free for the next one
        if not _alive(pid):
            break
        time.sleep(0.05)
    for path in (OWNER, PIDFILE):
        if os.path.exists(path):
            os.remove(path)


def main(argv: list[str]) -> None:
    """``ensure [SERVER_DSN]`` (the default) prints the DSN; ``stop`` stops this checkout's."""
    action = argv[0] if argv else "ensure"
    try:
        if action == "ensure":
            print(ensure(argv[1] if len(argv) > 1 else None)[0])
        elif action == "stop":
            stop()
        else:
            sys.exit("usage: pgbouncer.py [ensure [SERVER_DSN]|stop]")
    except (PoolerError, pgcluster.ClusterError) as error:
        sys.exit(str(error))


if __name__ == "__main__":
    main(sys.argv[1:])
