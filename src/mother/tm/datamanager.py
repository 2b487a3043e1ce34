"""The data manager that joins a session to a transaction of the ``transaction`` package.

One :class:`MotherDataManager` per session per transaction. Its life::

    join ─► ACTIVE ─tpc_begin (flush)─► tpc_vote ─► VOTED | PREPARED | COMMITTED ─tpc_finish─► DONE
                  └──── abort / tpc_abort (ROLLBACK [PREPARED]) ─────────────────────────────► DONE

What each session does in the vote is planned once per transaction, when the
first dbmother data manager votes (every ``tpc_begin`` has flushed by then, so
it is known which sessions wrote): see :meth:`TransactionState.plan`.
"""

from __future__ import annotations

import logging
import time
import uuid
import weakref
from typing import Any

import transaction
from transaction.interfaces import (
    IDataManagerSavepoint,
    IRetryDataManager,
    ISavepointDataManager,
    NoTransaction,
)
from zope.interface import implementer

from ..database import Database
from ..errors import MotherError, SessionClosedError, TransactionManagedError
from ..session import Session

log = logging.getLogger(__name__)

#: every global transaction id made by dbmother starts with this
GID_PREFIX = "mother"
#: the table where the deciding branch records the commit decision
COMMIT_LOG = "mother_commit_log"
MAX_GID = 200  # PostgreSQL's limit for PREPARE TRANSACTION

# phases of a data manager
ACTIVE, VOTED, PREPARED, COMMITTED, DONE = "active", "voted", "prepared", "committed", "done"
# what a session does in the vote
READ_ONLY, ONE_PHASE, PREPARE = "read-only", "one-phase", "prepare"


class NoActiveTransactionError(MotherError):
    """An explicit transaction manager has no transaction: call ``manager.begin()`` first."""


def active_transaction(manager: Any) -> Any:
    """The manager's current transaction; an explicit manager outside one raises."""
    try:
        return manager.get()
    except NoTransaction:
        raise NoActiveTransactionError(
            "the transaction manager has no active transaction (it is explicit: "
            "call begin() first)") from None


def in_transaction(manager: Any) -> bool:
    """Whether sessions should join ``manager`` now (an implicit manager always has one)."""
    if not getattr(manager, "explicit", False):
        return True
    try:
        manager.get()
    except NoTransaction:
        return False
    return True


def make_gid(global_id: str, database: str, session: str) -> str:
    """A branch id: ``mother:<global id>:<database>:<session>`` (at most 200 characters)."""
    return f"{GID_PREFIX}:{global_id}:{database}:{session}"[:MAX_GID]


def parse_gid(gid: str) -> str | None:
    """The global id inside a dbmother branch id, or None for a foreign one."""
    parts = gid.split(":", 2)
    if len(parts) == 3 and parts[0] == GID_PREFIX and len(parts[1]) == 32:
        return parts[1]
    return None


def joined_resources(txn: Any) -> list[Any] | None:
    """Every resource joined to ``txn`` (the package keeps them private; None if unknown)."""
    return getattr(txn, "_resources", None)


class _Key:
    """The key of dbmother's data on a transaction (``Transaction.data``)."""


_KEY = _Key()
# databases where the commit log is known to exist (a cache: saves a round trip per commit)
_logs_known: weakref.WeakSet[Database] = weakref.WeakSet()


