"""Reading the ``mother.*`` settings of a Pyramid application.

``mother.KEY`` configures the default database, ``mother.NAME.KEY`` the
database ``NAME`` (KEY is any keyword of :func:`mother.init_mother`), and
``mother.websession.KEY`` the optional web-session factory. The values are
converted and checked by dbmother's one settings reader (:mod:`mother.config`:
a boolean is one of Pyramid's ``asbool`` words, strictly, so that an unknown
word is an error instead of False); a value that does not convert raises
:class:`~mother.errors.ConfigError` naming the full setting, at startup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..config import FIELDS, as_bool, as_int, as_text, spelled_as
from ..database import check_settings
from ..errors import ConfigError

PREFIX = "mother."
WEBSESSION = "websession"
REPLICA_READS = "replica_reads"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

#: the options of ``mother.websession.*`` and their converters
WEBSESSION_OPTIONS: dict[str, Callable[[str, Any], Any]] = {
    "secret": as_text, "database": as_text, "table": as_text, "cookie_name": as_text,
    "path": as_text, "domain": as_text, "samesite": as_text,
    "timeout": as_int, "reissue_time": as_int, "max_age": as_int,
    "secure": as_bool, "httponly": as_bool,
}


def _prefix(name: str) -> str:
    return PREFIX if name == "default" else f"{PREFIX}{name}."


def database_settings(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``init_mother`` keywords of each database named in ``settings``, converted.

    Raises :class:`ConfigError` (naming the full setting) for an unknown key
    or a value that does not convert, and checks each database's settings
    (its DSN's form included, without connecting) as ``init_mother`` would.
    """
    given: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        if not key.startswith(PREFIX):
            continue
        name, _, field = key[len(PREFIX):].rpartition(".")
        name = name or "default"
        if name == WEBSESSION or name.startswith(WEBSESSION + "."):
            continue
        if (name, field) == ("default", REPLICA_READS) or name == REPLICA_READS:
            continue  # mother.pyramid.replicas reads them
        if not NAME.match(name):
            raise ConfigError(key, value, "expected mother.KEY or mother.NAME.KEY")
        given.setdefault(name, {})[field] = value
    found: dict[str, dict[str, Any]] = {}
    for name, values in given.items():
        prefix = _prefix(name)
        with spelled_as(prefix.__add__,
                        keys=set(FIELDS) | set(values)):
            checked = check_settings(values, name)
        found[name] = {field: getattr(checked, field) for field in values}
    return found


def websession_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``mother.websession.*`` options, converted (empty when none is set)."""
    prefix = f"{PREFIX}{WEBSESSION}."
    options: dict[str, Any] = {}
    for key, value in settings.items():
        if not key.startswith(prefix):
            continue
        option = key[len(prefix):]
        convert = WEBSESSION_OPTIONS.get(option)
        if convert is None:
            known = ", ".join(sorted(WEBSESSION_OPTIONS))
            raise ConfigError(key, value, f"unknown option (known: {known})")
        options[option] = convert(key, value)
    if options and not options.get("secret"):
        raise ConfigError(prefix + "secret", options.get("secret"), "required for the web session")
    return options


def retry_attempts(settings: Mapping[str, Any]) -> int:
    """Check ``retry.attempts`` now, so a typo fails at startup with its name."""
    value = settings.get("retry.attempts")
    if value in (None, ""):
        return 3
    return as_int("retry.attempts", value, minimum=1)
