"""Reading the ``mother.*`` settings of a Pyramid application.

``mother.KEY`` configures the default database, ``mother.NAME.KEY`` the
database ``NAME`` (KEY is any keyword of :func:`mother.init_mother`), and
``mother.websession.KEY`` the optional web-session factory. Values arrive as
strings from an INI file and are converted as Pyramid's ``asbool`` does
(strictly: an unknown word is an error, not False) and with ``int``; a
value that does not convert raises :class:`~mother.errors.ConfigError`
naming the full setting, at startup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pyramid.settings import truthy

from ..config import FIELDS, make_settings
from ..errors import ConfigError

PREFIX = "mother."
WEBSESSION = "websession"
FALSY = frozenset({"f", "false", "n", "no", "off", "0"})
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

#: the options of ``mother.websession.*`` and their converters
WEBSESSION_OPTIONS = {
    "secret": "str", "database": "str", "table": "str", "cookie_name": "str",
    "path": "str", "domain": "str", "samesite": "str",
    "timeout": "int", "reissue_time": "int", "max_age": "int",
    "secure": "bool", "httponly": "bool",
}


def strict_bool(key: str, value: Any) -> bool:
    """Pyramid's ``asbool``, except that an unknown word is an error instead of False."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in truthy:
        return True
    if word in FALSY:
        return False
    raise ConfigError(key, value, "expected a boolean (true/false, on/off, yes/no, 1/0)")


def strict_int(key: str, value: Any) -> int:
    """An integer setting, with a :class:`ConfigError` naming the setting."""
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except (TypeError, ValueError):
        raise ConfigError(key, value, "expected an integer") from None
    if number < 0:
        raise ConfigError(key, value, "expected an integer >= 0")
    return number


def _convert(key: str, field: str, value: Any) -> Any:
    kind = FIELDS[field].type
    if kind == "bool":
        return strict_bool(key, value)
    if kind == "bool | None":
        if value is None or str(value).strip().lower() in ("", "auto"):
            return None
        return strict_bool(key, value)
    if kind == "int":
        return strict_int(key, value)
    return value  # floats and strings: the core checks them


def database_settings(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``init_mother`` keywords of each database named in ``settings``, converted.

    Raises :class:`ConfigError` (naming the full setting) for an unknown key
    or a value that does not convert, and checks each database's settings as
    ``init_mother`` would.
    """
    found: dict[str, dict[str, Any]] = {}
    prefixes: dict[str, str] = {}
    for key, value in settings.items():
        if not key.startswith(PREFIX):
            continue
        rest = key[len(PREFIX):]
        name, _, field = rest.rpartition(".")
        name = name or "default"
        if name == WEBSESSION or name.startswith(WEBSESSION + "."):
            continue
        if not NAME.match(name):
            raise ConfigError(key, value, "expected mother.KEY or mother.NAME.KEY")
        if field not in FIELDS:
            raise ConfigError(key, value, f"unknown setting (known: {', '.join(sorted(FIELDS))})")
        found.setdefault(name, {})[field] = _convert(key, field, value)
        prefixes[name] = PREFIX if name == "default" else f"{PREFIX}{name}."
    for name, values in found.items():
        try:
            make_settings(values, name)
        except ConfigError as error:
            reason = str(error).partition(": ")[2] or "invalid"
            raise ConfigError(prefixes[name] + error.key, error.value, reason) from None
    return found


def websession_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``mother.websession.*`` options, converted (empty when none is set)."""
    prefix = f"{PREFIX}{WEBSESSION}."
    options: dict[str, Any] = {}
    for key, value in settings.items():
        if not key.startswith(prefix):
            continue
        option = key[len(prefix):]
        kind = WEBSESSION_OPTIONS.get(option)
        if kind is None:
            known = ", ".join(sorted(WEBSESSION_OPTIONS))
            raise ConfigError(key, value, f"unknown option (known: {known})")
        if kind == "bool":
            options[option] = strict_bool(key, value)
        elif kind == "int":
            options[option] = strict_int(key, value)
        else:
            options[option] = str(value).strip()
    if options and not options.get("secret"):
        raise ConfigError(prefix + "secret", options.get("secret"), "required for the web session")
    return options


def retry_attempts(settings: Mapping[str, Any]) -> int:
    """Check ``retry.attempts`` now, so a typo fails at startup with its name."""
    value = settings.get("retry.attempts")
    if value in (None, ""):
        return 3
    attempts = strict_int("retry.attempts", value)
    if attempts < 1:
        raise ConfigError("retry.attempts", value, "expected an integer >= 1")
    return attempts
