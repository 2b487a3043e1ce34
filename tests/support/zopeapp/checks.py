"""What the tests check: committed rows, seen through fresh connections."""

from __future__ import annotations

import psycopg


def rows(dsn: str, table: str = "notes") -> list[str]:
    """Committed bodies of ``table`` (a fresh connection sees only committed rows)."""
    if dsn.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(dsn[len("sqlite:///"):])
        try:
            return [r[0] for r in conn.execute(f"SELECT body FROM {table} ORDER BY id")]
        finally:
            conn.close()
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(f"SELECT body FROM {table} ORDER BY id")]


def counter(dsn: str, key: int) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT n FROM counters WHERE id = %s", (key,)).fetchone()[0]


def insert(dsn: str, body: str) -> None:
    """Commit a note from outside Zope."""
    if dsn.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(dsn[len("sqlite:///"):])
        try:
            with conn:
                conn.execute("INSERT INTO notes (body) VALUES (?)", (body,))
        finally:
            conn.close()
        return
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO notes (body) VALUES (%s)", (body,))


def prepared(dsn: str) -> list[str]:
    """Global ids of the transactions left prepared in the database."""
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()")]


def rollback_prepared(dsn: str) -> list[str]:
    """Roll back every prepared transaction of the database (test clean-up); their ids."""
    gids = prepared(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for gid in gids:
            conn.execute(psycopg.sql.SQL("ROLLBACK PREPARED {}").format(gid))
    return gids
