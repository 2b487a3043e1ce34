"""Pyramid integration: ``config.include("mother.pyramid")``.

* reads the ``mother.*`` settings and configures the databases,
* includes ``pyramid_tm`` (an explicit transaction manager per request
  unless the application chose a ``tm.manager_hook``) and ``pyramid_retry``,
* adds ``request.mother_session`` (and :func:`get_session` for other
  databases): the session scoped to ``request.tm``'s transaction,
* with ``mother.websession.secret`` set, installs a
  :class:`MotherWebSessionFactory` as the session factory,
* with ``mother.replica_reads = auto``, gives GET and HEAD requests read-only
  sessions on the replicas of the databases that have some
  (:mod:`mother.pyramid.replicas`) and adds the view option ``mother_writes``.
"""

from __future__ import annotations

import logging

from pyramid.config import Configurator
from pyramid.viewderivers import INGRESS

from ..database import get_database, init_mother
from ..errors import ConfigError
from .replicas import KEY as REPLICA_READS
from .replicas import mother_writes, replica_reads_settings
from .request import COUNTER, get_session, mother_session, new_counter
from .settings import database_settings, retry_attempts, websession_settings
from .websession import (
    MotherWebSession,
    MotherWebSessionFactory,
    WebSessionConflictError,
    create_websession_table,
)

__all__ = ["MotherWebSession", "MotherWebSessionFactory", "WebSessionConflictError",
           "create_websession_table", "get_session", "includeme"]

log = logging.getLogger(__name__)


def includeme(config: Configurator) -> None:
    """Configure dbmother for a Pyramid application (see the module docstring)."""
    settings = config.get_settings()
    found = database_settings(settings)
    attempts = retry_attempts(settings)
    websession = websession_settings(settings)
    replica_reads = replica_reads_settings(settings)
    for name, values in found.items():
        init_mother(name=name, **values)
        log.info("mother.pyramid: database %r configured", name)
    if "default" not in found:
        try:
            get_database("default")
        except ConfigError:
            # no mother.dsn: MOTHER_DSN from the environment, or a clear startup error
            try:
                init_mother()
            except ConfigError as error:
                raise ConfigError("mother.dsn", None,
                                  "missing: set mother.dsn (or MOTHER_DSN, or call "
                                  "init_mother() before config.include)") from error
    settings["retry.attempts"] = attempts
    if not settings.get("tm.manager_hook"):
        settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    config.include("pyramid_tm")
    config.include("pyramid_retry")
    config.add_tween("mother.pyramid.request.retry_tween_factory",
                     over="pyramid_tm.tm_tween_factory")
    config.registry[COUNTER] = new_counter()
    config.add_request_method(mother_session, "mother_session", property=True)
    if websession:
        config.set_session_factory(MotherWebSessionFactory(**websession))
    config.registry[REPLICA_READS] = replica_reads
    # outermost: set before a permission check or a decorator may ask for a session
    config.add_view_deriver(mother_writes, under=INGRESS, over="secured_view")
