"""Settings of a database: read from an INI file, a mapping or keywords, then checked."""

from __future__ import annotations

import configparser
import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

POOL_TYPES = ("limited", "elastic", "growing")
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", "f"})


@dataclasses.dataclass(frozen=True)
class Settings:
    """The checked settings of one named database."""

    dsn: str
    pool_min: int = 4
    pool_max: int = 10
    pool_timeout: float = 15.0
    pool_type: str = "limited"
    pool_idle: float = 60.0
    persistent_one: bool = True
    session_name: str = "MoSession"
    twophase: bool | None = None
    paranoid: bool = False
    autoflush: bool = True
    busy_timeout: float = 30.0
    prepare_threshold: int | None = 5
    #: SQLite: make the database file when it does not exist (off: a missing file is an error)
    create: bool = True


FIELDS = {field.name: field for field in dataclasses.fields(Settings)}


def as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ConfigError(key, value, "expected a boolean (true/false, on/off, yes/no, 1/0)")


def as_int(key: str, value: Any, minimum: int = 0) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ConfigError(key, value, "expected an integer") from None
    if isinstance(number, bool) or number < minimum:
        raise ConfigError(key, value, f"expected an integer >= {minimum}")
    return number


def as_float(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, "expected a number of seconds") from None
    if number <= 0:
        raise ConfigError(key, value, "expected a positive number of seconds")
    return number


def _convert(key: str, value: Any) -> Any:
    kind = FIELDS[key].type
    if kind == "bool":
        return as_bool(key, value)
    if kind == "bool | None":
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
            return None
        return as_bool(key, value)
    if kind == "int":
        return as_int(key, value)
    if kind == "int | None":
        if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none")):
            return None
        return as_int(key, value)
    if kind == "float":
        return as_float(key, value)
    if not isinstance(value, str):
        raise ConfigError(key, value, "expected a string")
    return value.strip()


def read_ini(path: str | os.PathLike[str], name: str = "default") -> dict[str, str]:
    """Read ``[mother]`` (for ``default``) or ``[mother:NAME]`` from an INI file."""
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(path):
        raise ConfigError("config", os.fspath(path), "file not found or unreadable")
    section = "mother" if name == "default" else f"mother:{name}"
    if not parser.has_section(section):
        if name == "default" or not parser.has_section("mother"):
            raise ConfigError("config", os.fspath(path), f"no [{section}] section")
        section = "mother"
    return dict(parser.items(section))


def make_settings(
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    name: str = "default",
    **overrides: Any,
) -> Settings:
    """Merge an INI file or mapping with keyword overrides and check every value."""
    raw: dict[str, Any] = {}
    if isinstance(config, Mapping):
        raw.update(config)
    elif config is not None:
        raw.update(read_ini(config, name))
    raw.update(overrides)
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ConfigError(unknown[0], raw[unknown[0]], "unknown setting")
    if not raw.get("dsn"):
        raw["dsn"] = os.environ.get("MOTHER_DSN", "")
    if not raw["dsn"]:
        raise ConfigError("dsn", None, "missing (pass dsn= or set MOTHER_DSN)")
    values = {key: _convert(key, value) for key, value in raw.items()}
    if values.get("pool_type", "limited") not in POOL_TYPES:
        raise ConfigError("pool_type", values["pool_type"], f"expected one of {POOL_TYPES}")
    settings = Settings(**values)
    if settings.pool_max < max(settings.pool_min, 1):
        given = "" if "pool_min" in raw else ", the default"
        raise ConfigError("pool_max", settings.pool_max,
                          f"must be >= pool_min ({settings.pool_min}{given}) and >= 1: "
                          "raise pool_max or lower pool_min")
    if not settings.session_name:
        raise ConfigError("session_name", settings.session_name, "must not be empty")
    return settings
