"""Statements sent straight through a psycopg connection's libpq handle.

A session's statements need less than psycopg's cursors give, and its
flushes need one round trip: this module sends a list of statements (and a
closing ``COMMIT`` or ``PREPARE TRANSACTION``) as one libpq pipeline, with
psycopg's own adapters for the values and the rows. A statement run
``prepare_threshold`` times on a connection (dbmother's setting, default 5;
``None`` never; see :func:`set_prepare_threshold`) becomes a named prepared
statement of that connection, as psycopg does for its cursors; at most the
connection's ``prepared_max`` of them (psycopg's setting; None: no limit). When a
statement needs the room, the least recently used one is evicted: it is
deallocated by the next round trip that starts outside a transaction, as a
``DEALLOCATE`` in a pipeline segment of its own before the ``BEGIN`` (no round
trip of its own; a failure there touches no transaction), and until then it still
counts, so the server never holds more than ``prepared_max``. Inside a
transaction a ``DEALLOCATE`` that failed (the transaction had failed already, or
the statement was dropped by a ``DISCARD ALL``) would abort the transaction or the
statements after it. psycopg's own preparation is switched off on these
connections: after a rollback psycopg sends ``DEALLOCATE ALL``, which would
drop this module's statements too.

psycopg's internals that this needs are fenced in
:mod:`mother.dialects._psycopg`, which checks the installed version.

Before a closing ``COMMIT`` the pipeline can ask the transaction's id and then
ask the server to flush its output (a flush request, not a sync: a failure
still skips the ``COMMIT``), so that the statements' replies leave the server
before the ``COMMIT`` runs. The closing command's reply is
checked: a transaction that had failed is answered ``ROLLBACK``, which raises
:class:`~mother.errors.RolledBackError`. When the connection breaks after the
closing command was sent, :class:`~mother.dialects.base.EndLost` says what is
known: whether it can have run, and the transaction id the server had given
the transaction (asked in the first segment), so that the caller can ask the
server what became of it.

The ``BEGIN`` of a session's transaction is not sent on its own: :func:`begin`
queues it (with the session's ``SET application_name``) and it rides in the
same round trip as the first statement.

Behind a pooler in transaction mode (PgBouncer's ``pool_mode = transaction``) each
transaction may run on another server connection, shared with other clients:
nothing may stay on one after the transaction. There the threshold is None (no
statement is prepared), the session's name is set with ``SET LOCAL`` in every
``BEGIN`` (``local``), and so are the connection's other settings (:func:`set_local`).
A prepared statement's name holds a random token of its connection, so that a
statement prepared on one server connection is never run as another client's
statement of the same name: a client that finds its statement missing (its
transaction went to another server connection) gets a
:class:`~mother.errors.PreparedStatementLostError`, which says what to set.

Placeholders are psycopg's: ``%s``/``%b``/``%t`` or ``%(name)s``/``%(name)b``/
``%(name)t``, and ``%%`` for a literal percent sign.
"""

from __future__ import annotations

import collections
import contextlib
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg import sql as pgsql

from .. import events
from ..errors import PreparedStatementLostError, RolledBackError
from . import _psycopg as fence
from ._psycopg import template
from .base import ByConnection, EndLost, T

