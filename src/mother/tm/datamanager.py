"""The data manager that joins a session to a transaction of the ``transaction`` package.

One :class:`MotherDataManager` per session per transaction, and one
:class:`Decision` resource per transaction, which sorts after every other
resource. The rule they keep: ``transaction.commit()`` returns only if the
transaction committed everywhere or is certain to once recovery runs;
otherwise it raises, and what did not commit is rolled back.

A branch's phases (each move is one row of ``MOVES``)::

    phase      event                                   does                            next
    ACTIVE     tpc_begin, sole resource                flush + COMMIT (one round trip)  COMMITTED
    ACTIVE     tpc_begin, the server says it only read (nothing yet: it ends last)      READ
    ACTIVE     tpc_begin, can prepare                  (its flush is owed to the vote)  READY
    ACTIVE     tpc_begin, cannot prepare               flush                            READY
    READY      tpc_vote, one of several writers        flush + PREPARE TRANSACTION      PREPARED
    READY      tpc_vote, PREPARE reply lost            (maybe prepared)                 IN_DOUBT
    READY      decision vote, sole writer / no 2PC     flush + COMMIT                   COMMITTED
    PREPARED   decision vote, the decider              COMMIT PREPARED                  COMMITTED
    PREPARED   tpc_finish                              COMMIT PREPARED                  DONE
    READ       tpc_finish                              COMMIT (logged if it fails)      DONE
    COMMITTED  tpc_finish                              (session ends)                   DONE
    ACTIVE, READY, READ      abort / tpc_abort         ROLLBACK                         DONE
    PREPARED, IN_DOUBT       abort / tpc_abort         ROLLBACK PREPARED, or COMMIT     DONE
                                                       PREPARED once decided, or left
                                                       to recovery if unknown
    COMMITTED  abort / tpc_abort                       logs CRITICAL if it wrote        DONE

A branch that can prepare writes its pending changes in the round trip that ends
its transaction (the PREPARE's, or the COMMIT's): a failing write then fails the
vote, before anything commits. A branch that cannot prepare (it commits one-phase,
after the others' votes) writes in ``tpc_begin``, so that its failures, too, come
before anything commits. A branch that only read commits after the decision, in
``tpc_finish``: what a reading transaction does at its COMMIT (deliver its
``NOTIFY``, free its advisory locks) then happens only if the transaction commits.

The decision: when branches prepare, the *decider* records the global id in
its database's commit log inside its own transaction (the row rides with its
PREPARE, or with its COMMIT when it cannot prepare), and the :class:`Decision`
resource, voting after everything else, commits the decider. The decision is
durable before any resource finishes. See the "Transactions" chapter.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import transaction
from transaction.interfaces import (
    IDataManagerSavepoint,
    IRetryDataManager,
    ISavepointDataManager,
    NoTransaction,
)
from zope.interface import implementer

from .. import events
from ..database import translated, translating
from ..dialects.base import EndLost
from ..errors import (
    CommitOutcomeUnknownError,
    MotherError,
    RolledBackError,
    SessionClosedError,
    TransactionManagedError,
)
from ..session import Session
from . import autorecovery, commitlog
from .gid import GID_PREFIX, make_gid

log = logging.getLogger(__name__)

# phases of a branch
ACTIVE, READY, READ, PREPARED, IN_DOUBT, COMMITTED, DONE = (
    "active", "ready", "read", "prepared", "in doubt", "committed", "done")
#: every move a branch can make: (phase, next phase)
MOVES = frozenset({
    (ACTIVE, COMMITTED), (ACTIVE, READY), (ACTIVE, READ), (READY, PREPARED),
    (READY, IN_DOUBT), (READY, COMMITTED), (PREPARED, COMMITTED), (READ, COMMITTED),
    *((phase, DONE) for phase in (ACTIVE, READY, READ, PREPARED, IN_DOUBT, COMMITTED)),
})
# what a session does in the vote
READ_ONLY, ONE_PHASE, PREPARE = "read-only", "one-phase", "prepare"
# the transaction's decision
DECIDED, UNDECIDED, UNKNOWN, ABORTED = "committed", "undecided", "unknown", "aborted"
#: what each vote mode is called in the session's ``vote`` event (:mod:`mother.events`)
VOTES = {READ_ONLY: "read-only", ONE_PHASE: "one-phase", PREPARE: "two-phase"}


class _Last(str):
    """A sort key after every string: no string is above all others (``"\U0010ffff"``
    comes before ``"\U0010ffff~"``), so ``<`` says so instead. Python asks a subclass's
    reflected comparison first, so ``key < last`` is true and ``last < key`` false for
    any other string ``key``, whichever side the sort puts it."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return not isinstance(other, _Last)


