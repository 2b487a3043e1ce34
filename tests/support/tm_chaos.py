"""The chaos run of two-phase commit: workers killed at random while recovery runs online.

:func:`run_chaos` starts worker processes (:mod:`tests.support.tm_chaos_worker`) that commit
two-database transactions, SIGKILLs a random one every fraction of a second and
starts it again (or lets chosen workers end themselves at a chosen phase of a
commit), optionally runs a recovering process next to them, then stops
everything, runs a last recovery and compares what every worker saw with what
the databases hold (:func:`check`). Used by tests/tm/test_chaos.py and by
``python -m tools.tm_chaos`` (the same run for a chosen duration, for before/after
figures).

What the databases must hold, for each transaction a worker began:

* ``commit()`` returned: in both databases;
* ``commit()`` raised: in neither (``CommitOutcomeUnknownError``: both or neither);
* the worker died before it knew: both or neither.

And after the last recovery: nothing prepared that was not before the run, and
(with ``log_retention=0``) no commit log row left.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from mother.config import make_settings
from mother.database import Database
from mother.tm import COMMIT_LOG, RecoveryReport, recover
from tests.support import ROOT, child
from tests.support.tm_chaos_worker import DIED

NAMES = ("default", "second")  # the workers' database names: branch ids carry them
STATES = ("committed", "failed", "unknown", "in flight")
#: anomaly kinds, as printed
SPLIT = "split: in one database only"
FALSE_COMMIT = "false commit: returned, in neither"
FALSE_FAILURE = "false failure: raised, in both"
PHANTOM = "phantom: a row no worker began"
PREPARED = "left prepared after the last recovery"
LOG_LEFT = "commit log rows left after the last recovery"
WORKER_ERRORS = "worker or recoverer died by itself (harness)"
KINDS = (SPLIT, FALSE_COMMIT, FALSE_FAILURE, PHANTOM, PREPARED, LOG_LEFT, WORKER_ERRORS)


@dataclasses.dataclass
class Outcome:
    """What the databases hold compared with what the workers saw."""

    states: Counter[str] = dataclasses.field(default_factory=Counter)
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    anomalies: Counter[str] = dataclasses.field(default_factory=Counter)
    examples: list[str] = dataclasses.field(default_factory=list)
    log_rows: int = 0

    def flag(self, kind: str, example: str, n: int = 1) -> None:
        self.anomalies[kind] += n
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {example}")


@dataclasses.dataclass
class ChaosResult:
    """A chaos run: its settings, what happened and what :func:`check` found."""

    settings: dict[str, Any]
    seconds: float
    kills: int
    outcome: Outcome
    recoverer: dict[str, Any] | None
    last_recovery: RecoveryReport
    log_rows_before: int
    #: workers that ended themselves mid-commit (``dying``)
    deaths: int = 0
    #: the automatic recovery counters of each worker that drained (``drain``)
    worker_stats: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def anomalies(self) -> Counter[str]:
        return self.outcome.anomalies

    def table(self) -> str:
        out, states = self.outcome, self.outcome.states
        lines = [", ".join(f"{key} {value}" for key, value in self.settings.items()),
                 f"ran {self.seconds:.1f} s, {self.kills} workers killed, "
                 f"{self.deaths} died mid-commit",
                 f"transactions {sum(states.values())}: " + ", ".join(
                     f"{state} {states[state]}" for state in STATES)]
        if out.errors:
            lines.append("  raised: " + ", ".join(f"{k} {v}" for k, v in out.errors.items()))
        if self.recoverer is not None:
            lines.append("online recoverer: " + ", ".join(
                f"{k} {v}" for k, v in self.recoverer.items() if v is not None))
        lines.append(f"commit log rows before the last recovery: {self.log_rows_before}")
        last = self.last_recovery
        lines.append(f"last recovery: committed {len(last.committed)}, rolled back "
                     f"{len(last.rolled_back)}, failed {len(last.failed)}, "
                     f"{last.cleaned} commit log rows removed")
        lines += [f"  failed: {branch.gid} in {branch.database}: {branch.error}"
                  for branch in last.failed]
        lines.append("anomalies:")
        lines += [f"  {kind:<48} {out.anomalies[kind]}" for kind in KINDS]
        lines += [f"  e.g. {example}" for example in out.examples]
        return "\n".join(lines)


def _rows(conn: psycopg.Connection, sql: str) -> list[Any]:
    return [row[0] for row in conn.execute(sql)]


def _prepared(conn: psycopg.Connection) -> set[str]:
    return set(_rows(conn, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"))


def _log_rows(conn: psycopg.Connection) -> int:
    if conn.execute("SELECT to_regclass(%s)", (COMMIT_LOG,)).fetchone()[0] is None:
        return 0
    # decisions only: the row keyed 'database' is the database's id, kept for good
    return conn.execute(f'SELECT COUNT(*) FROM "{COMMIT_LOG}" '
                        "WHERE global_id <> 'database'").fetchone()[0]


def setup(dsns: list[str]) -> list[set[str]]:
    """A fresh ``chaos_rows`` table and an empty commit log in both databases; returns
    what is prepared there already (not the run's to resolve)."""
    baseline = []
    for dsn in dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS chaos_rows")
            conn.execute("CREATE TABLE chaos_rows (txid TEXT PRIMARY KEY)")
            if _log_rows(conn):
                conn.execute(f'DELETE FROM "{COMMIT_LOG}" WHERE global_id <> \'database\'')
            baseline.append(_prepared(conn))
    return baseline


def teardown(dsns: list[str]) -> None:
    for dsn in dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS chaos_rows")


def read_journals(paths: Iterable[Path]) -> dict[str, str]:
    """The state of each transaction in the journals: its last event, "in flight" if it
    has only ``begun``. A line cut short by a kill is ignored (it was not fsync'd
    yet, so its transaction had not started or not been told its outcome)."""
    states: dict[str, str] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            states[event["tx"]] = "in flight" if event["ev"] == "begun" else event["ev"]
    return states


def read_errors(paths: Iterable[Path]) -> Counter[str]:
    """How many commits raised, by exception type."""
    errors: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if "error" in event:
                errors[event["error"]] += 1
    return errors


def check(dsns: list[str], journals: list[Path], baseline: list[set[str]]) -> Outcome:
    """Compare every journaled transaction with both databases (after the last recovery)."""
    outcome = Outcome(errors=read_errors(journals))
    states = read_journals(journals)
    held, prepared = [], []
    for dsn, before in zip(dsns, baseline):
        with psycopg.connect(dsn, autocommit=True) as conn:
            held.append(set(_rows(conn, "SELECT txid FROM chaos_rows")))
            prepared.append(_prepared(conn) - before)
            outcome.log_rows += _log_rows(conn)
    for txid, state in sorted(states.items()):
        outcome.states[state] += 1
        first, second = txid in held[0], txid in held[1]
        if first != second:
            where = NAMES[0] if first else NAMES[1]
            outcome.flag(SPLIT, f"{txid} ({state}) only in {where}")
        elif state == "committed" and not first:
            outcome.flag(FALSE_COMMIT, txid)
        elif state == "failed" and first:
            outcome.flag(FALSE_FAILURE, txid)
    for txid in sorted((held[0] | held[1]) - set(states)):
        outcome.flag(PHANTOM, txid)
    for name, gids in zip(NAMES, prepared):
        for gid in sorted(gids):
            outcome.flag(PREPARED, f"{gid} in {name}")
    if outcome.log_rows:
        outcome.flag(LOG_LEFT, f"{outcome.log_rows} rows in {COMMIT_LOG}", outcome.log_rows)
    return outcome


def _unregistered(dsns: list[str]) -> list[Database]:
    """The two databases under the workers' names, outside the registry (as ``mother
    recover`` makes them): no automatic recovery, nothing replaced."""
    return [Database(name, make_settings(None, name, dsn=dsn, pool_min=1, recover_interval=None))
            for name, dsn in zip(NAMES, dsns)]


def last_recovery(dsns: list[str]) -> RecoveryReport:
    """``recover(log_retention=0)``, with ``min_age=0`` where it has one: what the run
    left in doubt is resolved now, and no log row is kept."""
    options = {"min_age": 0.0} if "min_age" in inspect.signature(recover).parameters else {}
    databases = _unregistered(dsns)
    try:
        return recover(databases, log_retention=0, **options)
    finally:
        for database in databases:
            database.close()


class _Workers:
    """The worker processes, one per slot, each run in turn by several incarnations."""

    def __init__(self, dsns: list[str], workdir: Path, n: int, options: list[str],
                 dying: Sequence[str] = ()) -> None:
        self.dsns, self.workdir, self.options = dsns, workdir, options
        self.stop = workdir / "stop"
        self.started = 0
        self.deaths = 0
        self.died: list[Path] = []
        self.procs: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
        for slot in range(n):  # the first workers' first incarnations die as asked
            self.procs.append(self._start(["--die-in", dying[slot]] if slot < len(dying) else []))

    def _start(self, extra: Sequence[str] = ()) -> tuple[subprocess.Popen[bytes], Path, Path]:
        self.started += 1
        journal = self.workdir / f"journal-{self.started}.jsonl"
        err = self.workdir / f"worker-{self.started}.err"
        with err.open("wb") as stderr:
            proc = subprocess.Popen(
                child("tm_chaos_worker", "worker", *self.dsns, str(journal), str(self.stop),
                      *self.options, *extra), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        return proc, err, journal

    @staticmethod
    def _working(journal: Path) -> bool:
        """Whether the worker has begun a transaction (it journals "begun" first)."""
        return journal.exists() and journal.stat().st_size > 0

    def wait_working(self, timeout: float) -> None:
        """Wait until every worker has begun its first transaction: on a loaded machine a
        worker takes seconds to start, and the chaos is timed from here."""
        deadline = time.monotonic() + timeout
        while not all(self._working(journal) for _, _, journal in self.procs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the chaos workers did not start within {timeout} s")
            self.restart_dead()
            time.sleep(0.05)

    def restart_dead(self) -> None:
        for slot, (proc, err, _) in enumerate(self.procs):
            if proc.poll() is not None:
                if proc.returncode == DIED:
                    self.deaths += 1
                else:
                    self.died.append(err)
                self.procs[slot] = self._start()

    def kill_one(self, rng: random.Random) -> bool:
        """SIGKILL a worker that is working (one still starting proves nothing); False if
        none is yet."""
        working = [slot for slot, (_, _, journal) in enumerate(self.procs)
                   if self._working(journal)]
        if not working:
            return False
        slot = rng.choice(working)
        proc = self.procs[slot][0]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.procs[slot] = self._start()
        return True

    def finish(self, timeout: float) -> None:
        """Ask every worker to stop after its transaction; kill those that do not."""
        self.stop.touch()
        deadline = time.monotonic() + timeout
        for proc, err, _ in self.procs:
            try:
                code = proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                continue
            if code == DIED:
                self.deaths += 1
            elif code != 0:
                self.died.append(err)


def run_chaos(dsns: list[str], workdir: Path, *, seconds: float, workers: int = 4,
              kill_every: tuple[float, float] | None = (0.1, 0.5),
              online_every: float | None = 0.05, online_min_age: float | None = 0.0,
              recover_interval: float | None = 0.5, recover_min_age: float = 5.0,
              widen: float = 0.03, dying: Sequence[str] = (), drain: bool = False,
              seed: int | None = None) -> ChaosResult:
    """Run the chaos for ``seconds`` and check the outcome (see the module docstring).

    ``kill_every`` is the range of the pause between kills (None: no kills);
    ``online_every`` the period of the recovering process (None: none), which
    passes ``online_min_age`` to ``recover()`` when it takes one (None: its
    default); ``recover_interval`` and ``recover_min_age`` the workers' automatic
    recovery (None: off); ``widen`` the longest sleep in the foreign resource's vote
    and finish. ``dying`` names a commit phase (``vote``, ``finish``) for each of the
    first workers: each ends itself there in its third transaction, and is started
    again. With ``drain``, stopped workers recover until nothing is prepared before
    they exit, and report their counters (``ChaosResult.worker_stats``).
    """
    rng = random.Random(seed)
    baseline = setup(dsns)
    options = ["--widen", str(widen)]
    if recover_interval:
        options += ["--recover-interval", str(recover_interval),
                    "--recover-min-age", str(recover_min_age)]
    if drain:
        options.append("--drain")
    pool = _Workers(dsns, workdir, workers, options, dying)
    pool.wait_working(timeout=120)
    started = time.monotonic()
    recoverer = None
    if online_every:
        extra = ["--min-age", str(online_min_age)] if online_min_age is not None else []
        with (workdir / "recoverer.err").open("wb") as stderr:
            recoverer = subprocess.Popen(
                child("tm_chaos_worker", "recoverer", *dsns, str(pool.stop), "--every",
                      str(online_every), *extra), cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr)
    kills = 0
    end = started + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(rng.uniform(*kill_every) if kill_every else 0.2, left))
        pool.restart_dead()
        if kill_every and time.monotonic() < end and pool.kill_one(rng):
            kills += 1
    pool.finish(timeout=15 + (recover_min_age if drain else 0))
    recovered = None
    if recoverer is not None:
        out, _ = recoverer.communicate(timeout=30)
        recovered = json.loads(out) if recoverer.returncode == 0 else None
    elapsed = time.monotonic() - started
    log_rows_before = 0
    for dsn in dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            log_rows_before += _log_rows(conn)
    report = last_recovery(dsns)
    outcome = check(dsns, sorted(workdir.glob("journal-*.jsonl")), baseline)
    if recoverer is not None and recoverer.returncode != 0:
        pool.died.append(workdir / "recoverer.err")
    for err in pool.died:
        tail = err.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        outcome.flag(WORKER_ERRORS, f"{err.name}: {tail[0]}")
    settings = {"workers": workers, "kill every": kill_every, "online recovery every":
                online_every, "its min_age": online_min_age, "recover_interval":
                recover_interval, "widen": widen}
    if dying or drain:
        settings.update({"recover_min_age": recover_min_age, "dying": tuple(dying),
                         "drain": drain})
    stats = [json.loads(path.read_text()) for path in sorted(workdir.glob("journal-*.stats"))]
    return ChaosResult(settings, elapsed, kills, outcome, recovered, report, log_rows_before,
                       pool.deaths, stats)
