"""Read replicas: which streaming replica a read-only session runs on.

A database with the ``replicas`` setting keeps one :class:`Replica` per DSN,
each with its own pool (the database's pool settings), and a :class:`Replicas`
that chooses among them for every read-only session: in turn, skipping a
replica that is down or lags more than ``replica_max_lag``; None (the primary)
when no replica is left. With ``after`` (a :class:`WalPosition`, what a
session's ``commit_position`` gives), only a replica that has replayed that
position is chosen, waiting up to ``replica_wait`` for one.

The choice costs no round trip as long as what is known is fresh: each server
(the primary and each replica) is asked its position at most every
``replica_check`` seconds, on a connection of its own kept for that (a pooled
one could make the check wait for the pool), by the session that finds it
stale. A replica that fails to answer is down: asked again after a backoff
(``replica_check`` doubled per failure, at most :data:`MAX_BACKOFF`), and it
rejoins when it answers.

Lag is measured against the primary's WAL positions known to this process,
each with the time it became known: the commit positions of its sessions and
the primary's flush position, asked at each check. A replica's lag is how long
ago the primary was at the first known position it has not replayed (0 if it
has replayed them all). ``now() - pg_last_xact_replay_timestamp()`` on the
replica would measure the time since the last commit it replayed, which on an
idle primary grows without any lag at all.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import dataclasses
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from . import events
from .config import Settings, spelled_as
from .dialects import Dialect, Pool, dialect_for
from .dialects.base import LazyPool
from .errors import ArgumentError, ConfigError

log = logging.getLogger(__name__)

#: what a check's question answers
T = TypeVar("T")

#: the longest a replica that does not answer waits before it is asked again (seconds)
MAX_BACKOFF = 30.0
#: how often a session waiting for its position asks the replicas again (seconds)
POLL = 0.01
#: known positions within this many seconds are kept as one (the later position at the
#: earlier time: a lag measured at most this much too long, never too short)
GRAIN = 0.05
#: at most this many known positions are kept (older ones count as not replayed)
HISTORY = 1000
#: seconds a session waits for a connection of a replica's pool, at most
CONNECT_TIMEOUT = 2


class WalPosition(int):
    """A position in the primary's write-ahead log (PostgreSQL's ``pg_lsn``) as a number;
    ``str()`` gives PostgreSQL's form (``16/B374D848``), :meth:`parse` reads it back."""

    def __str__(self) -> str:
        return f"{self >> 32:X}/{self & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"WalPosition('{self}')"

    @classmethod
    def parse(cls, text: str) -> WalPosition:
        """Read PostgreSQL's form ``X/Y`` (two hexadecimal numbers)."""
        high, slash, low = text.strip().partition("/")
        try:
            if slash and 0 < len(high) <= 8 and 0 < len(low) <= 8:
                return cls(int(high, 16) << 32 | int(low, 16))
        except ValueError:
            pass
        raise ArgumentError(f"{text!r} is not a WAL position (expected X/Y in hexadecimal)")


class _Probe:
    """A connection of its own to one server, for its checks (made on use by the dialect,
    closed and made again after a failure)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._conn: Any = None

    def ask(self, question: Callable[[Any], T]) -> T:
        """``question(connection)``'s answer; the connection is closed when it fails."""
        try:
            if self._conn is None or self.dialect.is_broken(self._conn):
                self._conn = self.dialect.check_connection()
            return question(self._conn)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def forget(self) -> list[Any]:
        """In a forked child: forget the parent's connection, unclosed (see
        :meth:`mother.database.Database.forget_connections`)."""
        conn, self._conn = self._conn, None
        return [] if conn is None else [conn]


@dataclasses.dataclass(frozen=True)
class ReplicaState:
    """What the last check of a replica found (replaced whole at each check)."""

    #: whether it answered as a hot standby
    up: bool = False
    #: the position it had replayed
    replayed: int = -1
    #: when it was checked (``time.monotonic()``)
    checked: float = -math.inf
    #: checks failed in a row, and until when it is not asked again
    failures: int = 0
    retry: float = -math.inf
    #: why it is not used (its error), when it is down
    error: str | None = None