class TransactionState:
    """What the dbmother data managers of one transaction share."""

    def __init__(self) -> None:
        self.global_id = uuid.uuid4().hex
        self.managers: list[MotherDataManager] = []
        #: the session of each database scoped to this transaction (``current_session``)
        self.sessions: dict[str, Session] = {}
        self.modes: dict[int, str] | None = None
        self.decider: MotherDataManager | None = None
        #: whether the preparing branches have been sent their PREPARE (all at once)
        self.prepared = False

    @classmethod
    def of(cls, txn: Any) -> TransactionState:
        try:
            return txn.data(_KEY)
        except KeyError:
            state = cls()
            txn.set_data(_KEY, state)
            return state

    def mode(self, dm: MotherDataManager, txn: Any) -> str:
        if self.modes is None:
            self.plan(txn)
        assert self.modes is not None
        return self.modes.get(id(dm), READ_ONLY)

    def plan(self, txn: Any) -> None:
        """Decide, once, what every session of the transaction does in its vote.

        * a session that did not write: nothing (READ_ONLY, committed at the end);
        * the only writer among the transaction's resources: ONE_PHASE (commit in the vote);
        * otherwise a session that can prepare: PREPARE; one that cannot: ONE_PHASE, last.

        The decider records the global id in its database's commit log, inside its
        own transaction: the last-committing one-phase writer if there is one and
        something prepares, else the first preparing branch when two or more prepare.
        """
        live = [dm for dm in self.managers if dm.phase == ACTIVE]
        writers = sorted((dm for dm in live if dm.session.wrote), key=lambda dm: dm.sortKey())
        resources = joined_resources(txn)
        foreign = resources is None or any(
            not isinstance(resource, MotherDataManager) for resource in resources)
        self.modes = {id(dm): READ_ONLY for dm in live}
        if len(writers) == 1 and not foreign:
            self.modes[id(writers[0])] = ONE_PHASE
            return
        preparing = [dm for dm in writers if dm.twophase]
        last = [dm for dm in writers if not dm.twophase]
        for dm in preparing:
            self.modes[id(dm)] = PREPARE
        for dm in last:
            self.modes[id(dm)] = ONE_PHASE
        if len(last) > 1:
            log.warning("transaction %s: %d sessions cannot prepare (%s); they commit one after "
                        "the other, so atomicity between them is not guaranteed",
                        self.global_id, len(last), ", ".join(dm.session.name for dm in last))
        if last and preparing:
            self.decider = last[0]
        elif len(preparing) >= 2:
            self.decider = preparing[0]

    def prepare_all(self) -> None:
        """PREPARE every preparing branch at once; the first preparing vote does it.

        Nothing commits before every vote is in, so the branches need not wait for
        each other: each PREPARE goes out before any is awaited and the servers work
        in parallel. Each branch's own vote then reports its outcome.
        """
        if self.prepared:
            return
        self.prepared = True
        assert self.modes is not None
        groups: dict[type, list[MotherDataManager]] = {}
        for dm in self.managers:
            if dm.phase == ACTIVE and self.modes.get(id(dm)) == PREPARE:
                # prepare() uses no state of the dialect object: one call per kind
                groups.setdefault(type(dm.database.dialect), []).append(dm)
        for dms in groups.values():
            jobs, ready = [], []
            for dm in dms:
                try:
                    jobs.append(dm.prepare_job())
                    ready.append(dm)
                except Exception as error:
                    dm.vote_error = error
            outcomes = ready[0].database.dialect.prepare(jobs) if ready else []
            for dm, outcome in zip(ready, outcomes):
                if outcome is None:
                    dm.phase = PREPARED
                else:
                    dm.vote_error = outcome


