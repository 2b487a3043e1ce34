"""Settings of a database: read from an INI file, a mapping or keywords, then checked.

The one settings reader of dbmother: :func:`mother.init_mother`, the command
line, ``mother.pyramid`` (``mother.*`` settings) and ``mother.zope`` (the
``<mother:database>`` directive and the ZMI forms) all convert and check
their values here. Every refusal is a :class:`~mother.errors.ConfigError`
carrying the setting (``key``), the value refused (``value``) and what was
expected (``reason``); an adapter whose users spell a setting otherwise
(``mother.pool_max`` in a Pyramid INI file) names it their way with
:func:`spelled_as`, from those attributes.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import math
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from .errors import ConfigError

POOL_TYPES = ("limited", "elastic", "growing")
#: the connection poolers dbmother can work behind (``pooler``; None: connected to the server)
POOLERS = ("pgbouncer-transaction",)
#: the isolation levels a database or a session may ask for (SQL's names, lower case)
ISOLATION_LEVELS = ("read committed", "repeatable read", "serializable")
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
    #: what stands between dbmother and the server (one of POOLERS; None: nothing). Its
    #: default is the environment variable ``MOTHER_POOLER``, as ``MOTHER_DSN`` is the dsn's
    pooler: str | None = None
    #: the isolation level of every transaction (None: the database's own default)
    isolation_level: str | None = None
    #: seconds between automatic recoveries of in-doubt branches (None: off)
    recover_interval: float | None = 5.0
    #: how old (seconds) a prepared branch must be before automatic recovery touches it:
    #: longer than any commit takes from its PREPARE to its last COMMIT PREPARED
    recover_min_age: float = 5.0
    #: at most every this many seconds a session compares the catalog's fingerprint with
    #: the cached schema and reads it again when it changed (None: never, the cache stays)
    schema_check: float | None = None
    #: SQLite: make the database file when it does not exist (off: a missing file is an error)
    create: bool = True
    #: PostgreSQL streaming replicas (their DSNs) that read-only sessions run on
    replicas: tuple[str, ...] = ()
    #: seconds a replica may lag behind the primary and still take read-only sessions
    replica_max_lag: float = 5.0
    #: seconds a read-only session with ``after=`` waits for a replica (None: not at all)
    replica_wait: float | None = 0.25
    #: seconds a replica's health and position are trusted before it is asked again
    replica_check: float = 1.0


FIELDS = {field.name: field for field in dataclasses.fields(Settings)}


def as_bool(key: str, value: Any) -> bool:
    """A boolean: ``True``/``False``, 1/0, or a word (true/false, on/off, yes/no, y/n, t/f)."""
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
    """An integer (or its digits) of at least ``minimum``."""
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ConfigError(key, value, "expected an integer") from None
    if isinstance(number, bool) or number < minimum:
        raise ConfigError(key, value, f"expected an integer >= {minimum}")
    return number


def as_float(key: str, value: Any) -> float:
    """A positive number of seconds."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, "expected a number of seconds") from None
    if number <= 0:
        raise ConfigError(key, value, "expected a positive number of seconds")
    return number


def as_isolation_level(key: str, value: Any) -> str | None:
    """An isolation level, spelled as SQL does in any case and spacing (None: the default)."""
    if value is None:
        return None
    level = " ".join(value.lower().split()) if isinstance(value, str) else value
    if level in ("", "default"):
        return None
    if level not in ISOLATION_LEVELS:
        raise ConfigError(key, value, "expected one of " + ", ".join(map(repr, ISOLATION_LEVELS)))
    return level


