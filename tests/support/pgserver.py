"""The PostgreSQL server of the tests, and throwaway databases on it.

:func:`server_dsn` is ``tools/pgcluster.py``'s :func:`~tools.pgcluster.ensure`,
called in the test process: ``MOTHER_TEST_PG_DSN`` if it is set, else a server
found or started on this machine, always one that allows prepared transactions.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from tools import pgcluster


def server_dsn() -> str:
    """The DSN of the test server's maintenance database."""
    return pgcluster.ensure()


def with_db(dsn: str, dbname: str) -> str:
    """``dsn`` with its database replaced by ``dbname``."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**params)


def create_databases(server: str, names: list[str]) -> list[str]:
    """Create the databases ``names`` on ``server``; their DSNs, in the same order."""
    with psycopg.connect(server, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return [with_db(server, name) for name in names]


def drop_databases(server: str, names: list[str]) -> None:
    """Roll back what is left prepared in the databases ``names``, then drop them.

    A prepared transaction is rolled back from a connection to its own database
    (PostgreSQL refuses it from another one); ``DROP DATABASE`` refuses while any is left.
    """
    with psycopg.connect(server, autocommit=True) as conn:
        for gid, database in conn.execute(
                "SELECT gid, database FROM pg_prepared_xacts WHERE database = ANY(%s)",
                (names,)).fetchall():
            with psycopg.connect(with_db(server, database), autocommit=True) as other:
                other.execute(sql.SQL("ROLLBACK PREPARED {}").format(gid))
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))
