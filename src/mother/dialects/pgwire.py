"""Statements sent straight through a psycopg connection's libpq handle.

A session's statements need less than psycopg's cursors give, and its
flushes need one round trip: this module sends a list of statements (and a
closing ``COMMIT`` or ``PREPARE TRANSACTION``) as one libpq pipeline, with
psycopg's own adapters for the values and the rows. A statement run
``prepare_threshold`` times on a connection (psycopg's setting, default 5;
``None`` never) becomes a named prepared statement of that connection, as
psycopg does for its cursors; at most :data:`MAX_PREPARED` per connection
(later ones run unprepared: the pool renews connections, so none is
deallocated, which could fail inside a transaction).

The ``BEGIN`` of a session's transaction is not sent on its own: :func:`begin`
queues it (with the session's ``SET application_name``) and it rides in the
same round trip as the first statement.

Placeholders are psycopg's: ``%s``/``%b``/``%t`` or ``%(name)s``/``%(name)b``/
``%(name)t``, and ``%%`` for a literal percent sign.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import re
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import generators, pq
from psycopg.adapt import PyFormat, Transformer

MAX_PREPARED = 200
MAX_SEEN = 1000
_PLACEHOLDER = re.compile(r"%(?:\(([^)]*)\))?(.|$)", re.DOTALL)
_FORMATS = {"s": PyFormat.AUTO, "b": PyFormat.BINARY, "t": PyFormat.TEXT}
_ES = pq.ExecStatus
_SYNC, _ABORTED, _FATAL = _ES.PIPELINE_SYNC, _ES.PIPELINE_ABORTED, _ES.FATAL_ERROR
_IDLE = pq.TransactionStatus.IDLE


@dataclasses.dataclass(frozen=True)
class Template:
    """A statement converted to the server's ``$n`` placeholders."""

    query: bytes
    #: the parameter names in ``$n`` order; None when the placeholders are positional
    names: tuple[str, ...] | None
    formats: tuple[PyFormat, ...]

    def values(self, params: Any) -> list[Any]:
        if not self.formats:
            return []
        if self.names is None:
            if isinstance(params, Mapping):
                raise psycopg.ProgrammingError("positional placeholders (%s) need a sequence "
                                               "of parameters, not a mapping")
            values = list(params or ())
            if len(values) != len(self.formats):
                raise psycopg.ProgrammingError(
                    f"the query has {len(self.formats)} placeholders but "
                    f"{len(values)} parameters were passed")
            return values
        if not isinstance(params, Mapping):
            raise psycopg.ProgrammingError("named placeholders (%(name)s) need a mapping of "
                                           "parameters")
        try:
            return [params[name] for name in self.names]
        except KeyError as error:
            raise psycopg.ProgrammingError(f"query parameter missing: {error.args[0]}") from None


@functools.lru_cache(maxsize=1024)
def template(sql: str, encoding: str) -> Template:
    """Convert psycopg's placeholders to ``$n`` (cached per text)."""
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


class Result:
    """What a statement returned: its rows (as dicts) and counts, cursor-like."""

    __slots__ = ("rows", "rowcount", "description", "_next")

    def __init__(self, rows: list[dict[str, Any]], rowcount: int,
                 description: tuple[str, ...] | None) -> None:
        self.rows = rows
        self.rowcount = rowcount
        #: the column names when the statement returns rows, else None
        self.description = description
        self._next = 0

    def fetchall(self) -> list[dict[str, Any]]:
        rows, self._next = self.rows[self._next:], len(self.rows)
        return rows

    def fetchone(self) -> dict[str, Any] | None:
        if self._next >= len(self.rows):
            return None
        self._next += 1
        return self.rows[self._next - 1]


class _State:
    """What this module keeps per connection."""

    __slots__ = ("prepared", "seen", "begin", "counter")

    def __init__(self) -> None:
        #: (query, types) -> name of the prepared statement
        self.prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        #: (query, types) -> runs so far of a statement not prepared yet, most recent last
        self.seen: collections.OrderedDict[tuple[bytes, tuple[int, ...]], int] = (
            collections.OrderedDict())
        #: commands opening the transaction, sent before the next statements
        self.begin: list[bytes] = []
        self.counter = 0

    def runs(self, key: tuple[bytes, tuple[int, ...]]) -> int:
        """Count a run of an unprepared statement; the runs so far, this one included."""
        seen = self.seen
        count = seen.pop(key, 0) + 1
        seen[key] = count
        if len(seen) > MAX_SEEN:
            seen.popitem(last=False)
        return count