def as_interval(key: str, value: Any) -> float | None:
    """A period in seconds, or None for off (``0``, ``off``, ``none``, an empty value)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none")):
        return None
    try:
        number = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not 0 <= number < math.inf:
        raise ConfigError(key, value, "expected a number of seconds >= 0, or off")
    return number or None


def as_pooler(key: str, value: Any) -> str | None:
    """One of :data:`POOLERS`, in any case (None: no pooler, also ``""`` and ``none``)."""
    word = value.strip().lower() if isinstance(value, str) else value
    if word is None or word in ("", "none"):
        return None
    if word not in POOLERS:
        raise ConfigError(key, value, "expected one of " + ", ".join(map(repr, POOLERS))
                          + " or none")
    return str(word)


#: where a line of URIs is cut: whitespace or commas before the next URI
_URI_SEPARATOR = re.compile(r"[\s,]+(?=postgres(?:ql)?://)")


def as_dsn_list(key: str, value: Any) -> tuple[str, ...]:
    """DSNs: a list of strings, or one string with one DSN a line, where a line of
    ``postgresql://`` URIs may also separate them by spaces or commas (a key=value DSN
    holds spaces, and a multi-host one commas: it takes a whole line)."""
    if isinstance(value, str):
        found: list[str] = []
        for line in value.splitlines():
            line = line.strip()
            if line.startswith(("postgresql://", "postgres://")):
                found.extend(part.strip(", \t") for part in _URI_SEPARATOR.split(line))
            elif line:
                found.append(line)
        return tuple(found)
    if isinstance(value, (list, tuple)):
        return tuple(as_text(key, item) for item in value if as_text(key, item))
    raise ConfigError(key, value, "expected DSNs: a list, or a string with one a line")


def _convert(key: str, value: Any) -> Any:
    kind = FIELDS[key].type
    if key == "isolation_level":
        return as_isolation_level(key, value)
    if key == "pooler":
        return as_pooler(key, value)
    if key == "replicas":
        return as_dsn_list(key, value)
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
    if kind == "float | None":
        return as_interval(key, value)
    return as_text(key, value)


def as_text(key: str, value: Any) -> str:
    """A string, without the spaces around it."""
    if not isinstance(value, str):
        raise ConfigError(key, value, "expected a string")
    return value.strip()


@contextlib.contextmanager
def spelled_as(spell: Callable[[str], str], keys: Collection[str] = FIELDS) -> Iterator[None]:
    """Inside the block, a :class:`~mother.errors.ConfigError` about one of ``keys`` (default: the
    settings of :func:`mother.init_mother`) names the setting ``spell(key)`` instead: the
    way the adapter's users wrote it. Made from the error's attributes, reason and value kept.
    """
    try:
        yield
    except ConfigError as error:
        if error.key not in keys:
            raise
        raise ConfigError(spell(error.key), error.value, error.reason) from None


def _read_ini(path: str | os.PathLike[str]) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(path):
        raise ConfigError("config", os.fspath(path), "file not found or unreadable")
    return parser


def ini_databases(path: str | os.PathLike[str]) -> list[str]:
    """The databases an INI file configures: ``default`` for ``[mother]``, ``NAME`` for
    each ``[mother:NAME]``."""
    return ["default" if section == "mother" else section.split(":", 1)[1]
            for section in _read_ini(path).sections()
            if section == "mother" or section.startswith("mother:")]


def read_ini(path: str | os.PathLike[str], name: str = "default") -> dict[str, str]:
    """Read ``[mother]`` (for ``default``) or ``[mother:NAME]`` from an INI file."""
    parser = _read_ini(path)
    section = "mother" if name == "default" else f"mother:{name}"
    if not parser.has_section(section):
        if name == "default" or not parser.has_section("mother"):
            raise ConfigError("config", os.fspath(path), f"no [{section}] section")
        section = "mother"
    return dict(parser.items(section))


def _behind_pooler(values: dict[str, Any], raw: Mapping[str, Any]) -> None:
    """Behind a pooler in transaction mode nothing is prepared under a name: the next
    transaction may run on another server connection (``prepare_threshold`` off)."""
    if values.get("prepare_threshold") is not None:
        raise ConfigError("prepare_threshold", raw["prepare_threshold"],
                          f"must be off with pooler = {values['pooler']}: the pooler gives "
                          "each transaction any server connection, where a statement "
                          "prepared on another one does not exist")
    values["prepare_threshold"] = None


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
        raise ConfigError(unknown[0], raw[unknown[0]],
                          f"unknown setting (known: {', '.join(sorted(FIELDS))})")
    if not raw.get("dsn"):
        raw["dsn"] = os.environ.get("MOTHER_DSN", "")
    if not raw["dsn"]:
        raise ConfigError("dsn", None, "missing (pass dsn= or set MOTHER_DSN)")
    if "pooler" not in raw and os.environ.get("MOTHER_POOLER"):
        raw["pooler"] = os.environ["MOTHER_POOLER"]
    values = {key: _convert(key, value) for key, value in raw.items()}
    if values.get("pooler") is not None:
        _behind_pooler(values, raw)
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
    if settings.dsn in settings.replicas:
        raise ConfigError("replicas", settings.dsn, "is the primary's own dsn, not a replica")
    return settings
