"""Sessions: isolated, named, pooled units of work, always inside a transaction.

A :class:`Session` is a :class:`~mother.executor.Transactional` executor with a
unit of work on top: the identity map, change tracking and the batched flush,
savepoints, and the outcome (commit, rollback, end). A transaction integration
such as :mod:`mother.tm` drives it through the :class:`Managed` handle that
:meth:`Session.manage` gives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from . import events
from .config import as_isolation_level
from .database import Database, resolve, translated
from .dialects import PoolStatus
from .dialects.base import BatchResult, T
from .errors import (
    ArgumentError,
    PrimaryKeyError,
    SessionConflictError,
    TransactionManagedError,
)
from .executor import RowStream, Statement, Transactional
from .records import DbMother, builder_for
from .replicas import WalPosition
from .unitofwork import DELETED, PERSISTENT, UnitOfWork


class Session(Transactional):
    """An isolated, named unit of work on one pooled connection, always inside a transaction.

    ``commit()`` commits and keeps the session; ``rollback()`` undoes;
    ``endSession()`` commits and gives the connection back. With ``pg_conn``
    the caller's connection is used: it is committed at the end, never closed.

    ``readonly`` refuses every write before anything is sent (and the
    database refuses the writes it cannot see: ``READ ONLY`` transactions on
    PostgreSQL, ``PRAGMA query_only`` on SQLite); a read-only session never
    flushes by itself. ``isolation_level`` overrides the database's setting
    for the session's transactions. ``hooks=False`` leaves the database's
    session hooks to the caller, which runs them once it has joined the session
    to a transaction itself (as ``mother.tm.current_session`` does).

    On a database with ``replicas``, a read-only session runs on a healthy replica
    (``session.replica``; None: on the primary, when none is healthy); with ``after`` (a
    :class:`~mother.WalPosition`, another session's ``commit_position``) only on one
    that has replayed that position, waiting up to ``replica_wait`` for one, else on
    the primary. A session that is not read-only runs on the primary, which has every
    position: ``after`` changes nothing for it. See :doc:`/replicas`.

    ``defer_writes`` (default: on when the session autoflushes) lets the immediate
    writes of records (``MO_SAVE``, ``MO_UP``, ``MO_DEL``, ``insert()``…) ride with the
    session's next round trip instead of going alone; ``False`` sends each at once.
    """

    def __init__(self, name: str | None = None, pg_conn: Any = None, *,
                 database: str | Database = "default", autoflush: bool | None = None,
                 readonly: bool = False, isolation_level: str | None = None,
                 hooks: bool = True, defer_writes: bool | None = None,
                 after: WalPosition | None = None) -> None:
        db = resolve(database)
        settings = db.settings
        if after is not None and not isinstance(after, int):
            raise ArgumentError(f"after={after!r}: expected a WalPosition (a session's "
                                "commit_position, or WalPosition.parse('X/Y'))")
        replica = (db.replicas.choose(after) if readonly and pg_conn is None
                   and db.replicas is not None else None)
        # without a name, one is drawn when first needed (see Transactional.name)
        super().__init__(db, name or None, pg_conn, readonly=readonly,
                         isolation_level=None if isolation_level is None else as_isolation_level(
                             "isolation_level", isolation_level),
                         replica=replica)
        wanted = settings.autoflush if autoflush is None else autoflush
        self.autoflush = wanted and not self.readonly  # nothing to flush in a read-only one
        #: immediate writes wait for the next round trip: only where queries flush first
        self.defer_writes = self.autoflush and defer_writes is not False
        self._savepoints = 0
        self._flushing = False
        #: who owns the outcome while the session is managed (see :meth:`manage`)
        self.manager: Any = None
        self.uow: UnitOfWork[DbMother] = UnitOfWork(self)
        events.session_opened(db.name, self)
        if pg_conn is None and self.replica is None and db.schema_check_due():
            self.connection()  # checks the schema before any statement is composed
        if hooks:
            for hook in db.session_hooks:
                hook(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Session {self.name!r} on {self.database.name!r} ({state})>"

    # -- statements: pending changes are flushed first, so queries see them ---------------
    def _autoflushes(self) -> bool:
        """Whether the next statement must be preceded by a flush."""
        # a read-only session never autoflushes: its checks come first, in the executor
        return self.autoflush and not self._flushing and self.uow.has_pending()

    def _autoflush(self) -> None:
        if self._autoflushes():
            self.flush()

    def run(self, sql: str, params: Any, fetch: Callable[[Any], Any]) -> Any:
        if self._autoflushes():
            if params is not None and self.database.dialect.pipelines:
                # the query rides last in the flush's batch: one round trip for both (a
                # query without parameters may hold several statements: it cannot ride)
                self.check_read(sql)
                sent, result = self._send_flush(False, (sql, [params], True))
                if sent:
                    return fetch(result)
            self._autoflush()
        return super().run(sql, params, fetch)

    def run_while(self, sql: str, params: Any, fetch: Callable[[Any], Any],
                  meanwhile: Callable[[], T]) -> tuple[Any, T]:
        if params is not None and self.database.dialect.pipelines and self._autoflushes():
            # as in run(): the statement rides last in the flush's batch (nothing overlaps)
            self.check_read(sql)
            sent, result = self._send_flush(False, (sql, [params], True))
            if sent:
                return fetch(result), meanwhile()
        self._autoflush()
        return super().run_while(sql, params, fetch, meanwhile)

    def run_many(self, sql: str, seq: Sequence[Any], returning: bool) -> list[Any]:
        if seq:
            self._autoflush()
        return super().run_many(sql, seq, returning)

    def run_copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        self._autoflush()
        return super().run_copy(sql, rows)

    def run_stream(self, sql: str, params: Any, size: int) -> RowStream:
        self._autoflush()
        return super().run_stream(sql, params, size)

    # -- unit of work --------------------------------------------------------------------
    @property
    def new(self) -> set[DbMother]:
        """Objects waiting to be inserted."""
        return set(self.uow.new.values())

    @property
    def dirty(self) -> set[DbMother]:
        """Loaded objects with changed columns."""
        return set(self.uow.dirty.values())

    @property
    def deleted(self) -> set[DbMother]:
        """Objects waiting to be deleted."""
        return set(self.uow.deleted.values())

    def __contains__(self, obj: object) -> bool:
        """Whether the session tracks ``obj``: exactly the objects ``iter(session)`` gives."""
        return getattr(obj, "_mo_session", None) is self and self.uow.tracks(obj)

    def __iter__(self) -> Iterator[DbMother]:
        return self.uow.objects()

    def flush(self) -> None:
        """Write every pending insert, update and delete now, in one batch."""
        self._flush(commit=False)

    def _flush(self, commit: bool) -> bool:
        """Flush; with ``commit`` the COMMIT rides in the same batch. True if it committed."""
        sent, _ = self._send_flush(commit, None)
        return sent and commit

    def _send_flush(self, commit: bool, riding: Statement | None, gid: str | None = None
                    ) -> tuple[bool, BatchResult | None]:
        """Flush (see :meth:`_flush`), ``riding`` sent last in the same batch (before its
        COMMIT, or with ``gid`` its ``PREPARE TRANSACTION``): whether anything was
        pending (and so sent), and the riding statement's result."""
        self.check_open()
        if self._flushing or not self.uow.has_pending():
            return False, None
        self.check_writable("to flush its changes (detach() or rollback() them)")
        self._flushing = True
        try:
            result = self.uow.flush(commit, riding, gid)
        finally:
            self._flushing = False
        return True, result

    def persist(self, obj: DbMother) -> DbMother:
        """Queue ``obj`` for insertion at the next flush (or track it if it is already stored)."""
        self.check_open()
        self.check_writable(f"persist() of a {obj.table_name} record")
        self.uow.persist(obj)
        return obj

    add = persist

    def delete(self, obj: DbMother) -> None:
        """Queue the deletion of ``obj`` at the next flush (a pending one is simply dropped)."""
        self.check_open()
        self.check_writable(f"delete() of a {obj.table_name} record")
        self.uow.delete(obj)

    def get(self, cls: Any, pk: Any, lock: str | None = None) -> DbMother | None:
        """The object of the row with primary key ``pk``: no SQL if the session holds it.

        With ``lock`` (``"update"``, ``"update nowait"``, ``"update skip locked"``,
        ``"share"``…, see ``mother.sql.lock_clause``) the row is always read
        again, locked, and the object held for it takes the values read (except its
        unflushed changes).
        """
        builder = builder_for(cls, self.database)
        table = self.database.schema.table(builder.table_name)
        keys = table.primary_key
        if isinstance(pk, Mapping):
            missing = [name for name in keys if name not in pk]
            if missing:
                raise PrimaryKeyError(f"get({table.name}, {pk!r}): the primary key needs "
                                      f"{list(keys)}, missing {missing}")
            values = tuple(pk[name] for name in keys)
        else:
            values = tuple(pk) if isinstance(pk, (tuple, list)) else (pk,)
        if len(values) != len(keys):
            raise PrimaryKeyError(f"get({table.name}, {pk!r}): the primary key is {list(keys)}, "
                                  f"{len(keys)} value(s), got {len(values)}")
        found = self.uow.identity.get(table.name, values)
        if found is not None and lock is None:
            return found if found._mo_state == PERSISTENT else None
        rows = builder.load_rows(self, dict(zip(keys, values)), lock=lock)
        if not rows:
            return None
        if found is not None:
            dirty = found._mo_dirty or ()
            found._mo_store.update({k: v for k, v in rows[0].items() if k not in dirty})
            return found if found._mo_state == PERSISTENT else None
        return builder.from_row(self, rows[0])

    def refresh(self, obj: DbMother) -> DbMother:
        """Read ``obj``'s row again, dropping its unflushed changes."""
        self.check_open()
        if obj._mo_session is not self:
            raise SessionConflictError(f"{obj!r} does not live in session {self.name!r}")
        if id(obj) in self.uow.owed:
            self.flush()  # an immediate write asked for is not an unflushed change
        if obj._mo_state not in (PERSISTENT, DELETED) or obj._mo_key is None:
            raise PrimaryKeyError(f"cannot refresh {obj!r}: it is not stored in the database")
        self.uow.touch(obj)
        obj._mo_dirty = None
        self.uow.sync(obj)
        obj.load(list(obj._mo_table().columns))
        return obj

    def merge(self, obj: DbMother) -> DbMother:
        """Copy a detached (or foreign) object's state into this session's instance."""
        self.check_open()
        key = obj._mo_key or obj._mo_primary_key()
        mine = self.uow.identity.get(obj.table_name, key) if key else None
        if mine is None and key:
            mine = self.get(type(obj), key)
        if mine is None:
            mine = type(obj)(dict(obj._mo_store), session=self)
            return self.persist(mine)
        self.uow.touch(mine)
        changes = {name: value for name, value in obj._mo_store.items()
                   if name not in obj._mo_table().primary_key
                   and mine._mo_store.get(name, _MISSING) != value}
        if changes:
            mine.setFields(changes)
        return mine

    def detach(self, obj: DbMother) -> None:
        """Stop tracking ``obj``; its unflushed changes are not written (its deferred
        immediate writes are: they are sent first)."""
        if getattr(obj, "_mo_session", None) is self:
            if id(obj) in self.uow.owed:
                self.flush()
            self.uow.forget(obj)

    expunge = detach

    @contextlib.contextmanager
    def begin_nested(self) -> Iterator[Session]:
        """Run a block under a SAVEPOINT: an error rolls back its rows and its objects.

        Blocks nest. If the connection itself was lost, the savepoint is gone with the
        transaction: the error propagates and ``rollback()`` restores everything.
        """
        name = self.savepoint()
        try:
            yield self
            self.flush()
        except BaseException:
            if self._lost is None and not self._closed:
                self.rollback_savepoint(name)
            raise
        self.release_savepoint(name)

    def savepoint(self) -> str:
        """Set a SAVEPOINT (pending changes flushed first); returns its name."""
        self.flush()
        self._savepoints += 1
        name = f"mother_sp_{self._savepoints}"
        self.send_savepoint(name)
        self.uow.push()
        return name

    def release_savepoint(self, name: str) -> None:
        """Keep the work done since ``name``; it becomes part of the enclosing level."""
        self.send_release(name)
        self.uow.release()

    def rollback_savepoint(self, name: str) -> None:
        """Roll the database back to ``name`` and restore the objects changed since."""
        self.send_rollback_to(name)
        self.uow.restore()

    # -- outcome -----------------------------------------------------------------------
    def _check_unmanaged(self, what: str) -> None:
        if self.manager is not None:
            raise TransactionManagedError(
                f"session {self.name!r} is joined to a transaction: call transaction.commit() "
                f"or transaction.abort() instead of {what}()")

    def commit(self) -> None:
        """Flush and commit; the session stays usable."""
        self._check_unmanaged("commit")
        with translated(self.database, "commit"):
            self._commit()

    def _commit(self, statement: tuple[str, dict[str, Any]] | None = None) -> None:
        """Flush and COMMIT; ``statement`` rides with the COMMIT (mother.tm's decision).
        Its errors are raised untranslated: the caller translates them, once, where it
        stands (``commit``, or the data manager's phase)."""
        self.check_open()
        self.check_lost()  # never report a lost transaction as committed
        self._as_commit(self._flush_and_commit, _riding(statement))
        self.uow.commit()
        self.wrote = False

    def _flush_and_commit(self, riding: Statement | None) -> None:
        """The flush with its COMMIT (``riding`` before it), or the COMMIT alone."""
        sent, _ = self._send_flush(True, riding)
        if not sent:  # else the COMMIT (and the statement) went out in the flush's batch
            if riding is not None:
                self.batch([riding], commit=True)
            else:
                self.send_commit()

    def _as_commit(self, work: Callable[..., None], *args: Any) -> None:
        """``work(*args)`` as part of a commit: its round trips raise their errors
        untranslated, for the commit's caller to translate once."""
        self._committing = True
        try:
            work(*args)
        finally:
            self._committing = False

    def _start_prepare(self, gid: str, statement: tuple[str, dict[str, Any]] | None
                       ) -> Callable[[], None]:
        """:meth:`_prepare` sent now (nothing may go by COPY); what it returns waits for
        the outcome (call it, once, whatever happens)."""
        self.check_open()
        self.check_lost()
        riding = _riding(statement)
        if not self.uow.has_pending():
            receive = self.start_batch([riding] if riding is not None else [], gid=gid)

            def answered() -> None:
                receive()

            return answered
        self.check_writable("to flush its changes (detach() or rollback() them)")
        self._flushing = True
        try:
            finish = self.uow.start_flush(False, riding, gid)
        finally:
            self._flushing = False

        def prepared() -> None:
            self._flushing = True
            try:
                finish()
            finally:
                self._flushing = False

        return prepared

    def _prepare(self, gid: str, statement: tuple[str, dict[str, Any]] | None) -> None:
        """Flush, ``statement`` and ``PREPARE TRANSACTION gid``, in one round trip where
        nothing goes by COPY; an :class:`~mother.dialects.base.EndLost` when the
        connection broke once the PREPARE may have run."""
        self.check_open()
        self.check_lost()
        riding = _riding(statement)
        sent, _ = self._send_flush(False, riding, gid)
        if not sent:
            self.batch([riding] if riding is not None else [], gid=gid)

    def mark_written(self) -> None:
        """Declare that the current transaction wrote (the vote then never takes it for a
        read); dbmother also asks the server, so this is rarely needed."""
        self.check_open()
        self.wrote = True

    def rollback(self) -> None:
        """Roll back the transaction and restore the objects it changed."""
        self._check_unmanaged("rollback")
        self._rollback()

    def _rollback(self) -> None:
        self.send_rollback()
        self.uow.rollback_all()

    def endSession(self) -> None:
        """Commit and give the connection back; the session cannot be used afterwards."""
        self._check_unmanaged("endSession")
        try:
            with translated(self.database, "commit"):
                self._commit()
        except BaseException:
            self._close(rollback=True)
            raise
        self._close()

    def close(self) -> None:
        """Roll back whatever is not committed and end the session."""
        self._check_unmanaged("close")
        self._close(rollback=True)

    def _close(self, rollback: bool = False, outcome: str | None = None) -> None:
        if self._closed:
            return
        if rollback:
            self.uow.rollback_all()
        self.release(rollback, outcome)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        if self._closed or self.manager is not None:
            return
        if kind is None:
            self.endSession()
        else:
            self._close(rollback=True)

    # Mother's names for the transaction of a session: it always has one.
    def beginTrans(self) -> None:
        """A session is always in a transaction: nothing to do."""
        self.check_open()

    # -- management by a transaction ----------------------------------------------------
    def manage(self, manager: Any) -> Managed:
        """Hand the outcome of this session to ``manager`` (a transaction integration's
        data manager): from now on ``commit()``, ``rollback()``, ``endSession()`` and
        ``close()`` raise :class:`~mother.errors.TransactionManagedError`, and the
        manager drives the session through the returned handle."""
        self.check_open()
        if self.manager is not None and self.manager is not manager:
            raise TransactionManagedError(f"session {self.name!r} is managed by {self.manager!r}")
        self.manager = manager
        return Managed(self)


def _riding(statement: tuple[str, dict[str, Any]] | None) -> Statement | None:
    """A statement with its one parameter set, as a batch sends it."""
    return None if statement is None else (statement[0], [statement[1]], False)


class Managed:
    """What a transaction integration (``mother.tm``) may do with a session it manages:
    the handle :meth:`mother.Session.manage` gives. Every step of a two-phase commit is here;
    the integration touches nothing else of the session."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def name(self) -> str:
        return self.session.name

    @property
    def closed(self) -> bool:
        return self.session.closed

    @property
    def readonly(self) -> bool:
        """Whether the session refuses writes (it then never prepares)."""
        return self.session.readonly

    @property
    def wrote(self) -> bool:
        """Whether the transaction may have written (sent a write, or has changes pending)."""
        return self.session.wrote or self.session.uow.has_pending()

    def flush(self) -> None:
        """Write every pending change (the transaction stays open), for a commit phase:
        its errors are raised untranslated, for the phase to translate."""
        self.session._as_commit(self.session.flush)

    def commit(self, statement: tuple[str, dict[str, Any]] | None = None) -> None:
        """Flush and COMMIT in one round trip; ``statement`` rides with the COMMIT."""
        self.session._commit(statement)

    def only_read(self) -> bool:
        """Whether nothing is pending and the server says the transaction wrote nothing
        (if it wrote, it now counts as written); the transaction stays open."""
        return not self.session.uow.has_pending() and self.session.wrote_nothing()

    def prepare(self, gid: str, statement: tuple[str, dict[str, Any]] | None = None) -> None:
        """Write the pending changes and ``PREPARE TRANSACTION gid`` in one round trip,
        ``statement`` riding before the PREPARE: raises the dialect's ``EndLost`` when
        the PREPARE may have run."""
        self.session._prepare(gid, statement)

    def start_prepare(self, gid: str, statement: tuple[str, dict[str, Any]] | None = None
                      ) -> Callable[[], None]:
        """:meth:`prepare`, sent now, for a session whose transaction ran on its
        connection already (:attr:`connected`): what it returns waits for the outcome
        (call it, once, whatever happens), so that several servers prepare at once."""
        return self.session._start_prepare(gid, statement)

    @property
    def connected(self) -> bool:
        """Whether the transaction already ran on its connection."""
        return self.session.connected

    def finish_prepared(self, gid: str, commit: bool, anew: bool = False) -> bool:
        """COMMIT (or ROLLBACK) PREPARED ``gid`` (with ``anew`` on a new connection, as after
        a failed try); False if it was not prepared any more."""
        return self.session.finish_prepared(gid, commit, anew)

    def failed(self, error: BaseException) -> None:
        """A round trip sent for the session outside it (its PREPARE) failed: see whether
        its connection is gone."""
        self.session.guard(error)

    def savepoint(self) -> tuple[str, int]:
        """A SAVEPOINT that does not count as a write: ``(name, depth)`` for
        :meth:`rollback_to`."""
        session = self.session
        depth, wrote = len(session.uow.frames), session.wrote
        name = session.savepoint()
        session.wrote = wrote  # a savepoint alone writes nothing
        return name, depth

    def rollback_to(self, savepoint: tuple[str, int]) -> None:
        """ROLLBACK TO SAVEPOINT; objects changed since go back too, including in savepoints
        taken after it. The savepoint stays valid."""
        name, depth = savepoint
        uow = self.session.uow
        while len(uow.frames) > depth + 1:
            uow.restore()  # savepoints taken after this one
        self.session.rollback_savepoint(name)
        uow.push()

    def end(self, rollback: bool, outcome: str | None = None) -> None:
        """End the session (rolled back first with ``rollback``; ``outcome``: how its
        transaction ended, for the events) and stop managing it."""
        session = self.session
        session.manager = None
        session._close(rollback, outcome)

_MISSING = object()


def MotherSession(name: str | None = None, pg_conn: Any = None, *,
                  database: str | Database = "default", autoflush: bool | None = None,
                  readonly: bool = False, isolation_level: str | None = None,
                  defer_writes: bool | None = None, after: WalPosition | None = None
                  ) -> Session:
    """Open a session (Mother's name): ``MotherSession()``, work, then ``endSession()``.

    ``readonly=True`` refuses writes (and runs on a replica, if the database has some;
    with ``after``, one that has replayed that position); ``isolation_level`` is the
    session's own; ``defer_writes=False`` sends every immediate write at once (see
    :class:`Session`)."""
    return Session(name, pg_conn, database=database, autoflush=autoflush, readonly=readonly,
                   isolation_level=isolation_level, defer_writes=defer_writes, after=after)


def MotherPoolStatus(database: str = "default") -> PoolStatus:
    """The pool's numbers: type, size, idle, in use, waiting, min, max."""
    return resolve(database).status()


def MotherPoolStratus(database: str = "default") -> str:
    """The pool's numbers as readable text."""
    status = resolve(database).status()
    rows = [("Pool Type", status.pool_type), ("Connections Established", status.size),
            ("Connections Available", status.available), ("Connections Employed", status.in_use),
            ("Requests Waiting", status.waiting), ("Minimum Connections", status.minimum),
            ("Maximum Connections", "unlimited" if status.maximum is None else status.maximum)]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"    {label.ljust(width)} ~ {value}" for label, value in rows)
