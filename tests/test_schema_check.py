"""How the cached schema learns about a migration (``schema_check``), across real processes.

A child process (tests/support/schema_child.py) has the schema cached; the test
process migrates; the child must see the new column without a restart when
``schema_check`` is on, and keep its cache when it is off. A column dropped
under a cache says what to do.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

import mother
from mother import events
from tests.support import ROOT, child
from tests.support.databases import run_ddl

ADD = "ALTER TABLE stars ADD COLUMN star_colour TEXT"


@pytest.fixture
def database(db: mother.Database) -> Iterator[mother.Database]:
    yield db
    mother.close_all()


def _child(database: mother.Database, check: str, seconds: float) -> dict[str, object]:
    proc = subprocess.Popen(child("schema_child", database.settings.dsn, check, str(seconds)),
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)[1]
        assert "star_colour" not in json.loads(line)["columns"]
        run_ddl(database, ADD)  # the migration, by another process (this one)
        out, err = proc.communicate("migrated\n", timeout=seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def test_a_running_process_reads_the_schema_again_after_a_migration(
        database: mother.Database) -> None:
    result = _child(database, "0.2", seconds=20)
    assert result["seen"] is True, result
    database.refresh_schema()
    with mother.MotherSession() as session:
        colours = session.mr_query("SELECT star_name, star_colour FROM stars ORDER BY star_name")
    assert colours == [{"star_name": "Sol", "star_colour": None},
                       {"star_name": "Vega", "star_colour": "blue"}]


def test_without_schema_check_a_running_process_keeps_its_cache(
        database: mother.Database) -> None:
    result = _child(database, "off", seconds=1.0)
    assert result["seen"] is False and int(str(result["sessions"])) > 5, result


def _round_trips(work: Callable[[], object]) -> list[str]:
    with events.capture() as trace:
        work()
    return [statement.sql for event in trace.events if isinstance(event, events.RoundTrip)
            for statement in event.statements]


def _one_session() -> None:
    with mother.MotherSession() as session:
        session.ov_query("SELECT 1")


def test_the_check_is_one_round_trip_and_only_when_due(dsn: str) -> None:
    database = mother.init_mother(dsn=dsn, schema_check=1.0, pool_min=1, recover_interval=None)
    mother.tutorial.create(database)
    first = database.schema
    fingerprint = database.schema_fingerprint
    assert fingerprint
    quiet = _round_trips(lambda: (_one_session(), _one_session()))
    assert not any("schema_version" in sql or "md5" in sql for sql in quiet), quiet
    time.sleep(1.05)
    due = _round_trips(_one_session)
    checks = [sql for sql in due if "schema_version" in sql or "md5" in sql]
    assert len(checks) == 1, due
    assert database.schema is first  # unchanged catalog: nothing read again
    run_ddl(database, ADD)
    time.sleep(1.05)
    _one_session()
    assert database.schema is not first and "star_colour" in database.schema.table("stars").columns
    assert database.schema_fingerprint != fingerprint
    mother.close_all()


def test_a_read_only_session_on_the_primary_checks_too(dsn: str) -> None:
    database = mother.init_mother(dsn=dsn, schema_check=0.2, pool_min=1, recover_interval=None)
    mother.tutorial.create(database)
    first = database.schema
    run_ddl(database, ADD)
    time.sleep(0.25)
    with mother.MotherSession(readonly=True) as session:  # no replicas: on the primary
        session.ov_query("SELECT 1")
    assert database.schema is not first and "star_colour" in database.schema.table("stars").columns
    mother.close_all()


@pytest.mark.parametrize("check", ["off", "3600"])
def test_a_dropped_column_says_what_to_do(dsn: str, check: str) -> None:
    database = mother.init_mother(dsn=dsn, schema_check=check, pool_min=1, recover_interval=None)
    mother.tutorial.create(database)
    with mother.MotherSession() as session:
        mother.getMotherObj("stars", {"star_id": 1, "star_name": "Sol", "star_mass": 1},
                            mother.MO_SAVE, session)
    run_ddl(database, "ALTER TABLE stars DROP COLUMN star_mass")  # the cache still has it
    with pytest.raises(Exception) as info, mother.MotherSession() as session:
        mother.getMotherObj("stars", {"star_id": 1}, mother.MO_LOAD, session)
    assert database.dialect.is_missing_column(info.value), info.value
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "database 'default': dbmother read its schema" in notes
    assert "dropped or renamed" in notes
    with mother.MotherSession() as session:
        if check == "off":  # nothing changes by itself: the note says what to call
            assert "refresh_schema()" in notes and "set schema_check" in notes
            assert "star_mass" in database.schema.table("stars").columns
        else:  # the error made this process check at its next session: it loads again
            assert "schema_check is on" in notes
            star = mother.getMotherObj("stars", {"star_id": 1}, mother.MO_LOAD, session)
            assert star.getField("star_name") == "Sol"
            assert "star_mass" not in database.schema.table("stars").columns
    mother.close_all()


def test_a_failing_check_is_logged_and_tried_again_a_period_later(
        database: mother.Database, caplog: pytest.LogCaptureFixture) -> None:
    checking = mother.init_mother(dsn=database.settings.dsn, name="checking", pool_min=1,
                                  recover_interval=None, schema_check=60)
    first = checking.schema
    conn = checking.dialect.connect()
    conn.close()  # the check's round trip fails
    with pytest.raises(Exception) as info, mother.MotherSession(database="checking") as session:
        session.ov_query("SELECT no_such_column FROM stars")
    assert checking.dialect.is_missing_column(info.value)
    assert checking.schema_check_due()  # at once, after a missing column
    with caplog.at_level(logging.WARNING, logger="mother.database"):
        assert checking.check_schema(conn) is False
    assert any(r.getMessage().startswith("schema check of checking failed")
               for r in caplog.records), caplog.text
    assert checking.schema is first and not checking.schema_check_due()  # not every session
    with mother.MotherSession(database="checking") as session:  # sessions go on
        assert session.ov_query("SELECT 1") == 1
