"""The fence around psycopg's internals: everything dbmother uses of psycopg that its
documentation does not promise lives here, checked against the versions it was tested with.

:mod:`mother.dialects.pgwire` sends statements through a connection's libpq handle
(:mod:`psycopg.pq`, which is public) and needs, beyond the public API, psycopg's
waiting generators and connection lock, its :class:`~psycopg.adapt.Transformer`
for dumping values and loading rows, the exception a failed result maps to, and
psycopg's rules for placeholders (``%s``, ``%(name)s``, ``%b``, ``%t``, ``%%``),
which this module reproduces. Any of these may change in a minor release of
psycopg, so importing this module refuses a psycopg outside
:data:`SUPPORTED` (:class:`~mother.errors.UnsupportedDriverError`) when the
application starts, never half-way through a transaction. The upper bound is the
next minor release nobody has tested yet.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeAlias

import psycopg
from psycopg import abc, errors, generators, pq
from psycopg.adapt import PyFormat, Transformer

from ..errors import UnsupportedDriverError

try:  # psycopg 3.2 on
    from psycopg._copy_base import format_row_text
except ImportError:  # psycopg 3.1
    from psycopg.copy import format_row_text  # type: ignore[attr-defined,no-redef]

#: the psycopg versions dbmother is tested with: from the first (included) to the second
#: (excluded); ``make test`` runs the driver-facing tests with the lower bound too
SUPPORTED = ((3, 1, 20), (3, 4))
#: what a dumped value is
Buffer: TypeAlias = bytes | bytearray | memoryview
#: what dumps values and loads rows for a connection (psycopg's Transformer)
Adapting: TypeAlias = abc.Transformer


def _number(version: str) -> tuple[int, ...]:
    found = re.match(r"\d+(?:\.\d+)*", version)
    if found is None:
        raise UnsupportedDriverError(f"psycopg reports an unreadable version {version!r}")
    return tuple(int(part) for part in found[0].split("."))


def check_version(version: str) -> None:
    """Refuse a psycopg ``version`` outside :data:`SUPPORTED`, naming the range."""
    low, high = SUPPORTED
    if not low <= _number(version) < high:
        raise UnsupportedDriverError(
            f"dbmother needs psycopg >= {'.'.join(map(str, low))}, < "
            f"{'.'.join(map(str, high))} (it uses parts of psycopg that may change between "
            f"minor releases); psycopg {version} is installed: install a supported version, "
            "for example pip install 'psycopg[binary]>=3.2,<3.4'")


check_version(psycopg.__version__)


def wait(conn: psycopg.Connection[Any], gen: Generator[Any, Any, Any]) -> Any:
    """Run one of psycopg's waiting generators on ``conn`` (psycopg's own timeout policy)."""
    return conn.wait(gen)


def send(conn: psycopg.Connection[Any]) -> None:
    """Flush everything queued on ``conn``'s libpq handle to the server (waiting for the
    socket only if it cannot take it all at once)."""
    if conn.pgconn.flush():
        conn.wait(generators.send(conn.pgconn))


#: ``fetch_many(pgconn)``, a generator: the results of the next command (for
#: :func:`wait`); psycopg's own, called once per result of a pipeline
fetch_many: Callable[[pq.abc.PGconn], Generator[Any, Any, list[pq.abc.PGresult]]] = (
    generators.fetch_many)


def lock(conn: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
    """The lock psycopg holds while a connection talks to its server."""
    return conn.lock


def transformer(conn: psycopg.Connection[Any]) -> Adapting:
    """Dumps values and loads rows with ``conn``'s adapters (its types, its loaders)."""
    return Transformer(conn)


def encoding(tx: Adapting) -> str:
    """The Python codec of ``tx``'s connection (``conn.info.encoding``, which makes an
    object per reading: the transformer reads it once)."""
    return tx.encoding


def dump(tx: Adapting, values: Sequence[Any], formats: Sequence[PyFormat]
         ) -> tuple[Sequence[Buffer | None], tuple[int, ...], Sequence[pq.Format] | None]:
    """``values`` as the server receives them: the dumped values, their type oids and formats."""
    dumped = tx.dump_sequence(values, formats)
    return dumped, tuple(tx.types or ()), tx.formats


