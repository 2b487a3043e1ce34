"""PgBouncer in transaction mode in front of the test server, and the suites run through it.

The ``pgbouncer`` fixture (tests/conftest.py) starts it with ``tools/pgbouncer.py``
(and stops it at the end if it started it). The test modules of :data:`ROUTED`
run twice, their ``pg_route`` once ``direct`` and once ``pgbouncer``: then
``pg_dsns`` are the same databases through PgBouncer and ``MOTHER_POOLER`` is
``pgbouncer-transaction``, so every database the test configures (and every child
process it starts) is set up for the pooler. SQLite runs are not repeated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.support.pgserver import server_dsn
from tools import pgbouncer

#: the suites also run through PgBouncer: sessions, and the transaction manager's
#: transitions, two-phase commit, failures and recovery
ROUTED = ("tests/test_session.py", "tests/test_savepoints.py", "tests/test_executor.py",
          "tests/test_flush.py", "tests/test_stale.py", "tests/test_records.py",
          "tests/test_sets.py", "tests/test_bulk.py", "tests/test_identity.py",
          "tests/test_readonly.py", "tests/test_locking.py", "tests/test_isolation.py",
          "tests/tm/test_transitions.py", "tests/tm/test_twophase.py", "tests/tm/test_failures.py",
          "tests/tm/test_recovery.py", "tests/tm/test_datamanager.py",
          "tests/tm/test_savepoints.py", "tests/tm/test_commitlog.py", "tests/tm/test_register.py",
          "tests/tm/test_retry.py")
ROUTES = ("direct", "pgbouncer")
POOLER = "pgbouncer-transaction"


def routed(metafunc: pytest.Metafunc) -> None:
    """``pytest_generate_tests``: the tests of :data:`ROUTED` that reach PostgreSQL
    (through ``pg_route``) run on each route."""
    path = metafunc.definition.path.as_posix()
    if "pg_route" in metafunc.fixturenames and path.endswith(ROUTED):
        metafunc.parametrize("pg_route", ROUTES, indirect=True)


def deselect_sqlite(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``pytest_collection_modifyitems``: a SQLite run is the same on every route: once."""
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        params = params.params if params is not None else {}
        twice = params.get("pg_route") == "pgbouncer" and params.get("kind") == "sqlite"
        (dropped if twice else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def admin(query: str) -> list[dict[str, Any]]:
    """The rows of an admin console command (``SHOW POOLS``, ``SHOW SERVERS``; none for
    ``KILL``)."""
    with psycopg.connect(pgbouncer.admin_dsn(), autocommit=True) as conn:
        cursor = conn.execute(query)
        if cursor.description is None:
            return []  # a command (KILL, RESUME)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def dbname(dsn: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])


def servers(dsn: str) -> list[dict[str, Any]]:
    """PgBouncer's server connections to the database of ``dsn`` (``SHOW SERVERS``)."""
    return [row for row in admin("SHOW SERVERS") if row["database"] == dbname(dsn)]


def clients(dsn: str) -> list[dict[str, Any]]:
    """PgBouncer's client connections to the database of ``dsn`` (``SHOW CLIENTS``)."""
    return [row for row in admin("SHOW CLIENTS") if row["database"] == dbname(dsn)]


#: what a server connection carries that could leak from one client to the next
STATE_SQL = ("SELECT pg_backend_pid() AS pid, current_setting('application_name') AS name, "
             "current_setting('lock_timeout') AS lock_timeout, "
             "current_setting('transaction_isolation') AS isolation, "
             "ARRAY(SELECT name FROM pg_prepared_statements ORDER BY name) AS prepared")


def server_states(dsn: str) -> list[dict[str, Any]]:
    """What each of PgBouncer's server connections to the database of ``dsn`` carries,
    asked on it: as many clients as the pool has servers hold a transaction at once,
    so each sits on a server connection of its own, and every one is asked."""
    with contextlib.ExitStack() as stack:
        states = []
        for _ in range(pgbouncer.POOL_SIZE):
            conn = stack.enter_context(psycopg.connect(dsn, prepare_threshold=None,
                                                       row_factory=psycopg.rows.dict_row))
            states.append(conn.execute(STATE_SQL).fetchone())  # stays in its transaction
        assert len({state["pid"] for state in states}) == pgbouncer.POOL_SIZE
        return states


@contextlib.contextmanager
def holding(dsn: str, pid: int) -> Iterator[None]:
    """While inside, the server connection of backend ``pid`` is held by a client of
    ours (in a transaction): PgBouncer gives other clients the others."""
    with contextlib.ExitStack() as stack:
        for _ in range(pgbouncer.POOL_SIZE - 1):
            conn = stack.enter_context(psycopg.connect(dsn, prepare_threshold=None))
            if conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid:  # type: ignore[index]
                yield
                return
        raise AssertionError(f"no client of ours got the server connection of backend {pid}")


def server_pid(session: Any) -> int:
    """The backend running ``session``'s transaction, asked on it (opening it, pending
    writes flushed). Through PgBouncer a connection's ``info.backend_pid`` is PgBouncer's
    own key, not a backend's."""
    return int(session.ov_query("SELECT pg_backend_pid() AS pid"))


def terminate(pid: int) -> None:
    """Terminate backend ``pid`` from a connection straight to the server: through PgBouncer
    the terminating connection could be given that very backend."""
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def sever(conn: psycopg.Connection[Any]) -> None:
    """Break the client connection ``conn``: terminate its backend or, through PgBouncer
    (where an idle client holds no backend), drop every client of its database at the
    admin console (``KILL``, then ``RESUME`` for the clients that come next)."""
    if int(conn.info.port) == pgbouncer.PORT:
        reconnect(conn.info.dsn)
        return
    terminate(conn.info.backend_pid)


def reconnect(dsn: str) -> None:
    """Close every client and server connection of PgBouncer's to the database of ``dsn``
    (the admin console's ``KILL``; ``RESUME`` lets the next clients in)."""
    name = dbname(dsn)
    admin(f'KILL "{name}"')
    admin(f'RESUME "{name}"')