#: the sort key of the Decision resource: after every other resource's key
DECISION_KEY: str = _Last("\U0010ffff" + GID_PREFIX + ":decision")


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


def joined_resources(txn: Any) -> list[Any] | None:
    """Every resource joined to ``txn`` (the package keeps them private; None if unknown)."""
    return getattr(txn, "_resources", None)


class _Key:
    """The key of dbmother's data on a transaction (``Transaction.data``)."""


_KEY = _Key()


class TransactionState:
    """What the dbmother data managers of one transaction share."""

    def __init__(self, txn: Any, manager: Any) -> None:
        self._global_id: str | None = None
        self.managers: list[MotherDataManager] = []
        #: the session of each database scoped to this transaction (``current_session``)
        self.sessions: dict[str, Session] = {}
        #: the branches that write, in sort order, once planned (None before the votes)
        self.writers: list[MotherDataManager] | None = None
        self.decider: MotherDataManager | None = None
        self.decision = UNDECIDED
        #: whether the preparing branches have been sent their PREPARE (all at once)
        self.prepared = False
        # the resource that votes last (let go of once the transaction is over)
        self.resource: Decision | None = Decision(self, manager)
        txn.join(self.resource)

    @property
    def global_id(self) -> str:
        """The transaction's id, in its branches' gids and its commit log row (made on first
        use: a transaction that prepares nothing never needs one)."""
        if self._global_id is None:
            self._global_id = uuid.uuid4().hex
        return self._global_id

    @classmethod
    def of(cls, txn: Any, manager: Any = None) -> TransactionState:
        try:
            found: TransactionState = txn.data(_KEY)
            return found
        except KeyError:
            state = cls(txn, manager or transaction.manager)
            txn.set_data(_KEY, state)
            return state

    def ended(self) -> None:
        """A branch has ended: once every branch has, let go of the data managers and the
        Decision (which refer to this state), so that they, their sessions and this
        state are freed as soon as the transaction lets go of them, without waiting for
        a cyclic garbage collection. Nothing reads them any more: every vote is over."""
        if all(dm.phase == DONE for dm in self.managers):
            self.managers = []
            self.writers = []
            self.decider = None
            self.resource = None

    def alone(self, dm: MotherDataManager, txn: Any) -> bool:
        """Whether ``dm`` is the transaction's only resource (besides the Decision)."""
        resources = joined_resources(txn)
        return resources is not None and all(r is dm or r is self.resource for r in resources)

    def plan(self) -> None:
        """Decide, once, at the first vote (every ``tpc_begin`` has run, so it is known
        which sessions wrote), what each writing branch does:

        * the only writer: ONE_PHASE, committed by the Decision resource, last;
        * otherwise PREPARE where the database can, else ONE_PHASE (committed last, in
          sort order). The decider is the last ONE_PHASE writer if any, else the first
          preparing one; it records the decision inside its own transaction.
        """
        if self.writers is not None:
            return
        self.writers = writers = sorted((dm for dm in self.managers if dm.phase == READY),
                                        key=lambda dm: dm.sortKey())
        if len(writers) == 1:
            writers[0].mode = ONE_PHASE
            return
        preparing = [dm for dm in writers if dm.twophase]
        last = [dm for dm in writers if not dm.twophase]
        for dm in writers:
            dm.mode = PREPARE if dm.twophase else ONE_PHASE
        if len(last) > 1:
            log.warning("transaction %s: %d sessions cannot prepare (%s); they commit one after "
                        "the other, so atomicity between them is not guaranteed",
                        self.global_id, len(last), ", ".join(dm.session.name for dm in last))
        if not preparing:
            return  # nothing prepared: nothing for recovery to decide
        self.decider = last[-1] if last else preparing[0]
        decider_id = commitlog.database_id(self.decider.database, self.decider.session)
        others = [dm for dm in preparing if dm is not self.decider]
        if self.decider.twophase:
            self.decider.gid = make_gid(self.global_id, decider_id, 0)
        for number, dm in enumerate(others, 1):
            dm.gid = make_gid(self.global_id, decider_id, number)

    def prepare_all(self) -> None:
        """PREPARE every preparing branch; the first preparing vote does it.

        Nothing commits before every vote is in, so the branches need not wait for
        each other: each branch sends its pending writes (if any) and its PREPARE in
        one round trip, and every such round trip goes out before any is awaited, so
        the servers work in parallel (a session whose transaction has not run on its
        connection yet goes in turn: a pooled connection that died unused is then
        replaced). After a failure, no branch is sent anything more (each rolls back in
        ``tpc_abort``). Each branch's own vote then reports its outcome.
        """
        if self.prepared:
            return
        self.prepared = True
        preparing = [dm for dm in self.writers or () if dm.mode == PREPARE and dm.phase == READY]
        started: list[tuple[MotherDataManager, Callable[[], None]]] = []
        failed = None
        try:
            for dm in preparing:
                assert dm.gid is not None
                try:
                    if dm.handle.connected:
                        started.append((dm, dm.handle.start_prepare(dm.gid, dm._decision())))
                        continue
                    dm.handle.prepare(dm.gid, dm._decision())
                    dm.move(PREPARED)
                except Exception as error:
                    dm.refused(error)
                    failed = dm
                    break
        finally:
            failed = self._finish_prepares(started) or failed
        if failed is not None:
            for dm in preparing:
                if dm.phase == READY and dm.vote_error is None:
                    dm.vote_error = RolledBackError(
                        f"transaction {self.global_id}: not prepared, because the vote "
                        f"of session {failed.handle.name!r} failed")

    @staticmethod
    def _finish_prepares(started: list[tuple[MotherDataManager, Callable[[], None]]]
                         ) -> MotherDataManager | None:
        """Read the outcome of every PREPARE sent (each holds its connection until then,
        so all are read, even after an interrupt); the first branch that failed."""
        failed, interrupted = None, None
        for dm, finish in started:
            try:
                finish()
                dm.move(PREPARED)
            except Exception as error:
                dm.refused(error)
                failed = failed or dm
            except BaseException as error:
                dm.move(IN_DOUBT)  # its PREPARE may have run: tpc_abort looks for it
                interrupted = interrupted or error
        if interrupted is not None:
            raise interrupted
        return failed

    def decide(self) -> None:
        """The Decision resource's vote, after every other vote: commit the one-phase
        writers (the decider last, with the decision in its transaction), or the
        preparing decider. From here on the transaction is decided."""
        for dm in self.writers or ():
            if dm.mode == ONE_PHASE and dm.phase == READY:
                # translated as a vote (this is the Decision's), as tpc_vote's would be
                with translated(dm.database, "tpc_vote"):
                    try:
                        if dm is self.decider:
                            dm.handle.commit(commitlog.decision(dm.database, self.global_id))
                        else:
                            dm.handle.commit()
                    except CommitOutcomeUnknownError:
                        if dm is self.decider:
                            # it may have committed: the prepared branches wait for recovery,
                            # which reads the decision (or fences it) in the decider's log
                            self.decision = UNKNOWN
                        raise
                dm.move(COMMITTED)
                if dm is self.decider:
                    self.decision = DECIDED
        decider = self.decider
        if decider is None or decider.phase != PREPARED:
            return
        try:
            done = decider.finish(commit=True)
        except Exception as error:
            done = self._settle_decider(error)
        if not done:
            self.decision = ABORTED
            raise RolledBackError(
                f"transaction {self.global_id} was rolled back by recovery before its "
                f"decider ({decider.gid} in {decider.database.name!r}) could commit")
        self.decision = DECIDED
        decider.move(COMMITTED)

    def _settle_decider(self, error: Exception) -> bool:
        """The decider's COMMIT PREPARED failed: find out, on a new connection, whether it
        committed (retry it if it is still prepared); raise if nobody can tell."""
        decider = self.decider
        assert decider is not None and decider.gid is not None
        decider.handle.failed(error)
        db = decider.database
        log.warning("transaction %s: COMMIT PREPARED of the decider %s failed (%s); asking "
                    "the server again", self.global_id, decider.gid, error)
        try:
            if decider.handle.finish_prepared(decider.gid, True, anew=True):
                return True
            conn = db.dialect.connect()
            try:
                outcome = commitlog.read(db, conn, [self.global_id]).get(self.global_id)
            finally:
                conn.close()
        except Exception as again:
            self.decision = UNKNOWN
            raise CommitOutcomeUnknownError(
                f"transaction {self.global_id}: the decider {decider.gid} in "
                f"{db.name!r} could not be committed nor asked ({again}); its prepared "
                "branches are left to `mother recover`", decider.session.name) from error
        return outcome == commitlog.COMMIT


