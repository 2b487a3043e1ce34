"""Automatic recovery (``recover_interval``): a process resolves what another one's crash left.

Real processes die mid-commit (tests/support/tm_crash_child.py); the process under test
only has automatic recovery running. Waits are bounded by recovery's own grace
(the ``min_age`` default of ``recover()``, where it has one) plus a margin.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mother
from mother import ConfigError
from mother.config import make_settings
from mother.pyramid.settings import database_settings
from mother.tm import autorecovery, recover
from tests.support import ROOT, child
from tests.support.databases import count
from tests.support.tm import prepared, second_database

INTERVAL = 0.1
#: how long a branch must wait before recovery may touch it, plus a margin for slow machines
BOUND = float(getattr(inspect.signature(recover).parameters.get("min_age"), "default", 0.0)
              or 0.0) + 15.0


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    autorecovery.stop()
    yield
    autorecovery.stop()


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == autorecovery.THREAD_NAME]


def _wait(condition: Callable[[], object], timeout: float = BOUND) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _first(pg_dsns: list[str], **settings: object) -> mother.Database:
    database = mother.init_mother(dsn=pg_dsns[0], pool_min=1, **settings)
    mother.tutorial.create(database)
    return database


def _crash(dsns: list[str], point: str) -> None:
    proc = subprocess.run(child("tm_crash_child", *dsns, point), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr


# -- the setting ----------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("2.5", 2.5), (1, 1.0), ("0", None), (0, None), ("off", None), ("None", None), ("", None),
    (None, None)])
def test_recover_interval_is_seconds_or_off(value: object, expected: float | None) -> None:
    assert make_settings(dsn="sqlite://", recover_interval=value).recover_interval == expected


def test_recover_interval_defaults_to_five_seconds() -> None:
    assert make_settings(dsn="sqlite://").recover_interval == 5.0


@pytest.mark.parametrize("value", ["-1", "soon", True, "inf", "nan", [1]])
def test_a_bad_recover_interval_names_the_setting(value: object) -> None:
    with pytest.raises(ConfigError, match=r"'recover_interval'.*seconds >= 0, or off"):
        make_settings(dsn="sqlite://", recover_interval=value)


def test_pyramid_settings_carry_recover_interval() -> None:
    found = database_settings({"mother.dsn": "sqlite://", "mother.recover_interval": "off",
                               "mother.second.dsn": "sqlite://",
                               "mother.second.recover_interval": "1.5"})
    assert make_settings(found["default"]).recover_interval is None
    assert make_settings(found["second"], "second").recover_interval == 1.5
    with pytest.raises(ConfigError, match="mother.second.recover_interval"):
        database_settings({"mother.second.dsn": "sqlite://",
                           "mother.second.recover_interval": "soon"})


def test_pyramid_settings_carry_the_settings_of_many_processes() -> None:
    found = database_settings({"mother.dsn": "sqlite://", "mother.recover_min_age": "12",
                               "mother.schema_check": "30"})
    settings = make_settings(found["default"])
    assert (settings.recover_min_age, settings.schema_check) == (12.0, 30.0)
    with pytest.raises(ConfigError, match="mother.recover_min_age"):
        database_settings({"mother.dsn": "sqlite://", "mother.recover_min_age": "0"})


# -- starting and stopping ------------------------------------------------------------------

def test_only_databases_that_prepare_and_have_an_interval_start_it(
        kind: str, dsn: str) -> None:
    on = mother.init_mother(dsn=dsn, recover_interval=INTERVAL)
    off = mother.init_mother(dsn=dsn, name="off", recover_interval="off")
    try:
        assert autorecovery.ensure_started(off) is False
        assert not autorecovery.stats().running and _threads() == []
        assert autorecovery.ensure_started(on) is (kind == "postgresql")
        assert autorecovery.stats().running is (kind == "postgresql")
        assert len(_threads()) == (kind == "postgresql")
    finally:
        mother.close_all()


def test_ensure_started_from_many_threads_starts_one_thread(pg_dsns: list[str]) -> None:
    database = _first(pg_dsns, recover_interval=INTERVAL)
    barrier = threading.Barrier(16)
    answers: list[bool] = []

    def start() -> None:
        barrier.wait()
        answers.append(autorecovery.ensure_started(database))

    callers = [threading.Thread(target=start) for _ in range(16)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert answers == [True] * 16 and len(_threads()) == 1
    mother.close_all()


def test_the_thread_ends_when_its_database_is_replaced_or_closed_and_keeps_none_alive(
        pg_dsns: list[str]) -> None:
    database = _first(pg_dsns, recover_interval=INTERVAL)
    assert autorecovery.ensure_started(database)
    _wait(lambda: autorecovery.stats().runs)
    replaced = weakref.ref(database)
    del database
    mother.init_mother(dsn=pg_dsns[0], pool_min=1, recover_interval=INTERVAL)  # replaces it
    _wait(lambda: not autorecovery.stats().running and not _threads(), timeout=5)
    gc.collect()
    assert replaced() is None
    assert autorecovery.ensure_started(mother.get_database())  # the new one starts it again
    assert autorecovery.stats().running
    mother.close_all()
    _wait(lambda: not autorecovery.stats().running and not _threads(), timeout=5)


def test_the_interpreter_exits_promptly_while_the_thread_runs(pg_dsns: list[str]) -> None:
    started = time.monotonic()
    proc = subprocess.run(child("tm_autorecovery_child", "exit", "0.05", pg_dsns[0]),
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["running"] is True
    assert time.monotonic() - started < 30


def test_a_forked_child_starts_its_own_thread(pg_dsns: list[str]) -> None:
    proc = subprocess.run(child("tm_autorecovery_child", "fork", "0.05", pg_dsns[0]),
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    said = {key: value for line in proc.stdout.splitlines()
            for key, value in json.loads(line).items()}
    # the parent's thread and counters do not exist in the child ...
    assert said["child_after_fork"]["running"] is False
    assert said["child_after_fork"]["runs"] == 0
    # ... so the child's first ensure_started starts its own, which runs
    assert said["child_later"]["running"] is True and said["child_later"]["runs"] >= 1
    assert said["parent"]["running"] is True and said["parent"]["runs"] >= 1


# -- resolving what a crash left ------------------------------------------------------------

@pytest.mark.parametrize(("kind", "point", "committed"), [
    ("postgresql", "after-votes", 0),      # both prepared, nothing decided: rolled back
    ("postgresql", "between-commits", 1),  # decided and half committed: committed
    ("sqlite", "after-votes", 0),          # SQLite, the decider, had not committed yet
    ("sqlite", "after-decision", 1),       # decided in SQLite (it commits with the decision)
])
def test_a_crashed_process_branches_are_resolved_by_automatic_recovery(
        kind: str, point: str, committed: int, pg_dsns: list[str],
        request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
        ) -> None:
    first = _first(pg_dsns, recover_interval=INTERVAL)
    second = second_database(kind, request, tmp_path, recover_interval=INTERVAL)
    _crash([pg_dsns[0], second.settings.dsn], point)
    left = prepared(pg_dsns[0]) + (prepared(pg_dsns[1]) if kind == "postgresql" else [])
    assert left
    before = autorecovery.stats()
    caplog.set_level(logging.INFO, logger="mother.tm.recovery")
    assert autorecovery.ensure_started(first)
    assert autorecovery.ensure_started(second) is (kind == "postgresql")
    _wait(lambda: not prepared(pg_dsns[0]) and not prepared(pg_dsns[1]))
    assert count(first, "stars") == count(second, "stars") == committed
    _wait(lambda: autorecovery.stats().committed + autorecovery.stats().rolled_back
          > before.committed + before.rolled_back, timeout=5)
    after = autorecovery.stats()
    assert (after.committed - before.committed, after.rolled_back - before.rolled_back) == \
        ((len(left), 0) if committed else (0, len(left)))
    assert after.failed == before.failed and after.errors == before.errors
    assert after.runs > before.runs and after.last_run_at >= time.time() - BOUND
    assert any(r.levelno == logging.INFO and r.getMessage().startswith(
        "automatic recovery of default, second") for r in caplog.records), caplog.text
    mother.close_all()


def test_automatic_recovery_leaves_branches_younger_than_recover_min_age(
        pg_dsns: list[str], request: pytest.FixtureRequest, tmp_path: Path) -> None:
    first = _first(pg_dsns, recover_interval=INTERVAL, recover_min_age=60)
    second = second_database("postgresql", request, tmp_path, recover_interval=INTERVAL,
                             recover_min_age=0.05)
    _crash(pg_dsns, "between-commits")  # decided: only the second branch is left
    left = prepared(pg_dsns[1])
    assert len(left) == 1
    before = autorecovery.stats()
    assert autorecovery.ensure_started(first) and autorecovery.ensure_started(second)
    _wait(lambda: autorecovery.stats().runs >= before.runs + 5)
    # the run covers both databases and waits for the longer grace (60 s)
    assert prepared(pg_dsns[1]) == left and count(second, "stars") == 0
    first = _first(pg_dsns, recover_interval=INTERVAL, recover_min_age=0.05)  # replaced
    assert autorecovery.ensure_started(first)
    _wait(lambda: not prepared(pg_dsns[1]))
    assert count(second, "stars") == 1
    mother.close_all()


def test_processes_recovering_at_once_resolve_every_branch_once(
        pg_dsns: list[str], request: pytest.FixtureRequest, tmp_path: Path) -> None:
    first = _first(pg_dsns, recover_interval="0.05")
    second = second_database("postgresql", request, tmp_path, recover_interval="0.05")
    for point in ("after-votes", "between-commits", "after-votes", "between-commits"):
        _crash(pg_dsns, point)
    assert len(prepared(pg_dsns[0]) + prepared(pg_dsns[1])) == 6
    go = tmp_path / "go"
    others = [subprocess.Popen(child("tm_autorecovery_child", "serve", "0.05", *pg_dsns, str(go)),
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    for other in others:
        assert json.loads(other.stdout.readline()) == {"ready": True}
    before = autorecovery.stats()
    go.touch()  # all three start together
    assert autorecovery.ensure_started(first) and autorecovery.ensure_started(second)
    _wait(lambda: not prepared(pg_dsns[0]) and not prepared(pg_dsns[1]))
    reports = []
    for other in others:
        out, err = other.communicate(timeout=BOUND)
        assert other.returncode == 0, err
        reports.append(json.loads(out))
    _wait(lambda: autorecovery.stats().runs > before.runs, timeout=5)
    mine = autorecovery.stats()
    reports.append({"committed": mine.committed - before.committed,
                    "rolled_back": mine.rolled_back - before.rolled_back,
                    "errors": mine.errors - before.errors, "running": mine.running})
    assert all(report["running"] and report["errors"] == 0 for report in reports), reports
    assert sum(report["committed"] for report in reports) == 2, reports
    assert sum(report["rolled_back"] for report in reports) == 4, reports
    assert count(first, "stars") == count(second, "stars") == 2
    mother.close_all()


def test_errors_are_counted_and_logged_and_the_thread_goes_on(
        kind: str, pg_dsns: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
        ) -> None:
    first = _first(pg_dsns, recover_interval=INTERVAL)
    # a configured database that cannot be reached: every run fails until it is replaced
    unreachable = {"postgresql": pg_dsns[0].replace("dbname=", "dbname=mother_missing_"),
                   "sqlite": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"}[kind]
    assert "mother_missing_" in unreachable or kind == "sqlite"
    mother.init_mother(dsn=unreachable, name="gone", twophase=False, recover_interval=INTERVAL)
    caplog.set_level(logging.ERROR, logger="mother.tm.recovery")
    before = autorecovery.stats()
    assert autorecovery.ensure_started(first)
    _wait(lambda: autorecovery.stats().errors >= before.errors + 3)
    failing = autorecovery.stats()
    assert failing.running and failing.runs >= failing.errors
    assert "Error" in (failing.last_error or "")
    assert any(r.getMessage().startswith("automatic recovery of default, gone failed")
               for r in caplog.records), caplog.text
    mother.init_mother(dsn=f"sqlite:///{tmp_path / 'gone.db'}", name="gone",
                       recover_interval=INTERVAL)  # the operator fixes it
    _wait(lambda: (autorecovery.stats().last_run_at or 0) > time.time() - 1
          and autorecovery.stats().runs > failing.runs + 2)
    healed = autorecovery.stats()
    assert healed.errors <= failing.errors + 1  # at most a run that had already started
    assert healed.running
    mother.close_all()
