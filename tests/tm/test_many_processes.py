"""Many application processes: each commits two-phase transactions and recovers on its own.

Four worker processes (:func:`tests.support.tm_chaos.run_chaos`) commit two-database
transactions concurrently, every one with automatic recovery on. Two of them end
themselves mid-commit: one with both branches prepared and nothing decided, one
decided with its second branch still prepared. The survivors' automatic recovery
must resolve exactly those three branches (rolled back, rolled back, committed),
touch no branch of a live process (its grace, ``recover_min_age``, is longer than
any of their commits), and leave nothing for a last recovery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tm_chaos import run_chaos, teardown

#: shorter than the default, so the test takes seconds; still far above any commit here
GRACE = 3.0


@pytest.fixture
def dsns(pg_dsns: list[str]) -> Iterator[list[str]]:
    yield pg_dsns
    teardown(pg_dsns)


def test_processes_dying_mid_commit_are_recovered_by_the_others_and_only_they(
        dsns: list[str], tmp_path: Path) -> None:
    result = run_chaos(dsns, tmp_path, seconds=1.5, workers=4, kill_every=None,
                       online_every=None, recover_interval=0.2, recover_min_age=GRACE,
                       widen=0.02, dying=("vote", "finish"), drain=True)
    print(f"\n{result.table()}")
    states = result.outcome.states
    assert result.deaths == 2, result.table()
    # the two dead transactions, and no live one failed (recovery rolled none of them back)
    assert states["in flight"] == 2 and states["committed"] > 10, result.table()
    assert states["failed"] == states["unknown"] == 0, result.table()
    assert sum(result.anomalies.values()) == 0, result.table()
    # every process that drained reports: together they resolved the dead's three
    # branches, each once, and nothing else (a live branch committed ahead of its own
    # process would count here too)
    stats = result.worker_stats
    assert len(stats) == 4 and all(s["running"] for s in stats), stats
    assert sum(s["rolled_back"] for s in stats) == 2, stats
    assert sum(s["committed"] for s in stats) == 1, stats
    assert sum(s["failed"] + s["errors"] for s in stats) == 0, stats
    # the processes' own recovery did it all: the last recovery found nothing
    assert result.last_recovery.branches == [], result.table()