@implementer(ISavepointDataManager)
class Decision:
    """The resource that makes a transaction's decision durable: it votes last (its sort
    key is above every other), after every other resource has voted."""

    def __init__(self, state: TransactionState, manager: Any) -> None:
        self.state = state
        self.transaction_manager = manager

    def __repr__(self) -> str:
        return f"<mother Decision {self.state.global_id} ({self.state.decision})>"

    def sortKey(self) -> str:
        return DECISION_KEY

    @events.phase("decision")
    def tpc_vote(self, txn: Any) -> None:
        """Commit the one-phase writers and the decider: see :meth:`TransactionState.decide`."""
        self.state.decide()

    def abort(self, txn: Any) -> None:
        """Nothing of its own to undo: the branches undo theirs."""

    tpc_begin = commit = tpc_finish = tpc_abort = abort

    def savepoint(self) -> _NoSavepoint:
        return _NoSavepoint()


@implementer(IDataManagerSavepoint)
class _NoSavepoint:
    def rollback(self) -> None:
        """The Decision resource holds no state to roll back."""


@implementer(ISavepointDataManager, IRetryDataManager)
class MotherDataManager:
    """Drives one session through the transaction's two-phase commit."""

    def __init__(self, session: Session, transaction_manager: Any, txn: Any) -> None:
        self.session = session
        #: how the data manager drives the session (it touches nothing else of it)
        self.handle = session.manage(self)
        self.transaction_manager = transaction_manager
        self.transaction = txn
        self.database = session.database
        self.twophase = self.database.twophase
        self.state = TransactionState.of(txn, transaction_manager)
        self.number = len(self.state.managers)
        self.phase = ACTIVE
        #: what the vote did: READ_ONLY, ONE_PHASE or PREPARE (None before the vote)
        self.mode: str | None = None
        #: why this branch's PREPARE failed, when another branch's vote sent it
        self.vote_error: BaseException | None = None
        #: the branch id, given when the transaction's votes are planned
        self.gid: str | None = None

    def __repr__(self) -> str:
        return f"<MotherDataManager {self.session.name!r} on {self.database.name!r} ({self.phase})>"

    def sortKey(self) -> str:
        """Stable order by database, then by join order within the transaction."""
        return f"{GID_PREFIX}:{self.database.name}:{self.number:06d}"

    def move(self, phase: str) -> None:
        """Go to ``phase``: one of ``MOVES``, or it is a bug."""
        move = (self.phase, phase)
        if move not in MOVES:
            raise AssertionError(f"{self!r}: no move from {self.phase} to {phase}")
        self.phase = phase
        if log.isEnabledFor(logging.DEBUG):
            log.debug("session %s on %r: %s -> %s", self.handle.name, self.database.name, *move,
                      extra={"move": move, "session": self.handle.name})

    # -- commit ---------------------------------------------------------------------------
    @events.phase("tpc_begin")
    @translating
    def tpc_begin(self, txn: Any) -> None:
        """Get the branch ready to vote.

        The transaction's only resource commits right here, its COMMIT riding with
        its flush. A read-only session (never prepared: a replica cannot) and a
        session the server says only read wait for the decision and commit in
        ``tpc_finish`` (its ``NOTIFY`` and advisory locks follow the transaction's
        outcome). A session that cannot prepare writes its pending changes now; one
        that can owes them to the round trip that ends its transaction (its
        PREPARE's, or its COMMIT's).
        """
        handle = self.handle
        if handle.closed:
            raise SessionClosedError(f"session {handle.name!r} ended inside its transaction")
        if self.state.alone(self, txn):
            self.mode = ONE_PHASE if handle.wrote and not handle.readonly else READ_ONLY
            handle.commit()
            self.move(COMMITTED)
        elif handle.readonly or (not handle.wrote and handle.only_read()):
            self.mode = READ_ONLY
            self.move(READ)
        else:
            if not self.twophase:
                handle.flush()
            self.move(READY)

    @events.phase("commit")
    def commit(self, txn: Any) -> None:
        """Nothing to do: the work is written in ``tpc_begin`` or with the vote."""

    @events.phase("tpc_vote", votes=VOTES)
    @translating
    def tpc_vote(self, txn: Any) -> None:
        """PREPARE TRANSACTION (every preparing branch at once, see
        :meth:`TransactionState.prepare_all`); one-phase writers commit later, in the
        Decision resource's vote."""
        if self.phase == READY:
            self.state.plan()
            if self.mode == PREPARE:
                self.state.prepare_all()
        if self.vote_error is not None:  # also when the PREPARE left the branch in doubt
            error, self.vote_error = self.vote_error, None
            raise error

    def _decision(self) -> tuple[str, dict[str, Any]] | None:
        """What rides before this branch's PREPARE: the decider's commit decision."""
        if self.state.decider is not self:
            return None
        return commitlog.decision(self.database, self.state.global_id)

    def refused(self, error: Exception) -> None:
        """This branch's PREPARE (with its writes) failed: the error is kept for its
        vote. A connection lost once the PREPARE may have reached the server leaves
        the branch in doubt: ``tpc_abort`` looks for it."""
        if isinstance(error, EndLost):
            if error.ran is not False:
                self.move(IN_DOUBT)
            self.vote_error = error.cause
        else:
            self.vote_error = error

    def finish(self, commit: bool) -> bool:
        """COMMIT (or ROLLBACK) PREPARED this branch; False if another process had
        finished it."""
        assert self.gid is not None
        return self.handle.finish_prepared(self.gid, commit)

    @events.phase("tpc_finish")
    def tpc_finish(self, txn: Any) -> None:
        """COMMIT PREPARED and end the session; never raises: the decision is durable,
        so a branch that cannot be committed now is committed by recovery."""
        try:
            if self.phase == PREPARED:
                self._finish_prepared(commit=True)
            elif self.phase == READ:
                self._commit_read()
        finally:
            self._end(rollback=self.phase == READ)

    def _commit_read(self) -> None:
        """COMMIT a branch that only read, now that the transaction is decided. It wrote
        nothing, so a failure loses no write: what it loses is logged."""
        try:
            self.handle.commit()
        except Exception:
            log.error("session %s on %r only read, but its COMMIT after the decision of "
                      "transaction %s failed: what that COMMIT would have done (deliver its "
                      "NOTIFY, if any) did not happen", self.handle.name, self.database.name,
                      self.state.global_id, exc_info=True)
            return
        self.move(COMMITTED)

    def _finish_prepared(self, commit: bool) -> None:
        """COMMIT/ROLLBACK PREPARED, once more on a new connection if the first fails."""
        verb = "commit" if commit else "roll back"
        try:
            if not self.finish(commit):
                log.info("branch %s was already resolved by recovery", self.gid)
            return
        except Exception as error:
            self.handle.failed(error)
            log.warning("could not %s branch %s (%s): trying a new connection",
                        verb, self.gid, error)
        try:
            assert self.gid is not None
            self.handle.finish_prepared(self.gid, commit, anew=True)
        except Exception:
            log.error("could not %s branch %s of transaction %s: it stays prepared until "
                      "recovery (automatic, or `mother recover`) does it", verb, self.gid,
                      self.state.global_id, exc_info=True)

    # -- abort --------------------------------------------------------------------------
    @events.phase("abort")
    def abort(self, txn: Any) -> None:
        """Undo this branch (before its vote, or when another resource failed)."""
        self._undo()

    @events.phase("tpc_abort")
    def tpc_abort(self, txn: Any) -> None:
        """Undo whatever the vote did and end the session; never raises."""
        self._undo()

    def _undo(self) -> None:
        phase, decision = self.phase, self.state.decision
        if phase == DONE:
            return
        try:
            if phase in (PREPARED, IN_DOUBT) and decision == DECIDED:
                log.critical("transaction %s is decided committed but aborts after it: "
                             "committing its branch %s", self.state.global_id, self.gid)
                self._finish_prepared(commit=True)
            elif phase in (PREPARED, IN_DOUBT) and decision == UNKNOWN:
                log.error("transaction %s: outcome unknown; branch %s is left prepared for "
                          "recovery", self.state.global_id, self.gid)
            elif phase in (PREPARED, IN_DOUBT):
                self._finish_prepared(commit=False)
            elif phase == COMMITTED and self.mode != READ_ONLY:
                log.critical("transaction %s aborts, but its branch %s (session %s on %r) "
                             "had already committed", self.state.global_id, self.gid,
                             self.session.name, self.database.name)
        finally:
            self._end(rollback=phase in (ACTIVE, READY, READ))

    def _end(self, rollback: bool) -> None:
        phase, decision = self.phase, self.state.decision
        outcome = ("rolled back" if phase in (ACTIVE, READY, READ) else
                   "committed" if phase == COMMITTED or decision == DECIDED else
                   "in doubt" if decision == UNKNOWN else "rolled back")
        self.move(DONE)
        try:
            self.handle.end(rollback, outcome)
        except Exception:
            log.error("could not end session %s cleanly", self.handle.name, exc_info=True)
        finally:
            self.state.ended()

    # -- savepoints and retries -------------------------------------------------------------
    def savepoint(self) -> _Savepoint:
        """A SAVEPOINT in the database plus a snapshot of the unit of work."""
        return _Savepoint(self)

    def should_retry(self, exception: BaseException) -> bool:
        """Stale records, serialization failures, deadlocks, SQLite's "database is locked"."""
        return self.database.is_transient(exception)


@implementer(IDataManagerSavepoint)
class _Savepoint:
    def __init__(self, dm: MotherDataManager) -> None:
        if dm.phase != ACTIVE or dm.handle.closed:
            raise SessionClosedError(f"session {dm.handle.name!r} is no longer in the transaction")
        self.dm = dm
        self.savepoint = dm.handle.savepoint()

    def rollback(self) -> None:
        """ROLLBACK TO SAVEPOINT; objects changed since go back too. The savepoint stays valid."""
        dm = self.dm
        if dm.phase != ACTIVE or dm.handle.closed:
            raise SessionClosedError(f"session {dm.handle.name!r} is no longer in the transaction")
        dm.handle.rollback_to(self.savepoint)


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
    if events.listeners:
        events.session_event(session.database.name, session.name, "joined")
    autorecovery.ensure_started(session.database)
    return dm
