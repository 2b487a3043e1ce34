"""Recovery: a real process dies mid-commit, then recover() makes both databases agree."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql as pg_sql
from psycopg.conninfo import conninfo_to_dict

import mother
from mother import tutorial
from mother.config import make_settings
from mother.errors import RecoveryError
from mother.tm import COMMIT_LOG, commitlog, recover
from mother.tm.recovery import main
from tests.support import ROOT, child
from tests.support.databases import count
from tests.support.pgserver import create_databases, drop_databases, with_db
from tests.support.pooler import sever
from tests.support.tm import prepared, second_database


@pytest.fixture
def two(pgdb: mother.Database, request: pytest.FixtureRequest, tmp_path: Path
        ) -> tuple[mother.Database, mother.Database]:
    return pgdb, second_database("postgresql", request, tmp_path)


def _crash(pg_dsns: list[str], point: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(child("tm_crash_child", pg_dsns[0], pg_dsns[1], point), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("point", "prepared_before", "committed"), [
    ("before-vote", (0, 0), 0),
    ("after-votes", (1, 1), 0),
    ("after-decision", (0, 1), 1),
    ("between-commits", (0, 1), 1),
])
def test_a_crash_at_each_point_is_resolved_so_both_databases_agree(
        two, pg_dsns: list[str], point: str, prepared_before: tuple[int, int],
        committed: int) -> None:
    first, second = two
    proc = _crash(pg_dsns, point)
    assert proc.returncode == 17, proc.stderr
    assert (len(prepared(pg_dsns[0])), len(prepared(pg_dsns[1]))) == prepared_before
    report = recover([first, second], log_retention=0, min_age=0)
    assert len(report.committed) == (prepared_before[1] if committed else 0)
    assert len(report.rolled_back) == (0 if committed else sum(prepared_before))
    assert not report.failed
    assert count(first, "stars") == count(second, "stars") == committed
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []
    assert _log_rows(first) == 0  # a recorded decision is no longer needed: cleaned


def _log_rows(database: mother.Database) -> int:
    try:
        return count(database, COMMIT_LOG, "WHERE global_id <> 'database'")  # not its id
    except psycopg.errors.UndefinedTable:  # never committed a decision
        return 0


def test_without_a_crash_nothing_is_left_to_recover(two, pg_dsns: list[str]) -> None:
    first, second = two
    proc = _crash(pg_dsns, "none")
    assert proc.returncode == 0 and "committed" in proc.stdout, proc.stderr
    report = recover([first, second])
    assert report.branches == [] and count(first, "stars") == count(second, "stars") == 1


def test_dry_run_reports_but_changes_nothing(two, pg_dsns: list[str]) -> None:
    first, second = two
    _crash(pg_dsns, "between-commits")
    report = recover([first, second], dry_run=True, min_age=0)
    assert len(report.committed) == 1 and "would COMMIT PREPARED" in report.describe()
    assert len(prepared(pg_dsns[1])) == 1 and count(second, "stars") == 0
    recover([first, second], min_age=0)
    assert count(second, "stars") == 1 and prepared(pg_dsns[1]) == []


def test_foreign_prepared_transactions_are_listed_and_left_alone(
        two, pg_dsns: list[str]) -> None:
    first, second = two
    with psycopg.connect(pg_dsns[0]) as conn:
        conn.execute("INSERT INTO stars (star_name) VALUES ('theirs')")
        conn.execute("PREPARE TRANSACTION 'someone-else:42'")
    try:
        report = recover([first, second])
        assert [(b.database, b.gid) for b in report.foreign] == [("default", "someone-else:42")]
        assert "left alone" in report.describe()
        assert prepared(pg_dsns[0]) == ["someone-else:42"]
    finally:
        with psycopg.connect(pg_dsns[0], autocommit=True) as conn:
            conn.execute("ROLLBACK PREPARED 'someone-else:42'")


def test_the_recover_command_resolves_databases_given_by_dsn(
        two, pg_dsns: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    first, second = two
    _crash(pg_dsns, "after-votes")
    assert main(["--dsn", pg_dsns[0], "--dsn", pg_dsns[1], "--min-age", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("ROLLBACK PREPARED") == 2
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []
    assert count(first, "stars") == count(second, "stars") == 0


def test_the_recover_command_reads_an_ini_file(
        two, pg_dsns: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = two
    ini = tmp_path / "app.ini"
    ini.write_text(f"[mother]\ndsn = {pg_dsns[0]}\n\n[mother:second]\ndsn = {pg_dsns[1]}\n")
    _crash(pg_dsns, "between-commits")
    assert main(["-c", str(ini), "--min-age", "0"]) == 0
    assert "COMMIT PREPARED" in capsys.readouterr().out
    assert count(first, "stars") == count(second, "stars") == 1


@pytest.mark.parametrize("before", [False, True])
def test_mother_recover_runs_through_the_cli(
        two, pg_dsns: list[str], before: bool, capsys: pytest.CaptureFixture[str]) -> None:
    from mother.cli import main as cli_main

    first, second = two
    _crash(pg_dsns, "between-commits")
    dsns = ["--dsn", pg_dsns[0], "--dsn", pg_dsns[1]]
    argv = ["--dsn", pg_dsns[0], "recover", "--dsn", pg_dsns[1]] if before else \
        ["recover", *dsns]
    assert cli_main([*argv, "--dry-run", "--min-age", "0"]) == 0
    assert "would COMMIT PREPARED" in capsys.readouterr().out and count(second, "stars") == 0
    assert cli_main(["recover", *dsns, "--min-age", "0"]) == 0
    assert count(first, "stars") == count(second, "stars") == 1


def test_recovery_reuses_the_connections_it_is_given_and_closes_them_after_a_failure(
        two, pg_dsns: list[str]) -> None:
    first, second = two
    kept: dict[str, object] = {}
    recover([first, second], connections=kept, clean=False)
    opened = dict(kept)
    assert sorted(opened) == ["default", "second"]
    _crash(pg_dsns, "after-decision")
    report = recover([first, second], connections=kept, min_age=0)
    assert len(report.committed) == 1 and kept == opened  # the same connections, still open
    assert not any(first.dialect.is_broken(conn) for conn in kept.values())
    sever(kept["default"])  # one of them dies
    with pytest.raises(psycopg.OperationalError):
        recover([first, second], connections=kept)
    assert kept == {} and all(first.dialect.is_broken(conn) for conn in opened.values())
    assert count(first, "stars") == count(second, "stars") == 1


def test_a_young_branch_is_left_to_its_process_even_when_decided(
        two, pg_dsns: list[str]) -> None:
    first, second = two
    _crash(pg_dsns, "between-commits")  # decided: only the second branch is left prepared
    report = recover([first, second], min_age=60)
    assert [(b.database, b.action) for b in report.branches] == [("second", "waiting")]
    assert len(prepared(pg_dsns[1])) == 1 and count(second, "stars") == 0
    report = recover([first, second], min_age=0)
    assert len(report.committed) == 1 and count(second, "stars") == 1


def _database(name: str, dsn: str) -> mother.Database:
    """A database as ``mother recover`` makes it: new, so nothing it knows is cached."""
    return mother.Database(name, make_settings(None, name, dsn=dsn))


@pytest.fixture
def cloned(pg_server: str) -> Iterator[tuple[str, str]]:
    """The DSNs of a database that has its commit log (its database id) and of a copy made
    from it by ``CREATE DATABASE ... TEMPLATE``: the two carry one database id."""
    base = f"mother_test_{uuid.uuid4().hex[:10]}"
    names = [f"{base}_orig", f"{base}_copy"]
    [original] = create_databases(pg_server, names[:1])
    try:
        database = _database("orig", original)
        try:
            tutorial.create(database)
            session = mother.MotherSession("id", database=database)
            commitlog.database_id(database, session)  # the log and its id row
            session.rollback()
        finally:
            database.close()
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(pg_sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                pg_sql.Identifier(names[1]), pg_sql.Identifier(names[0])))
        yield original, with_db(pg_server, names[1])
    finally:
        drop_databases(pg_server, names)


def _database_id(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(f"SELECT outcome FROM {COMMIT_LOG} WHERE global_id = 'database'"
                           ).fetchone()
    assert row is not None
    return str(row[0])


def test_recovery_refuses_two_databases_of_one_id_then_commits_once_one_has_a_new_id(
        cloned: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    original, copy = cloned
    shared = _database_id(original)
    assert _database_id(copy) == shared  # copied with the rest
    # the copy decides (the first session's database) and commits; the process dies in
    # tpc_finish: the original's branch stays prepared, decided commit in the copy's log
    proc = _crash([copy, original], "after-decision")
    assert proc.returncode == 17, proc.stderr
    [branch] = prepared(original)
    assert prepared(copy) == [] and f":{shared}:" in branch
    dbnames = [conninfo_to_dict(dsn)["dbname"] for dsn in (original, copy)]
    for order in ([("copy", copy), ("orig", original)], [("orig", original), ("copy", copy)]):
        dbs = [_database(name, dsn) for name, dsn in order]
        try:
            with pytest.raises(RecoveryError) as caught:
                recover(dbs, min_age=0, log_retention=0)
        finally:
            for db in dbs:
                db.close()
        message = str(caught.value)
        assert "'copy'" in message and "'orig'" in message and repr(shared) in message
        assert all(name in message for name in dbnames) and "decided nothing" in message
        # the decision is in the copy: the original is the one to give a new id
        assert f"give 'orig' ({dbnames[0]} on " in message
        assert "DELETE FROM mother_commit_log WHERE global_id = 'database'" in message
        assert prepared(original) == [branch] and prepared(copy) == []  # nothing decided
        args = [arg for name, dsn in order for arg in ("--dsn", dsn)]
        assert main([*args, "--min-age", "0"]) == 1
        assert "mother recover: error: " in capsys.readouterr().err
        assert prepared(original) == [branch]
    # as the message says: a new id for the original (its log keeps its decisions)
    with psycopg.connect(original, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {COMMIT_LOG} WHERE global_id = 'database'")
    assert main(["--dsn", original, "--dsn", copy, "--min-age", "0"]) == 0
    assert "COMMIT PREPARED" in capsys.readouterr().out
    assert prepared(original) == prepared(copy) == []
    for dsn in (original, copy):
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM stars WHERE star_name = 'crash'"
                                ).fetchone() == (1,)


def test_one_database_given_twice_is_not_refused(two, pg_dsns: list[str]) -> None:
    first, second = two
    again = _database("again", pg_dsns[0])  # the same DSN: surely the same database
    try:
        _crash(pg_dsns, "after-decision")
        report = recover([first, again, second], min_age=0)
    finally:
        again.close()
    assert len(report.committed) == 1 and not report.failed
    assert count(first, "stars") == count(second, "stars") == 1


def test_with_nothing_in_doubt_the_copy_is_still_refused_and_told_to_get_a_new_id(
        cloned: tuple[str, str]) -> None:
    original, copy = cloned
    dbs = [_database("orig", original), _database("copy", copy)]
    try:
        with pytest.raises(RecoveryError, match="Give the copy a new id: in it, run DELETE"):
            recover(dbs, dry_run=True)
    finally:
        for db in dbs:
            db.close()
