"""Zope integration: a product with a ZMI "Mother Database Connection", the
``<mother:database>`` ZCML directive and sessions scoped to the publisher's transaction.

Include it from ``site.zcml`` (``<include package="mother.zope" />``).
"""

from __future__ import annotations

import logging
from typing import Any

import transaction
from zope.component import queryUtility

import mother
from mother import tm

from .interfaces import IMotherConnection, IMotherDatabase
from .retry import TransientDatabaseError, install_commit_hook, retryable

log = logging.getLogger(__name__)

__all__ = ["IMotherConnection", "IMotherDatabase", "TransientDatabaseError", "get_database",
           "get_session", "initialize", "retryable"]


def initialize(context: Any) -> None:
    """Product initialisation (``five:registerPackage``): the ZMI-addable connection."""
    from . import connection

    context.registerClass(
        connection.MotherConnection,
        meta_type=connection.META_TYPE,
        permission=connection.ADD_PERMISSION,
        constructors=connection.constructors,
    )


def get_database(name: str = "default") -> mother.Database:
    """The database configured by ``<mother:database name=...>`` (else by ``init_mother``)."""
    database = queryUtility(IMotherDatabase, name=name)
    return database if database is not None else mother.get_database(name)


def get_session(name: str = "default") -> mother.Session:
    """The session of database ``name`` scoped to the current Zope transaction.

    Zope's publisher runs each request in the thread-local
    ``transaction.manager``; the session is created and joined on first use,
    and committed or aborted with the request. Transient errors at commit
    reach the publisher as :class:`TransientDatabaseError` (it retries).
    """
    database = get_database(name)
    install_commit_hook(database)  # a database configured through Zope has its hook already
    return tm.current_session(database, transaction.manager)