MAX_SEEN = 1000
_ES = pq.ExecStatus
_SYNC, _ABORTED, _FATAL = _ES.PIPELINE_SYNC, _ES.PIPELINE_ABORTED, _ES.FATAL_ERROR
_IDLE = pq.TransactionStatus.IDLE
_TUPLES_OK = _ES.TUPLES_OK
#: asked before a closing command: the id of the transaction, or NULL if it wrote nothing
XID_PROBE = "SELECT pg_catalog.pg_current_xact_id_if_assigned()::text"
#: asked after a closing ``COMMIT`` (or ``COMMIT PREPARED``) in the same round trip: the
#: primary's WAL insert position, at or past the commit's record (its *write* and *flush*
#: positions may still be before it when ``synchronous_commit`` is off); not kept when the
#: transaction-id probe said the transaction wrote nothing
POSITION_PROBE = "SELECT (pg_catalog.pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8"
#: SQLSTATE classes of a server that said it is going away (operator intervention, connection)
_GOING_AWAY = ("57", "08")

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

    __slots__ = ("prepared", "retired", "seen", "begin", "counter", "token", "threshold",
                 "local", "database", "session", "position")

    def __init__(self) -> None:
        #: (query, types) -> name of the prepared statement, least recently used first
        self.prepared: collections.OrderedDict[tuple[bytes, tuple[int, ...]], bytes] = (
            collections.OrderedDict())
        #: prepared statements evicted but still on the server, deallocated by the next
        #: round trip that starts outside a transaction
        self.retired: list[bytes] = []
        #: (query, types) -> runs so far of a statement not prepared yet, most recent last
        self.seen: collections.OrderedDict[tuple[bytes, tuple[int, ...]], int] = (
            collections.OrderedDict())
        #: commands opening the transaction, sent before the next statements
        self.begin: list[bytes] = []
        self.counter = 0
        #: in the names of the connection's prepared statements: unique to the connection
        self.token = secrets.token_hex(8).encode()
        #: runs of a statement after which it is prepared (None: never)
        self.threshold: int | None = 5
        #: ``SET LOCAL`` commands sent with every ``BEGIN`` (:func:`set_local`)
        self.local: dict[str, bytes] = {}
        #: what the connection's round trips are reported as: its database and session
        self.database = ""
        self.session: str | None = None
        #: the WAL position after the last commit that asked it (see :func:`take_position`)
        self.position: int | None = None

    def runs(self, key: tuple[bytes, tuple[int, ...]]) -> int:
        """Count a run of an unprepared statement; the runs so far, this one included."""
        seen = self.seen
        count = seen.pop(key, 0) + 1
        seen[key] = count
        if len(seen) > MAX_SEEN:
            seen.popitem(last=False)
        return count

    def room(self, limit: int | None, idle: bool, used: set[bytes]) -> bool:
        """Whether one more statement may be prepared now under the connection's
        ``prepared_max`` (``limit``; None: no limit).

        The least recently used statement is evicted to make room; it stays on the
        server until a round trip starts outside a transaction (``idle``), which
        deallocates it first, so until then it counts against the limit. ``used``: the
        statements this round trip runs, which it cannot deallocate.
        """
        if limit is None:
            return True
        prepared, retired = self.prepared, self.retired
        if prepared and len(prepared) + (0 if idle else len(retired)) >= limit and (
                idle or not retired):
            name = next(iter(prepared.values()))
            if name not in used:
                prepared.popitem(last=False)
                retired.append(name)
        return len(prepared) + (0 if idle else len(retired)) < limit


_states: ByConnection[_State] = ByConnection()


def _state(conn: psycopg.Connection[Any]) -> _State:
    state = _states.get(id(conn))
    return state if state is not None else _states.attach(conn, _State())


def set_prepare_threshold(conn: psycopg.Connection[Any], threshold: int | None) -> None:
    """Prepare a statement after ``threshold`` runs on ``conn`` (None: never); psycopg's
    own preparation is switched off (see the module's docstring)."""
    conn.prepare_threshold = None
    _state(conn).threshold = threshold


def set_local(conn: psycopg.Connection[Any], setting: str, value: str) -> None:
    """Set ``setting`` (a known, trusted name) to ``value`` in every transaction that
    :func:`begin` opens on ``conn`` from now on (``SET LOCAL``, with the ``BEGIN``): a
    setting that never outlives a transaction, safe behind a pooler."""
    _state(conn).local[setting] = b"SET LOCAL " + setting.encode() + b" = " + literal(conn, value)


_KEEP: Any = object()


def label(conn: psycopg.Connection[Any], database: str = _KEEP,
          session: str | None = _KEEP) -> None:
    """Name the database and the session (None: no session) that ``conn``'s round trips
    are reported for (:mod:`mother.events`); what is not given stays."""
    state = _state(conn)
    if database is not _KEEP:
        state.database = database
    if session is not _KEEP:
        state.session = session