def load_dicts(tx: Adapting, res: pq.abc.PGresult, names: tuple[str, ...]
               ) -> list[dict[str, Any]]:
    """Every row of ``res`` as a dict of ``names``, loaded with the connection's loaders."""
    def make(values: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(names, values))

    tx.set_pgresult(res)
    rows: list[dict[str, Any]] = tx.load_rows(0, res.ntuples, make)
    return rows


#: rows formatted per write of a COPY's data (:func:`write_rows`): the server works on
#: a chunk while the next one is formatted
COPY_CHUNK = 1000


def write_rows(copy: psycopg.Copy, rows: Iterable[Sequence[Any]]) -> None:
    """Write ``rows`` into a text-format ``COPY … FROM STDIN`` (as
    :func:`mother.sql.copy_in` makes) as its ``write_row`` would, each formatted by
    psycopg's own formatter (its C one where installed) with the copy's adapters, but a
    chunk of :data:`COPY_CHUNK` rows at a time at C speed, without psycopg's two Python
    calls per row."""
    tx, each = copy.formatter.transformer, iter(rows)
    while True:
        out = bytearray()
        collections.deque(map(format_row_text, itertools.islice(each, COPY_CHUNK),
                              itertools.repeat(tx), itertools.repeat(out)), maxlen=0)
        if not out:
            return
        copy.write(out)


def error(res: pq.abc.PGresult, encoding: str) -> psycopg.Error:
    """The psycopg exception (``psycopg.errors.*``, by SQLSTATE) a failed result means."""
    return errors.error_from_result(res, encoding=encoding)


_PLACEHOLDER = re.compile(r"%(?:\(([^)]*)\))?(.|$)", re.DOTALL)
_FORMATS = {"s": PyFormat.AUTO, "b": PyFormat.BINARY, "t": PyFormat.TEXT}


@dataclasses.dataclass(frozen=True)
class Template:
    """A statement converted to the server's ``$n`` placeholders."""

    query: bytes
    #: the parameter names in ``$n`` order; None when the placeholders are positional
    names: tuple[str, ...] | None
    formats: tuple[PyFormat, ...]

    def values(self, params: Any) -> list[Any]:
        """The parameters in ``$n`` order, checked against the placeholders."""
        if not self.formats:
            return []
        kind = type(params)  # the usual kinds first: an ABC's isinstance is a Python call
        if self.names is None:
            if kind is not tuple and kind is not list and isinstance(params, Mapping):
                raise psycopg.ProgrammingError("positional placeholders (%s) need a sequence "
                                               "of parameters, not a mapping")
            values = list(params or ())
            if len(values) != len(self.formats):
                raise psycopg.ProgrammingError(
                    f"the query has {len(self.formats)} placeholders but "
                    f"{len(values)} parameters were passed")
            return values
        if kind is not dict and not isinstance(params, Mapping):
            raise psycopg.ProgrammingError("named placeholders (%(name)s) need a mapping of "
                                           "parameters")
        try:
            return [params[name] for name in self.names]
        except KeyError as missing:
            raise psycopg.ProgrammingError(
                f"query parameter missing: {missing.args[0]}") from None


@functools.lru_cache(maxsize=1024)
def template(sql: str, encoding: str) -> Template:
    """Convert psycopg's placeholders to ``$n`` (cached per text), with psycopg's errors."""
    parts: list[str] = []
    names: list[str] = []
    formats: list[PyFormat] = []
    style = None
    end = 0
    for match in _PLACEHOLDER.finditer(sql):
        name, kind = match.groups()
        parts.append(sql[end:match.start()])
        end = match.end()
        if kind == "%" and name is None:
            parts.append("%")
            continue
        if kind not in _FORMATS:
            raise psycopg.ProgrammingError(
                f"only '%s', '%b', '%t' are allowed as placeholders, got {match.group()!r}")
        this = "positional" if name is None else "named"
        if style not in (None, this):
            raise psycopg.ProgrammingError("positional and named placeholders cannot be mixed")
        style = this
        if name is None:
            formats.append(_FORMATS[kind])
            number = len(formats)
        elif name in names:
            number = names.index(name) + 1
        else:
            names.append(name)
            formats.append(_FORMATS[kind])
            number = len(names)
        parts.append(f"${number}")
    parts.append(sql[end:])
    return Template("".join(parts).encode(encoding),
                    None if style != "named" else tuple(names), tuple(formats))
