"""Chaos: workers SIGKILLed at random mid-commit while recovery runs online.

The run is :func:`tests.support.tm_chaos.run_chaos`. Run with ``-s`` to read the table
of counts. ``MOTHER_CHAOS_SECONDS`` sets the length of the chaos (default 15 s);
``python -m tools.tm_chaos`` runs it for longer.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.tm_chaos import (
    FALSE_COMMIT,
    FALSE_FAILURE,
    PHANTOM,
    PREPARED,
    SPLIT,
    check,
    run_chaos,
    setup,
    teardown,
)

SECONDS = float(os.environ.get("MOTHER_CHAOS_SECONDS", "15"))


@pytest.fixture
def dsns(pg_dsns: list[str]) -> Iterator[list[str]]:
    yield pg_dsns
    teardown(pg_dsns)


def test_killed_workers_and_online_recovery_leave_every_outcome_as_its_caller_saw_it(
        dsns: list[str], tmp_path: Path) -> None:
    result = run_chaos(dsns, tmp_path, seconds=SECONDS)
    print(f"\n{result.table()}")
    states = result.outcome.states
    # the run did what it is for: kills and commits (else "no anomaly" means nothing)
    assert result.kills >= 5 and states["committed"] > 0 and states["in flight"] > 0
    assert sum(result.anomalies.values()) == 0, result.table()


def test_without_kills_or_online_recovery_every_commit_is_in_both_databases(
        dsns: list[str], tmp_path: Path) -> None:
    """The harness itself: with nothing to break the protocol it must see no anomaly."""
    result = run_chaos(dsns, tmp_path, seconds=3, kill_every=None, online_every=None,
                       recover_interval=None)
    print(f"\n{result.table()}")
    states = result.outcome.states
    assert states["committed"] > 0 and states["committed"] == sum(states.values())
    assert result.kills == 0 and sum(result.anomalies.values()) == 0, result.table()


def test_the_check_reports_each_kind_of_anomaly(dsns: list[str], tmp_path: Path) -> None:
    baseline = setup(dsns)
    held = {"both-ok": (1, 1), "split-committed": (1, 0), "false-commit": (0, 0),
            "false-failure": (1, 1), "failed-ok": (0, 0), "unknown-both": (1, 1),
            "unknown-split": (0, 1), "flight-none": (0, 0), "flight-both": (1, 1),
            "phantom": (1, 0)}
    events = {"both-ok": "committed", "split-committed": "committed",
              "false-commit": "committed", "false-failure": "failed", "failed-ok": "failed",
              "unknown-both": "unknown", "unknown-split": "unknown", "flight-none": None,
              "flight-both": None}
    journal = tmp_path / "journal-1.jsonl"
    with journal.open("w") as out:
        for txid, event in events.items():
            out.write(json.dumps({"tx": txid, "ev": "begun"}) + "\n")
            if event:
                out.write(json.dumps({"tx": txid, "ev": event}) + "\n")
        out.write('{"tx": "torn-by-a-kill", "ev": "beg')  # a line the kill cut short
    for index, dsn in enumerate(dsns):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for txid, where in held.items():
                if where[index]:
                    conn.execute("INSERT INTO chaos_rows (txid) VALUES (%s)", (txid,))
    with psycopg.connect(dsns[1]) as conn:
        conn.execute("INSERT INTO chaos_rows (txid) VALUES ('left-prepared')")
        conn.execute("PREPARE TRANSACTION 'chaos-check-left'")
    try:
        outcome = check(dsns, [journal], baseline)
    finally:
        with psycopg.connect(dsns[1], autocommit=True) as conn:
            conn.execute("ROLLBACK PREPARED 'chaos-check-left'")
    assert outcome.anomalies == Counter(
        {SPLIT: 2, FALSE_COMMIT: 1, FALSE_FAILURE: 1, PHANTOM: 1, PREPARED: 1})
    assert outcome.states == Counter(
        {"committed": 3, "failed": 2, "unknown": 2, "in flight": 2})
    assert any("split-committed (committed) only in default" in e for e in outcome.examples)
    assert any("unknown-split (unknown) only in second" in e for e in outcome.examples)
