"""Dialects: one per database kind, chosen from the DSN."""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from .base import Dialect, Pool, PoolStatus


def dialect_for(settings: Settings, database: str) -> Dialect:
    """The dialect for ``settings.dsn``: ``sqlite://…`` or a PostgreSQL DSN."""
    dsn = settings.dsn
    if dsn.startswith("sqlite:"):
        from .sqlite import SQLiteDialect

        return SQLiteDialect(settings, database)
    if dsn.startswith(("postgresql://", "postgres://")) or "=" in dsn:
        from .postgres import PostgresDialect

        return PostgresDialect(settings, database)
    raise ConfigError("dsn", dsn, "expected postgresql://…, a libpq key=value string, "
                      "sqlite:///path/to/file.db or sqlite://")


__all__ = ["Dialect", "Pool", "PoolStatus", "dialect_for"]