class Replica:
    """One streaming replica of a database: its DSN, pool and last known state."""

    def __init__(self, settings: Settings, database: str) -> None:
        self.dsn = settings.dsn
        #: the name of the database it replicates
        self.database = database
        self.dialect: Dialect = dialect_for(settings, database)
        location = self.dialect.location()
        #: ``host:port``, as its pool events name it
        self.where = f"{location.get('server.address', '')}:{location.get('server.port', 5432)}"
        self.state = ReplicaState()
        self._pool = LazyPool(self.dialect)
        self._probe = _Probe(self.dialect)
        #: held by the thread checking the replica (the others use what is known)
        self._checking = threading.Lock()

    def __repr__(self) -> str:
        return f"<Replica {self.where} {'up' if self.state.up else 'down'}>"

    @property
    def pool(self) -> Pool:
        return self._pool.get()

    def getconn(self) -> Any:
        """A connection from the replica's pool, waited for at most :data:`CONNECT_TIMEOUT`
        (or ``pool_timeout`` when shorter); reported as the database's pool events are,
        with the replica's ``host:port``."""
        pool = self.pool
        timeout = min(self.dialect.settings.pool_timeout, CONNECT_TIMEOUT)
        return events.checkout(self.database, pool, lambda: pool.getconn(timeout), self.where)

    def putconn(self, conn: Any) -> None:
        self.dialect.forget_session(conn)
        events.checkin(self.database, self.pool, conn, self.where)

    def check(self, now: float, backoff: float) -> None:
        """Ask the replica its state now, unless another thread is asking it already (then
        its last state stands; before its first check, that thread's answer is awaited)."""
        first = self.state.checked == -math.inf
        if not self._checking.acquire(blocking=first):
            return
        try:
            state = self.state
            if first and state.checked != -math.inf:
                return  # checked by the thread this one waited for
            try:
                standby, replayed = self._probe.ask(self.dialect.standby_state)
            except Exception as error:  # down, or not answering as one: not used
                failures = state.failures + 1
                if state.up or state.failures == 0:
                    log.warning("replica %s is down: %s", self.dsn, error)
                self.state = ReplicaState(
                    False, state.replayed, now, failures,
                    now + min(backoff * 2 ** (failures - 1), MAX_BACKOFF), str(error))
                return
            if not standby:
                log.warning("replica %s is not in recovery (promoted?): not used", self.dsn)
                self.state = ReplicaState(False, state.replayed, now, state.failures + 1,
                                          now + MAX_BACKOFF, "not a standby")
                return
            if not state.up and state.failures:
                log.info("replica %s answers again", self.dsn)
            self.state = ReplicaState(True, -1 if replayed is None else int(replayed), now)
        finally:
            self._checking.release()

    def failed(self, error: BaseException, now: float, backoff: float) -> None:
        """A session could not get a connection of the replica in time: ask the replica at
        once (it is down if it does not answer; else its pool was only busy)."""
        log.warning("replica %s: a session got no connection (%s): checking it", self.dsn,
                    error)
        self.check(now, backoff)

    def close(self) -> None:
        with self._checking:
            self._probe.close()
        self._pool.close()

    def forget_connections(self) -> list[Any]:
        """In a forked child: forget the parent's pool and check connection, unclosed."""
        self._checking = threading.Lock()
        return self._pool.forget() + self._probe.forget()