_states: weakref.WeakKeyDictionary[psycopg.Connection, _State] = weakref.WeakKeyDictionary()


def _state(conn: psycopg.Connection) -> _State:
    state = _states.get(conn)
    if state is None:
        state = _states[conn] = _State()
    return state


def forget_prepared(conn: psycopg.Connection) -> None:
    """The server dropped the connection's prepared statements (``DISCARD ALL``,
    ``DEALLOCATE ALL``): prepare them again when they next qualify."""
    state = _states.get(conn)
    if state is not None:
        state.prepared.clear()


def literal(conn: psycopg.Connection, value: str) -> bytes:
    """``value`` as an SQL string literal (for utility statements, which take no parameters)."""
    if "\0" not in value and conn.info.parameter_status("standard_conforming_strings") == "on":
        # backslashes are plain characters in such a literal: only quotes are doubled
        return b"'" + value.replace("'", "''").encode(conn.info.encoding) + b"'"
    return psycopg.sql.Literal(value).as_bytes(conn)


#: the ``BEGIN`` of each isolation level (None: the server's default)
_BEGIN = {None: b"BEGIN", "read committed": b"BEGIN ISOLATION LEVEL READ COMMITTED",
          "repeatable read": b"BEGIN ISOLATION LEVEL REPEATABLE READ",
          "serializable": b"BEGIN ISOLATION LEVEL SERIALIZABLE"}


def begin(conn: psycopg.Connection, name: str | None, isolation_level: str | None = None,
          readonly: bool = False) -> None:
    """Queue ``BEGIN [ISOLATION LEVEL …] [READ ONLY]`` (and ``SET application_name``) for
    the next statements, if idle. A ``BEGIN`` already queued stays as it is: a second
    call before anything was sent (a savepoint's) keeps the session's options."""
    if conn.autocommit or conn.pgconn.transaction_status != _IDLE:
        return
    state = _state(conn)
    if state.begin:
        return
    commands = [_BEGIN[isolation_level] + (b" READ ONLY" if readonly else b"")]
    if name is not None and conn.info.parameter_status("application_name") != name:
        # SET takes no snapshot: the transaction may still choose its isolation level
        commands.append(b"SET application_name = " + literal(conn, name))
    state.begin = commands


def discard_begin(conn: psycopg.Connection) -> list[bytes]:
    """Take back a queued ``BEGIN`` (the connection is idle: nothing to commit or roll back)."""
    state = _states.get(conn)
    if state is None or not state.begin:
        return []
    commands, state.begin = state.begin, []
    if conn.autocommit or conn.pgconn.transaction_status != _IDLE:
        return []
    return commands


def open_transaction(conn: psycopg.Connection) -> None:
    """Send a queued ``BEGIN`` now (before a statement that does not go through here)."""
    run(conn, [])