def labels(conn: psycopg.Connection[Any]) -> tuple[str, str | None]:
    """The database and session ``conn``'s round trips are reported for."""
    state = _state(conn)
    return state.database, state.session


def forget_prepared(conn: psycopg.Connection[Any]) -> None:
    """The server dropped the connection's prepared statements (``DISCARD ALL``,
    ``DEALLOCATE ALL``): prepare them again when they next qualify."""
    state = _states.get(id(conn))
    if state is not None:
        state.prepared.clear()
        state.retired.clear()


def literal(conn: psycopg.Connection[Any], value: str) -> bytes:
    """``value`` as an SQL string literal (for utility statements, which take no parameters)."""
    if "\0" not in value and conn.pgconn.parameter_status(b"standard_conforming_strings") == b"on":
        # backslashes are plain characters in such a literal: only quotes are doubled
        return b"'" + value.replace("'", "''").encode(conn.info.encoding) + b"'"
    return pgsql.Literal(value).as_bytes(conn)


def application_name(conn: psycopg.Connection[Any]) -> str | None:
    """The connection's ``application_name`` as the server last reported it (read off the
    libpq handle, without the object ``conn.info`` makes per reading; the server keeps
    only printable ASCII in it)."""
    value = conn.pgconn.parameter_status(b"application_name")
    return None if value is None else value.decode("ascii", "replace")


#: the ``BEGIN`` of each isolation level (None: the server's default)
_BEGIN = {None: b"BEGIN", "read committed": b"BEGIN ISOLATION LEVEL READ COMMITTED",
          "repeatable read": b"BEGIN ISOLATION LEVEL REPEATABLE READ",
          "serializable": b"BEGIN ISOLATION LEVEL SERIALIZABLE"}


def begin(conn: psycopg.Connection[Any], name: str | None, isolation_level: str | None = None,
          readonly: bool = False, local: bool = False) -> None:
    """Queue ``BEGIN [ISOLATION LEVEL …] [READ ONLY]`` (and ``SET application_name``) for
    the next statements, if idle. A ``BEGIN`` already queued stays as it is: a second
    call before anything was sent (a savepoint's) keeps the session's options.
    ``name`` (the session's) also labels the connection's events (:func:`label`); the
    server is sent its first 63 characters. With ``local`` (behind a pooler) the name is
    set for the transaction only, in every transaction (None: the connection's label)."""
    if conn.autocommit or conn.pgconn.transaction_status != _IDLE:
        return
    state = _state(conn)
    if state.begin:
        return
    commands = [_BEGIN[isolation_level] + (b" READ ONLY" if readonly else b"")]
    if name is not None:
        state.session = name
    elif local:
        name = state.session
    if name is not None:
        name = name[:63]
    # SET takes no snapshot: the transaction may still choose its isolation level
    if name is not None and local:
        commands.append(b"SET LOCAL application_name = " + literal(conn, name))
    elif name is not None and application_name(conn) != name:
        commands.append(b"SET application_name = " + literal(conn, name))
    commands.extend(state.local.values())
    state.begin = commands


def discard_begin(conn: psycopg.Connection[Any]) -> list[bytes]:
    """Take back a queued ``BEGIN`` (the connection is idle: nothing to commit or roll back)."""
    state = _states.get(id(conn))
    if state is None or not state.begin:
        return []
    commands, state.begin = state.begin, []
    if conn.autocommit or conn.pgconn.transaction_status != _IDLE:
        return []
    return commands


def open_transaction(conn: psycopg.Connection[Any]) -> None:
    """Send a queued ``BEGIN`` now (before a statement that does not go through here)."""
    run(conn, [])


