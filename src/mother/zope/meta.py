"""The ``<mother:database>`` ZCML directive (namespace ``http://namespaces.zope.org/mother``).

::

    <configure xmlns:mother="http://namespaces.zope.org/mother">
      <include package="mother.zope" />
      <mother:database name="default" dsn="postgresql://..." pool_min="2" pool_max="10"
                       twophase="auto" />
    </configure>

The settings are checked while the ZCML is read, by dbmother's settings
reader and the DSN's dialect (a bad value stops the startup with the file and
line, naming the attribute); the database itself is configured by a
configuration action, so two directives with the same name conflict.
"""

from __future__ import annotations

import logging
from typing import Any

from zope.component import getGlobalSiteManager
from zope.configuration.exceptions import ConfigurationError
from zope.interface import Interface, alsoProvides
from zope.schema import Bool, Int, TextLine

import mother
from mother import tm
from mother.database import check_settings
from mother.errors import ConfigError

from .interfaces import IMotherDatabase
from .retry import install_hook

log = logging.getLogger(__name__)


class IDatabaseDirective(Interface):
    """Configure a named dbmother database and register it as a named utility."""

    name = TextLine(title="Name of the database (``get_session(name)``)",
                    required=False, default="default")
    dsn = TextLine(title="postgresql://..., a libpq connection string, or sqlite:///path",
                   required=True)
    pool_min = Int(title="Connections kept open", required=False, min=0)
    pool_max = Int(title="Most connections", required=False, min=1)
    pool_timeout = TextLine(title="Seconds to wait for a free connection", required=False)
    pool_type = TextLine(title="limited, elastic or growing", required=False)
    twophase = TextLine(title="on, off or auto (prepare when the server allows it)",
                        required=False)
    session_name = TextLine(title="Prefix of session names", required=False)
    paranoid = Bool(title="Refuse writes without a primary key", required=False)
    persistent_one = Bool(title="Keep the shared connection", required=False)
    recover_interval = TextLine(title="Seconds between automatic recoveries, or off",
                                required=False)
    recover_min_age = TextLine(title="Seconds before automatic recovery touches a branch",
                               required=False)
    schema_check = TextLine(title="Seconds between checks of the schema, or off",
                            required=False)
    pooler = TextLine(title="pgbouncer-transaction behind PgBouncer in transaction mode",
                      required=False)
    register = Bool(
        title="Records created without a session use the transaction's session",
        required=False, default=True)


SETTING_KEYS = ("dsn", "pool_min", "pool_max", "pool_timeout", "pool_type", "twophase",
                "session_name", "paranoid", "persistent_one", "recover_interval",
                "recover_min_age", "schema_check", "pooler")


def register_database(name: str, settings: dict[str, Any], register: bool = True
                      ) -> mother.Database:
    """Configure database ``name`` and register it as the ``IMotherDatabase`` utility ``name``."""
    database = mother.init_mother(name=name, **settings)
    alsoProvides(database, IMotherDatabase)
    getGlobalSiteManager().registerUtility(database, IMotherDatabase, name=name)
    if register:
        tm.register(name)
    install_hook(database)
    log.info("configured Zope database %r (%s)", name, database.dialect.name)
    return database


def database(_context: Any, dsn: str, name: str = "default", register: bool = True,
             **options: Any) -> None:
    """Handler of ``<mother:database>``."""
    settings = {"dsn": dsn}
    settings.update({key: value for key, value in options.items()
                     if key in SETTING_KEYS and value is not None})
    try:
        check_settings(settings, name)
    except ConfigError as error:
        raise ConfigurationError(f"<mother:database name={name!r}>: {error}") from error
    _context.action(
        discriminator=("mother:database", name),
        callable=register_database,
        args=(name, settings, register),
    )