class Replicas:
    """The replicas of one database and what this process knows of the primary's position."""

    def __init__(self, settings: Settings, dialect: Dialect, replicas: list[Replica]) -> None:
        self.settings = settings
        self.replicas = replicas
        self._dialect = dialect
        self._primary = _Probe(dialect)
        self._primary_checked = -math.inf
        #: known primary positions, increasing, each with when it became known
        self._known: collections.deque[tuple[int, float]] = collections.deque()
        #: the highest position dropped to keep at most HISTORY (-1: none)
        self._forgotten = -1
        self._lock = threading.Lock()
        #: held by the thread asking the primary its position
        self._asking = threading.Lock()
        self._turn = itertools.count()

    def saw(self, position: int, now: float | None = None) -> None:
        """Remember that the primary was at ``position`` (a commit's) at ``now``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            known = self._known
            if known and position <= known[-1][0]:
                return
            if known and now - known[-1][1] < GRAIN:
                known[-1] = (position, known[-1][1])
                return
            known.append((position, now))
            if len(known) > HISTORY:
                self._forgotten = known.popleft()[0]

    def lag(self, replica: Replica, now: float) -> float:
        """Seconds since the primary was at the first known position ``replica`` lacks."""
        replayed = replica.state.replayed
        with self._lock:
            if replayed < self._forgotten:
                return math.inf
            first = bisect.bisect_right(self._known, (replayed, math.inf))
            if first < len(self._known):
                return now - self._known[first][1]
        return 0.0

    def _refresh(self, now: float) -> None:
        """Ask the primary its position and the stale replicas their state (each at most
        every ``replica_check``); forget the positions every replica has replayed."""
        interval = self.settings.replica_check
        if now - self._primary_checked >= interval and self._asking.acquire(blocking=False):
            try:
                self._primary_checked = now
                self.saw(self._primary.ask(self._dialect.flush_position), now)
            except Exception as error:  # not known now: the lag is measured without it
                log.warning("replicas of %s: the primary's position is unknown: %s",
                            self.settings.dsn, error)
            finally:
                self._asking.release()
        for replica in self.replicas:
            state = replica.state
            if now - state.checked >= interval and now >= state.retry:
                replica.check(now, interval)
        lowest = min(replica.state.replayed for replica in self.replicas)
        with self._lock:
            while len(self._known) > 1 and self._known[0][0] <= lowest:
                self._known.popleft()

    def usable(self, replica: Replica, now: float, after: int | None) -> bool:
        """Whether ``replica`` may take a session now (up, not lagging, has ``after``)."""
        state = replica.state
        return (state.up and self.lag(replica, now) <= self.settings.replica_max_lag
                and (after is None or state.replayed >= after))

    def choose(self, after: int | None = None) -> Replica | None:
        """The replica for a read-only session (None: the primary), in turn among the
        usable ones; with ``after``, one that has replayed it, waited for up to
        ``replica_wait`` while some replica is up but has not."""
        now = time.monotonic()
        self._refresh(now)
        start = next(self._turn) % len(self.replicas)
        order = self.replicas[start:] + self.replicas[:start]
        for replica in order:
            if self.usable(replica, now, after):
                return replica
        wait = self.settings.replica_wait
        behind = [replica for replica in order if self.usable(replica, now, None)]
        if after is None or not wait or not behind:
            return None
        deadline = now + wait
        while True:
            for replica in behind:
                replica.check(now, self.settings.replica_check)
                if self.usable(replica, now, after):
                    return replica
            now = time.monotonic()
            if now >= deadline:
                return None
            time.sleep(min(POLL, deadline - now))
            now = time.monotonic()

    def close(self) -> None:
        with self._asking:
            self._primary.close()
        for replica in self.replicas:
            replica.close()

    def forget_connections(self) -> list[Any]:
        """In a forked child: forget the parent's connections, unclosed (the primary's
        check connection, each replica's pool and check connection)."""
        self._lock, self._asking = threading.Lock(), threading.Lock()
        forgotten = self._primary.forget()
        for replica in self.replicas:
            forgotten += replica.forget_connections()
        return forgotten


def replicas_for(settings: Settings, database: str, dialect: Dialect) -> Replicas | None:
    """The replicas of a database's settings (None without any), their DSNs checked by
    the dialect; refused where the dialect has no streaming replicas."""
    if not settings.replicas:
        return None
    if not dialect.can_replicate:
        raise ConfigError("replicas", list(settings.replicas),
                          f"a {dialect.name} database has no streaming replicas: "
                          "leave replicas out (read-only sessions then run on it)")
    found = []
    for dsn in settings.replicas:
        replica = dataclasses.replace(settings, dsn=dsn, replicas=())
        with spelled_as(lambda key: "replicas", keys=("dsn",)):
            found.append(Replica(replica, database))
        if type(found[-1].dialect) is not type(dialect):
            raise ConfigError("replicas", dsn, f"not a {dialect.name} DSN")
    return Replicas(settings, dialect, found)