@implementer(ISavepointDataManager, IRetryDataManager)
class MotherDataManager:
    """Drives one session through the transaction's two-phase commit."""

    def __init__(self, session: Session, transaction_manager: Any, txn: Any) -> None:
        self.session = session
        self.transaction_manager = transaction_manager
        self.transaction = txn
        self.database = session.database
        self.twophase = self.database.twophase
        self.state = TransactionState.of(txn)
        self.phase = ACTIVE
        #: what the vote did: READ_ONLY, ONE_PHASE or PREPARE (None before the vote)
        self.mode: str | None = None
        #: why this branch's PREPARE failed, when another branch's vote sent it
        self.vote_error: Exception | None = None
        self.gid = make_gid(self.state.global_id, self.database.name, session.name)

    def __repr__(self) -> str:
        return f"<MotherDataManager {self.session.name!r} on {self.database.name!r} ({self.phase})>"

    def sortKey(self) -> str:
        """Stable order by database and session; sessions that cannot prepare sort last."""
        prefix = GID_PREFIX if self.twophase else "~" + GID_PREFIX
        return f"{prefix}:{self.database.name}:{self.session.name}"

    # -- abort --------------------------------------------------------------------------
    def abort(self, txn: Any) -> None:
        """Roll back (before the vote) and end the session."""
        if self.phase != DONE:
            self._end(rollback=True)

    def tpc_abort(self, txn: Any) -> None:
        """Roll back whatever the vote did (ROLLBACK PREPARED) and end the session; never raises."""
        if self.phase == DONE:
            return
        try:
            if self.phase == PREPARED:
                self.database.dialect.finish_prepared(self.session._conn, self.gid, False)
        except Exception:
            log.error("could not roll back prepared branch %s: it stays in doubt until "
                      "`mother recover` rolls it back", self.gid, exc_info=True)
        finally:
            self._end(rollback=True)

    def _end(self, rollback: bool) -> None:
        self.phase = DONE
        session = self.session
        session.manager = None
        try:
            session._close(rollback=rollback)
        except Exception:
            log.error("could not end session %s cleanly", session.name, exc_info=True)

    # -- commit ---------------------------------------------------------------------------
    def tpc_begin(self, txn: Any) -> None:
        """Write every pending change of the session.

        The transaction's only resource commits right here instead, in one phase:
        its COMMIT rides in the same round trip as the flush.
        """
        session = self.session
        if session.closed:
            raise SessionClosedError(f"session {session.name!r} ended inside its transaction")
        if joined_resources(txn) == [self]:
            self.mode = ONE_PHASE if session.wrote or session.uow.has_pending() else READ_ONLY
            session._commit()
            self.phase = COMMITTED
        else:
            session.flush()

    def commit(self, txn: Any) -> None:
        """Nothing to do: the work was flushed in ``tpc_begin``."""

    def tpc_vote(self, txn: Any) -> None:
        """PREPARE TRANSACTION (every preparing branch at once, see
        :meth:`TransactionState.prepare_all`), or commit now (sole writer, or a
        database that cannot prepare)."""
        if self.phase == COMMITTED:
            return  # the only resource: committed in tpc_begin
        mode = self.mode = self.state.mode(self, txn)
        if mode == READ_ONLY:
            self.phase = VOTED
            return
        if mode == ONE_PHASE:
            if self.state.decider is self:
                self.session.oc_query(*self._decision())
            self.session._commit()
            self.phase = COMMITTED
            return
        self.state.prepare_all()
        if self.vote_error is not None:
            error, self.vote_error = self.vote_error, None
            raise error

    def prepare_job(self) -> tuple[Any, str, list[tuple[str, Any]]]:
        """What this branch's PREPARE sends: ``(connection, gid, statements before it)``;
        the decider's commit decision rides in the same round trip."""
        session = self.session
        statements = [self._decision()] if self.state.decider is self else []
        for sql, params in statements:
            session._log(sql, params)
        session._log(f"PREPARE TRANSACTION '{self.gid}'", None)
        return session.connection(), self.gid, statements

    def tpc_finish(self, txn: Any) -> None:
        """COMMIT PREPARED and end the session; never raises (a failure is left to recovery)."""
        if self.phase == DONE:
            return
        try:
            if self.phase == PREPARED:
                self.database.dialect.finish_prepared(self.session._conn, self.gid, True)
            elif self.phase == VOTED:
                self.session._commit()
            if self.state.decider is self:
                _logs_known.add(self.database)
        except Exception:
            log.critical("could not commit branch %s of a committed transaction: run "
                         "`mother recover` to commit it", self.gid, exc_info=True)
        finally:
            self._end(rollback=False)

    def _decision(self) -> tuple[str, dict[str, Any]]:
        """The statement writing the global id to the commit log, inside this branch's
        own transaction (the log is made on first use)."""
        session, dialect = self.session, self.database.dialect
        table = dialect.quote(COMMIT_LOG)
        if self.database not in _logs_known:
            session.oc_query(f"CREATE TABLE IF NOT EXISTS {table} ("
                             "global_id VARCHAR(64) PRIMARY KEY, decided_at DOUBLE PRECISION)")
        return (f"INSERT INTO {table} (global_id, decided_at) VALUES "
                f"({dialect.placeholder('gid')}, {dialect.placeholder('at')})",
                {"gid": self.state.global_id, "at": time.time()})

    # -- savepoints and retries -------------------------------------------------------------
    def savepoint(self) -> _Savepoint:
        """A SAVEPOINT in the database plus a snapshot of the unit of work."""
        return _Savepoint(self)

    def should_retry(self, exception: BaseException) -> bool:
        """Stale records, serialization failures, deadlocks, SQLite's "database is locked"."""
        from ..errors import StaleRecordError  # kept local: this method is all that changed

        return isinstance(exception, StaleRecordError) or \
            self.database.dialect.is_transient(exception)


@implementer(IDataManagerSavepoint)
class _Savepoint:
    def __init__(self, dm: MotherDataManager) -> None:
        session = dm.session
        if dm.phase != ACTIVE or session.closed:
            raise SessionClosedError(f"session {session.name!r} is no longer in the transaction")
        self.dm = dm
        self.depth = len(session.uow.frames)
        wrote = session.wrote
        self.name = session.savepoint()
        session.wrote = wrote  # a savepoint alone writes nothing

    def rollback(self) -> None:
        """ROLLBACK TO SAVEPOINT; objects changed since go back too. The savepoint stays valid."""
        session = self.dm.session
        if self.dm.phase != ACTIVE or session.closed:
            raise SessionClosedError(f"session {session.name!r} is no longer in the transaction")
        uow = session.uow
        while len(uow.frames) > self.depth + 1:
            uow.restore()  # savepoints taken after this one
        session.rollback_savepoint(self.name)
        uow.push()


def join(session: Session, transaction_manager: Any = None) -> MotherDataManager:
    """Join ``session`` to the manager's current transaction (default ``transaction.manager``).

    Joining twice is harmless. A session joined to another, unfinished
    transaction raises :class:`~mother.errors.TransactionManagedError`.
    """
    manager = transaction_manager if transaction_manager is not None else transaction.manager
    txn = active_transaction(manager)
    current = session.manager
    if isinstance(current, MotherDataManager) and current.phase != DONE:
        if current.transaction is txn:
            return current
        raise TransactionManagedError(
            f"session {session.name!r} is already joined to another transaction")
    if current is not None:
        raise TransactionManagedError(f"session {session.name!r} is managed by {current!r}")
    if session.closed:
        raise SessionClosedError(f"session {session.name!r} has ended")
    dm = MotherDataManager(session, manager, txn)
    txn.join(dm)
    dm.state.managers.append(dm)
    session.manager = dm
    return dm