class _Batch:
    """Commands for one connection, composed, then sent, then read back.

    With ``probe`` (and a closing command ``end``), the transaction-id probe and a
    flush request go before ``end``: what came before it is answered first. A round
    trip that starts outside a transaction first deallocates the evicted prepared
    statements, in a pipeline segment of their own.
    """

    def __init__(self, conn: psycopg.Connection[Any], statements: Sequence[tuple[str, Any]],
                 end: bytes | None, probe: bool = False, position: bool = False) -> None:
        self.conn = conn
        self.state = state = _state(conn)
        self.tx = tx = fence.transformer(conn)
        self.encoding = fence.encoding(tx)
        pgconn = conn.pgconn
        self.end = end
        #: what each result belongs to: (kind, key), kind in
        #: deallocate/prefix/prepare/run/probe/end
        self.expected: list[tuple[str, Any]] = []
        self.sends: list[Any] = []
        idle = pgconn.transaction_status == _IDLE
        #: the commands queued before the statements (the transaction's BEGIN; see
        #: :func:`discard_begin`)
        self.prefix = state.begin
        if self.prefix:
            state.begin = []
            if conn.autocommit or not idle:
                self.prefix = []
        for command in self.prefix:
            self._add(pgconn.send_query_params, (command, None), "prefix")
        asked = [(sql, params, "run") for sql, params in statements]
        if end is not None and probe:
            asked.append((XID_PROBE, (), "probe"))
        self.asked = asked
        registered: list[tuple[bytes, tuple[int, ...]]] = []
        try:
            self._compose(idle, registered)
        except BaseException:
            for key in registered:  # never sent: not prepared on the server
                state.prepared.pop(key, None)
            raise
        #: the evicted prepared statements deallocated first (own segment: outside a
        #: transaction, a failure there touches nothing else)
        self.deallocated = list(state.retired) if idle and self.sends else []
        if self.deallocated:
            self.sends[:0] = [(pgconn.send_query_params, (b"DEALLOCATE " + name, None))
                              for name in self.deallocated]
            self.expected[:0] = [("deallocate", name) for name in self.deallocated]
        #: how many commands are answered before the closing one
        self.first = len(self.sends)
        if end is not None:
            self._add(pgconn.send_query_params, (end, None), "end")
        #: whether the WAL position is asked after the closing command
        self.position = end is not None and position
        if self.position:
            state.position = None
            self._add(pgconn.send_query_params, (POSITION_PROBE.encode(), None), "position")
        self.pipelined = len(self.sends) > 1
        #: whether the server flushes its replies before it runs the closing command
        self.split = probe and end is not None and 0 < self.first < len(self.sends)
        #: raw results read so far
        self.raw: list[pq.abc.PGresult] = []

    def _compose(self, idle: bool, registered: list[tuple[bytes, tuple[int, ...]]]) -> None:
        """Queue every asked statement: prepared, to prepare now, or unprepared."""
        state, tx, pgconn, encoding = self.state, self.tx, self.conn.pgconn, self.encoding
        threshold, limit = state.threshold, self.conn.prepared_max
        prepared, sends, expected = state.prepared, self.sends, self.expected
        used: set[bytes] = set()
        #: the statements run under a name prepared earlier (their name may be gone)
        self.named: set[tuple[bytes, tuple[int, ...]]] = set()
        for sql, params, kind in self.asked:
            tpl = template(sql, encoding)
            values, types, formats = fence.dump(tx, tpl.values(params), tpl.formats)
            key = (tpl.query, types)
            name = prepared.get(key)
            if name is not None:
                prepared.move_to_end(key)
                used.add(name)
                self.named.add(key)
                sends.append((pgconn.send_query_prepared, (name, values, formats)))
                expected.append((kind, key))
            elif (threshold is not None and state.runs(key) > threshold
                  and state.room(limit, idle, used)):
                state.counter += 1
                name = b"_mo_%s_%d" % (state.token, state.counter)
                # known from now on, so that the same statement later in this round trip
                # runs it; forgotten again if the PREPARE fails
                state.prepared[key] = name
                state.seen.pop(key, None)
                registered.append(key)
                used.add(name)
                self._add(pgconn.send_prepare, (name, tpl.query, types), "prepare", (key, name))
                self._add(pgconn.send_query_prepared, (name, values, formats), kind, key)
            else:
                self._add(pgconn.send_query_params, (tpl.query, values, types, formats),
                          kind, key)

    def _add(self, send: Any, args: tuple[Any, ...], kind: str, key: Any = None) -> None:
        self.sends.append((send, args))
        self.expected.append((kind, key))

    def send(self) -> None:
        """Send every command (as one pipeline when there are several) and flush them."""
        conn, pgconn = self.conn, self.conn.pgconn
        try:
            if self.pipelined:
                pgconn.enter_pipeline_mode()
                for index, (send, args) in enumerate(self.sends):
                    if index == self.first and self.split:
                        pgconn.send_flush_request()  # replies leave before the end runs
                    elif index == len(self.deallocated) and index:
                        pgconn.pipeline_sync()  # the deallocations' own segment ends
                    send(*args)
                pgconn.pipeline_sync()
            else:
                send, args = self.sends[0]
                send(*args)
            fence.send(conn)
        except BaseException as error:
            self._abandon()
            if self.split:
                # a message the server did not receive in full is not run
                raise EndLost(error, ran=False) from error
            raise

    def receive(self) -> list[Result]:
        """Read every result back; one :class:`Result` per statement, or the first error."""
        conn, pgconn = self.conn, self.conn.pgconn
        try:
            if self.pipelined:
                fence.wait(conn, self._gather(2 if self.deallocated else 1))
                pgconn.exit_pipeline_mode()
            else:
                self.raw = fence.wait(conn, fence.fetch_many(pgconn))
        except BaseException as error:
            self._abandon()
            if self.split:
                raise self._lost(error) from error
            raise
        return self._collect(self.raw)

    def _gather(self, syncs: int) -> Any:
        """A psycopg generator: the results of the flushed pipeline, up to its last sync
        (kept in ``self.raw`` as they come, so a broken connection leaves what arrived)."""
        pgconn = self.conn.pgconn
        while True:
            batch = yield from fence.fetch_many(pgconn)
            if batch and batch[0].status == _SYNC:
                syncs -= 1
                if not syncs:
                    return
                continue
            self.raw.extend(batch)
            if pgconn.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError("the connection broke during a pipeline")

    def _lost(self, error: BaseException) -> EndLost:
        """What is known of the closing command when the connection broke after sending it."""
        answered = self.raw[:self.first]
        going = any(res.status == _FATAL and (
            res.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()[:2] in _GOING_AWAY
            for res in answered)
        if going or len(answered) < self.first:
            # the server flushes the replies before the closing command, then runs it: if
            # it said it was going away before that, the closing command never ran
            return EndLost(error, ran=False if going else None)
        # a failure before the closing command decides: that command was then skipped
        results = self._collect(answered)
        probed = [res for (kind, _), res in zip(self.expected, answered) if kind == "probe"]
        value = probed[0].get_value(0, 0) if probed and probed[0].ntuples else None
        if probed and value is None:
            return EndLost(error, ran=None, wrote=False, results=results)
        return EndLost(error, ran=None, xid=None if value is None else int(value),
                       results=results)

    def _collect(self, raw: list[pq.abc.PGresult]) -> list[Result]:
        """One :class:`Result` per statement; remember what got prepared; raise the first
        failure (what followed it in its segment did not run); check the closing command."""
        state, results = self.state, []
        error: BaseException | None = None
        #: whether the probe said the transaction wrote nothing (then no position counts)
        unwritten = False
        for (kind, key), res in zip(self.expected, raw):
            status = res.status
            if kind == "position":
                # after the closing command: its failure never fails what committed
                if status == _ES.TUPLES_OK and error is None and res.ntuples and not unwritten:
                    state.position = int(res.get_value(0, 0) or b"-1")
                continue
            if kind == "probe" and status == _ES.TUPLES_OK:
                unwritten = bool(res.ntuples) and res.get_value(0, 0) is None
            if kind == "deallocate":
                if status != _FATAL and status != _ABORTED or (
                        res.error_field(pq.DiagnosticField.SQLSTATE) == b"26000"):
                    state.retired.remove(key)  # gone from the server (or already was)
                continue
            if kind == "prepare" and status in (_FATAL, _ABORTED):
                cache_key, name = key
                if state.prepared.get(cache_key) == name:
                    del state.prepared[cache_key]  # the server did not prepare it
            if status == _ABORTED:
                continue
            if status == _FATAL:
                failed = fence.error(res, self.encoding)
                failure: BaseException = failed
                sqlstate = failed.sqlstate
                if kind in ("run", "probe") and sqlstate == "26000":
                    if key in self.named:
                        failure = _lost_statement(failed)
                    forget_prepared(self.conn)  # dropped behind our back: DISCARD/DEALLOCATE ALL
                elif kind in ("run", "probe") and sqlstate == "0A000":
                    state.prepared.pop(key, None)  # its result type changed (DDL)
                elif self.end is not None and sqlstate == "25P02":
                    failure = RolledBackError(
                        "the transaction had failed (a statement's error was caught): it "
                        "cannot commit; the server rolls it back")
                error = error or failure
                continue
            if kind == "run":
                results.append(_result(self.tx, res, self.encoding))
            elif kind == "end" and error is None:
                _check_end(self.end, res.command_status)
        if error is not None:
            raise error
        return results

    def report(self, start: float, error: BaseException | None,
               results: list[Result] | None) -> None:
        """Report what this batch sent as one round trip (:mod:`mother.events`); a
        statement run with several parameter sets in a row (an executemany) is one
        statement with the list of its parameter sets and the sum of its rows."""
        encoding = self.encoding
        sent = [events.Statement(command.decode(encoding), None, None)
                for command in [b"DEALLOCATE " + name for name in self.deallocated]
                + self.prefix]
        counts = iter(results or ())
        runs: list[tuple[str, list[Any], list[int | None]]] = []
        for sql, params, kind in self.asked:
            if kind != "run":
                continue
            count = events.rows_of(next(counts)) if results is not None else None
            if runs and runs[-1][0] == sql:
                runs[-1][1].append(params)
                runs[-1][2].append(count)
            else:
                runs.append((sql, [params], [count]))
        for sql, sets, counted in runs:
            known = [count for count in counted if count is not None]
            total = sum(known) if len(known) == len(counted) else None
            sent.append(events.Statement(sql, sets if len(sets) > 1 else sets[0], total))
        if self.end is not None:
            if self.asked and self.asked[-1][2] == "probe":
                sent.append(events.Statement(XID_PROBE, None, None))
            sent.append(events.Statement(self.end.decode(encoding), None, None))
            if self.position:
                sent.append(events.Statement(POSITION_PROBE, None, None))
        events.round_trip(self.state.database, self.state.session, sent, start, error)

    def _abandon(self) -> None:
        # results left unread (an interrupt, a lost server): the connection cannot go on
        pgconn = self.conn.pgconn
        if pgconn.status == pq.ConnStatus.OK and pgconn.pipeline_status != pq.PipelineStatus.OFF:
            self.conn.close()


def _lost_statement(error: psycopg.Error) -> PreparedStatementLostError:
    """The error of a statement whose prepared statement (dbmother's) is gone."""
    lost = PreparedStatementLostError(
        f"{error.diag.message_primary}: a statement dbmother prepared on this connection "
        "is gone. Either a pooler in transaction mode (PgBouncer's pool_mode = "
        "transaction) ran this transaction on another server connection: set pooler = "
        "pgbouncer-transaction; or DISCARD ALL or DEALLOCATE ALL ran on the connection "
        "outside dbmother: it is prepared again when it next qualifies")
    lost.__cause__ = error
    return lost


def _check_end(end: bytes | None, status: bytes | None) -> None:
    """A closing command must be answered with its own tag: ``COMMIT`` for ``COMMIT``,
    ``PREPARE TRANSACTION`` for ``PREPARE TRANSACTION '…'``; a transaction that had
    failed is answered ``ROLLBACK`` instead."""
    assert end is not None
    expected = end.split(b" '", 1)[0]
    if status == b"ROLLBACK" and expected != status:
        raise RolledBackError(
            f"the server answered {expected.decode()} with "
            f"{(status or b'nothing').decode()}: a statement of this transaction had "
            "failed (its error was caught), so the whole transaction was rolled back")


def run(conn: psycopg.Connection[Any], statements: Sequence[tuple[str, Any]],
        end: bytes | None = None, probe: bool = False, position: bool = False) -> list[Result]:
    """Send ``statements`` (each SQL text with one set of parameters), then ``end`` (a
    statement without parameters such as ``COMMIT``), in one round trip; one
    :class:`Result` per statement. The first failure is raised once every result
    has arrived, and then nothing after it in its segment ran. With ``probe`` the
    transaction's id is asked before ``end`` (see :class:`~mother.dialects.base.EndLost`);
    with ``position`` the WAL position after it (:data:`POSITION_PROBE`, read with
    :func:`take_position`)."""
    return start(conn, statements, end, probe, position)()


def start(conn: psycopg.Connection[Any], statements: Sequence[tuple[str, Any]],
          end: bytes | None = None, probe: bool = False, position: bool = False
          ) -> Callable[[], list[Result]]:
    """:func:`run`'s sending, now; what it returns reads the results back (call it, once,
    whatever happens: the connection is held until then)."""
    batch = _Batch(conn, statements, end, probe, position)
    if not batch.sends:
        return list
    start = events.now() if events.listeners else None
    held = fence.lock(conn)
    held.__enter__()
    try:
        batch.send()
    except BaseException as error:
        held.__exit__(None, None, None)
        if start is not None:
            batch.report(start, error, None)
        raise

    def receive() -> list[Result]:
        try:
            results = batch.receive()
        except BaseException as error:
            if start is not None:
                batch.report(start, error, None)
            raise
        finally:
            held.__exit__(None, None, None)
        if start is not None:
            batch.report(start, None, results)
        return results

    return receive


def take_position(conn: psycopg.Connection[Any]) -> int | None:
    """The WAL position the last closing command of :func:`run` with ``position`` asked
    (None: not asked, or not known), forgotten once taken."""
    state = _states.get(id(conn))
    if state is None:
        return None
    position, state.position = state.position, None
    return position if position is not None and position >= 0 else None


def run_while(conn: psycopg.Connection[Any], statements: Sequence[tuple[str, Any]],
              meanwhile: Callable[[], T]) -> tuple[list[Result], T]:
    """:func:`run` (no closing command), with ``meanwhile()`` run once the statements
    have gone out and before their results are read: the client's work overlaps the
    server's, in the same round trip (reported as one). ``meanwhile`` must not use the
    connection. When it fails, the results are still read (the connection stays usable)
    and its error is raised."""
    receive = start(conn, statements)
    try:
        done = meanwhile()
    except BaseException:
        with contextlib.suppress(Exception):
            receive()
        raise
    return receive(), done


#: fails (invalid integer) exactly when the transaction has a transaction id, i.e. wrote
_WROTE_CHECK = ("SELECT (CASE WHEN pg_catalog.pg_current_xact_id_if_assigned() IS NULL "
                "THEN '0' ELSE 'wrote' END)::int")


def unwritten(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server gave the transaction no transaction id (it wrote nothing), in
    one round trip; the transaction stays open either way.

    The server says what wrote, whatever the statements looked like (``SELECT f()``
    where ``f`` inserts, a trigger). The check runs inside a savepoint: when it fails,
    rolling back to the savepoint (a second round trip, only then) keeps everything
    the transaction did.
    """
    if conn.pgconn.transaction_status == _IDLE:
        return True  # nothing ran (a queued BEGIN waits for the next statement)
    try:
        run(conn, [("SAVEPOINT mother_wrote", ()), (_WROTE_CHECK, ()),
                   ("RELEASE SAVEPOINT mother_wrote", ())])
    except psycopg.errors.InvalidTextRepresentation:
        run(conn, [("ROLLBACK TO SAVEPOINT mother_wrote", ())])
        return False
    return True


def _result(tx: fence.Adapting, res: pq.abc.PGresult, encoding: str) -> Result:
    if res.status != _TUPLES_OK:
        count = res.command_tuples
        return Result([], count if count is not None else -1, None)
    fname = res.fname
    names = tuple([(fname(index) or b"").decode(encoding) for index in range(res.nfields)])
    return Result(fence.load_dicts(tx, res, names), res.ntuples, names)
