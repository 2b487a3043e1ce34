"""Two-phase commit and recovery through PgBouncer in transaction mode.

PREPARE TRANSACTION ends the transaction on its server connection, which PgBouncer
then gives to any client; COMMIT PREPARED and recovery run on whichever server
connection comes next. The test suites of tests/tm also run through PgBouncer
(tests/support/pooler.py); these are the cases only a pooler has.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path

import pytest
import transaction

import mother
from mother import MO_SAVE, MotherSession, events
from mother.tm import autorecovery, join, recover
from tests.support import ROOT, child
from tests.support.classes import ClsStars
from tests.support.databases import count
from tests.support.pooler import holding, server_pid, server_states
from tests.support.tm import Foreign, prepared, second_database

pytestmark = [pytest.mark.usefixtures("clean_transaction"),
              pytest.mark.parametrize("pg_route", ["pgbouncer"], indirect=True)]


@pytest.fixture
def two(pgdb: mother.Database, request: pytest.FixtureRequest, tmp_path: Path
        ) -> tuple[mother.Database, mother.Database]:
    """Two PostgreSQL databases through PgBouncer, ``pooler`` set (MOTHER_POOLER)."""
    assert pgdb.settings.pooler == "pgbouncer-transaction"
    return pgdb, second_database("postgresql", request, tmp_path)


def _write(database: mother.Database, name: str) -> MotherSession:
    session = MotherSession(name, database=database)
    join(session)
    ClsStars({"star_name": name}, MO_SAVE, session=session)
    return session


def test_a_branch_prepared_on_one_server_connection_commits_from_another(
        two, pg_dsns: list[str]) -> None:
    first, second = two
    preparing = server_pid(_write(first, "one"))  # the server connection its PREPARE runs on
    _write(second, "two")
    held = contextlib.ExitStack()
    # after every vote, before any COMMIT PREPARED: another client takes that server connection
    transaction.get().join(Foreign("!first", "tpc_finish",
                                   lambda: held.enter_context(holding(pg_dsns[0], preparing))))
    with held:
        transaction.commit()
    assert count(first, "stars") == count(second, "stars") == 1
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []


def test_two_phase_commits_of_many_threads_share_the_server_connections(
        two, pg_dsns: list[str]) -> None:
    """Eight two-database transactions at once on four server connections per database.
    Each takes its server connections in the same order (first, then second): two that
    took them in opposite orders could each wait for the other's; and the process knows
    the commit log already, which its first commit makes on a connection of its own
    (docs/pgbouncer.rst, "How many server connections")."""
    first, second = two
    _write(first, "warm")
    _write(second, "warm")
    transaction.commit()
    errors: list[BaseException] = []

    def commit_both(number: int) -> None:
        try:
            for run in range(3):
                server_pid(_write(first, f"t{number}-{run}"))
                server_pid(_write(second, f"t{number}-{run}"))
                transaction.commit()
        except BaseException as error:
            errors.append(error)
            transaction.abort()

    threads = [threading.Thread(target=commit_both, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(first, "stars") == count(second, "stars") == 25
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []


def _crash(pg_dsns: list[str], point: str) -> None:
    """A child process (the environment's MOTHER_POOLER too) dies at ``point`` of its
    two-database commit through PgBouncer."""
    proc = subprocess.run(child("tm_crash_child", pg_dsns[0], pg_dsns[1], point), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr


def test_recovery_through_the_pooler_fences_and_leaves_nothing_on_a_server_connection(
        two, pg_dsns: list[str]) -> None:
    first, second = two
    _crash(pg_dsns, "after-votes")  # both prepared, nothing decided: recovery fences
    assert len(prepared(pg_dsns[0])) == len(prepared(pg_dsns[1])) == 1
    sent: list[str] = []
    with events.listening(lambda event: sent.extend(
            statement.sql for statement in event.statements)
            if isinstance(event, events.RoundTrip) else None):
        report = recover([first, second], min_age=0)
    assert len(report.rolled_back) == 2 and not report.failed
    assert "SET LOCAL lock_timeout = '500ms'" in sent  # the fence waits a bounded time
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []
    assert count(first, "stars") == count(second, "stars") == 0
    for dsn in pg_dsns:
        for state in server_states(dsn):
            assert state["lock_timeout"] == "0" and state["prepared"] == [], state


def test_automatic_recovery_through_the_pooler(two, pg_dsns: list[str]) -> None:
    _crash(pg_dsns, "between-commits")  # decided, the first branch committed
    assert prepared(pg_dsns[1])
    first = mother.init_mother(dsn=pg_dsns[0], pool_min=1, recover_interval=0.1)
    second = mother.init_mother(dsn=pg_dsns[1], name="second", pool_min=1,
                                recover_interval=0.1)
    try:
        assert autorecovery.ensure_started(first)
        deadline = time.monotonic() + 20  # recovery's grace (min_age, 5 s) and a margin
        while prepared(pg_dsns[1]):
            assert time.monotonic() < deadline, "automatic recovery did not resolve it"
            time.sleep(0.05)
        assert count(first, "stars") == count(second, "stars") == 1
    finally:
        autorecovery.stop()