class _Batch:
    """Commands for one connection, composed, then sent, then read back."""

    def __init__(self, conn: psycopg.Connection, statements: Sequence[tuple[str, Any]],
                 end: bytes | None) -> None:
        self.conn = conn
        self.state = state = _state(conn)
        self.encoding = encoding = conn.info.encoding
        self.tx = tx = Transformer(conn)
        threshold = conn.prepare_threshold
        pgconn = conn.pgconn
        #: what each result belongs to: (kind, cache key), kind in prefix/prepare/run/end
        self.expected: list[tuple[str, Any]] = []
        self.sends: list[Any] = []
        for command in discard_begin(conn):
            self._add(pgconn.send_query_params, (command, None), "prefix")
        for sql, params in statements:
            tpl = template(sql, encoding)
            values = tx.dump_sequence(tpl.values(params), tpl.formats)
            types, formats = tuple(tx.types or ()), tx.formats
            key = (tpl.query, types)
            name = state.prepared.get(key)
            if name is not None:
                self._add(pgconn.send_query_prepared, (name, values, formats), "run", key)
            elif (threshold is not None and len(state.prepared) < MAX_PREPARED
                  and state.runs(key) > threshold):
                state.counter += 1
                name = b"_mo_%d" % state.counter
                self._add(pgconn.send_prepare, (name, tpl.query, types), "prepare", (key, name))
                self._add(pgconn.send_query_prepared, (name, values, formats), "run", key)
            else:
                self._add(pgconn.send_query_params, (tpl.query, values, types, formats),
                          "run", key)
        if end is not None:
            self._add(pgconn.send_query_params, (end, None), "end")
        self.pipelined = len(self.sends) > 1

    def _add(self, send: Any, args: tuple[Any, ...], kind: str, key: Any = None) -> None:
        self.sends.append((send, args))
        self.expected.append((kind, key))

    def send(self) -> None:
        """Send every command (as one pipeline when there are several) and flush them."""
        conn, pgconn = self.conn, self.conn.pgconn
        try:
            if self.pipelined:
                pgconn.enter_pipeline_mode()
                for send, args in self.sends:
                    send(*args)
                pgconn.pipeline_sync()
            else:
                send, args = self.sends[0]
                send(*args)
            conn.wait(generators.send(pgconn))
        except BaseException:
            self._abandon()
            raise

    def receive(self) -> list[Result]:
        """Read every result back; one :class:`Result` per statement, or the first error."""
        conn, pgconn = self.conn, self.conn.pgconn
        try:
            if self.pipelined:
                raw = conn.wait(_gather(pgconn))
                pgconn.exit_pipeline_mode()
            else:
                raw = conn.wait(generators.fetch_many(pgconn))
        except BaseException:
            self._abandon()
            raise
        return self._collect(raw)

    def _collect(self, raw: list[pq.abc.PGresult]) -> list[Result]:
        """One :class:`Result` per statement; remember what got prepared; raise the first
        failure (what followed it in the pipeline did not run)."""
        state, results = self.state, []
        error: BaseException | None = None
        for (kind, key), res in zip(self.expected, raw):
            status = res.status
            if status == _ABORTED:
                continue
            if status == _FATAL:
                failure = pgerrors.error_from_result(res, encoding=self.encoding)
                if kind == "run" and failure.sqlstate == "26000":
                    state.prepared.clear()  # dropped behind our back: DISCARD/DEALLOCATE ALL
                elif kind == "run" and failure.sqlstate == "0A000":
                    state.prepared.pop(key, None)  # its result type changed (DDL)
                error = error or failure
                continue
            if kind == "prepare":
                cache_key, name = key
                state.prepared[cache_key] = name
                state.seen.pop(cache_key, None)
            elif kind == "run":
                results.append(_result(self.tx, res, self.encoding))
        if error is not None:
            raise error
        return results

    def _abandon(self) -> None:
        # results left unread (an interrupt, a lost server): the connection cannot go on
        pgconn = self.conn.pgconn
        if pgconn.status == pq.ConnStatus.OK and pgconn.pipeline_status != pq.PipelineStatus.OFF:
            self.conn.close()


def run(conn: psycopg.Connection, statements: Sequence[tuple[str, Any]],
        end: bytes | None = None) -> list[Result]:
    """Send ``statements`` (each SQL text with one set of parameters), then ``end`` (a
    statement without parameters such as ``COMMIT``), in one round trip; one
    :class:`Result` per statement. The first failure is raised once every result
    has arrived, and then nothing after it ran."""
    batch = _Batch(conn, statements, end)
    if not batch.sends:
        return []
    with conn.lock:
        batch.send()
        return batch.receive()


def run_together(jobs: Sequence[tuple[psycopg.Connection, Sequence[tuple[str, Any]],
                                      bytes | None]]) -> list[list[Result] | Exception]:
    """:func:`run` on several connections at once: every batch is sent before any
    result is awaited, so the servers work in parallel. Per job, its results or
    its error."""
    outcomes: list[list[Result] | Exception] = []
    with contextlib.ExitStack() as stack:
        sent: list[_Batch | Exception] = []
        for conn, statements, end in jobs:
            try:
                batch = _Batch(conn, statements, end)
                stack.enter_context(conn.lock)
                if batch.sends:
                    batch.send()
                sent.append(batch)
            except Exception as error:
                sent.append(error)
        for item in sent:
            if isinstance(item, Exception):
                outcomes.append(item)
                continue
            try:
                outcomes.append(item.receive() if item.sends else [])
            except Exception as error:
                outcomes.append(error)
    return outcomes


def _gather(pgconn: pq.abc.PGconn) -> Any:
    """A psycopg generator: the results of a flushed pipeline, up to its sync."""
    results: list[pq.abc.PGresult] = []
    while True:
        batch = yield from generators.fetch_many(pgconn)
        if batch and batch[0].status == _SYNC:
            return results
        results.extend(batch)


def _result(tx: Transformer, res: pq.abc.PGresult, encoding: str) -> Result:
    if res.status != _ES.TUPLES_OK:
        return Result([], res.command_tuples if res.command_tuples is not None else -1, None)
    names = tuple(res.fname(index).decode(encoding) for index in range(res.nfields))
    tx.set_pgresult(res)
    rows = tx.load_rows(0, res.ntuples, lambda values: dict(zip(names, values)))
    return Result(rows, res.ntuples, names)
