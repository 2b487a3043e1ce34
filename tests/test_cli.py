"""The ``mother`` command line: map, check, exec, recover, demo, options and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mother import MotherSession, close_all, init_mother, tutorial
from mother.cli import build_parser, main
from tests.support import ROOT


@pytest.fixture
def target(dsn: str) -> str:
    """A DSN whose database holds the tutorial tables (the CLI configures its own)."""
    tutorial.create(init_mother(dsn=dsn))
    close_all()
    return dsn


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_map_text(target: str, capsys) -> None:
    status, out, err = run(capsys, "map", "--dsn", target)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert "stars" in lines and "civilizations" in lines
    assert any(line.strip().startswith("star_id") and "primary key" in line for line in lines)
    assert "    (star_id) -> stars(star_id)" in lines
    assert any("through civilizations" in line for line in lines)


def test_map_json(target: str, capsys) -> None:
    status, out, _ = run(capsys, "map", "--json", "--dsn", target)
    data = json.loads(out)
    assert status == 0
    assert data["tables"]["planets"]["primary_key"] == ["planet_id"]
    assert data["tables"]["planets"]["foreign_keys"] == [
        {"columns": ["star_id"], "ref_table": "stars", "ref_columns": ["star_id"]}]
    assert "civilizations" in [link["table"] for link in data["links"]]


def test_check(target: str, kind: str, capsys) -> None:
    status, out, _ = run(capsys, "check", "--dsn", target)
    assert status == 0
    assert "connected" in out
    if kind == "postgresql":
        assert "server: PostgreSQL" in out
        assert "prepared transactions: enabled" in out
    else:
        assert "server: SQLite" in out
        assert "prepared transactions: disabled" in out
    # the fingerprint processes with schema_check compare with the schema they read
    database = init_mother(dsn=target, name="fingerprint", schema_check=60)
    database.refresh_schema()
    assert f"schema fingerprint: {database.schema_fingerprint}\n" in out


def test_exec_runs_a_file_in_one_transaction(target: str, tmp_path: Path, capsys) -> None:
    script = tmp_path / "load.sql"
    script.write_text("-- stars\nINSERT INTO stars (star_name) VALUES ('a; b');"
                      " INSERT INTO stars (star_name) VALUES ('c');\n")
    status, out, _ = run(capsys, "exec", str(script), "--dsn", target)
    assert status == 0 and "committed" in out
    with MotherSession(database=init_mother(dsn=target)) as session:
        assert session.mr_query("SELECT star_name FROM stars ORDER BY star_name") == [
            {"star_name": "a; b"}, {"star_name": "c"}]
    close_all()


def test_exec_failure_rolls_back_and_prints_one_line(target: str, tmp_path: Path,
                                                       capsys) -> None:
    script = tmp_path / "bad.sql"
    script.write_text("INSERT INTO stars (star_name) VALUES ('x');\n"
                      "INSERT INTO nowhere VALUES (1);\n")
    status, out, err = run(capsys, "exec", str(script), "--dsn", target)
    assert status == 1
    assert err.startswith("mother: error: ") and err.count("\n") == 1 and "nowhere" in err
    with MotherSession(database=init_mother(dsn=target)) as session:
        assert session.ov_query("SELECT COUNT(*) AS n FROM stars") == 0
    close_all()


def test_config_file_and_name(target: str, tmp_path: Path, capsys) -> None:
    ini = tmp_path / "m.ini"
    ini.write_text(f"[mother]\ndsn = sqlite:///{tmp_path}/none.db\n\n"
                   f"[mother:astro]\ndsn = {target}\n")
    status, out, _ = run(capsys, "-c", str(ini), "--name", "astro", "map", "--json")
    assert status == 0 and "stars" in json.loads(out)["tables"]
    status, out, _ = run(capsys, "map", "-c", str(ini), "--name", "astro")
    assert status == 0 and "stars" in out.splitlines()


def test_mother_dsn_environment(target: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MOTHER_DSN", target)
    status, out, _ = run(capsys, "map", "--json")
    assert status == 0 and "stars" in json.loads(out)["tables"]


@pytest.mark.parametrize("argv", [
    ["map"],  # no dsn at all
    ["check", "--dsn", "mysql://nope"],
    ["check", "-c", "/does/not/exist.ini"],
    ["exec", "/does/not/exist.sql", "--dsn", "sqlite://"],
    ["map", "--dsn", "sqlite://", "--name", "x", "-c", "/nope.ini"],
    ["check", "--dsn", "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=1"],
])
def test_errors_print_one_line(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                               capsys) -> None:
    monkeypatch.delenv("MOTHER_DSN", raising=False)
    status, _, err = run(capsys, *argv)
    assert status == 1
    assert err.startswith("mother: error: ") and err.count("\n") == 1


def test_usage_errors_exit_2(capsys) -> None:
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_an_option_value_that_names_a_command_is_a_value(target: str, capsys) -> None:
    """``--name map check`` is the database ``map`` and the command ``check`` (a pre-scan of
    the arguments used to take the value for the command and run ``map``)."""
    status, out, err = run(capsys, "--dsn", target, "--name", "map", "check")
    assert (status, err) == (0, "")
    assert out.startswith("database 'map': connected")


@pytest.mark.parametrize("command", [["map"], ["check"], ["exec", "f.sql"]])
def test_database_options_go_before_or_after_the_command(command: list[str]) -> None:
    parser = build_parser()
    before = parser.parse_args(["-c", "a.ini", "--name", "n", "--dsn", "d", "--create",
                                *command])
    after = parser.parse_args([*command, "-c", "a.ini", "--name", "n", "--dsn", "d",
                               "--create"])
    for args in (before, after):
        assert (args.config, args.name, args.dsn, args.create) == ("a.ini", "n", "d", True)
    mixed = parser.parse_args(["--dsn", "first", "-c", "a.ini", *command, "--dsn", "second"])
    assert (mixed.dsn, mixed.config, mixed.name, mixed.create) == ("second", "a.ini", None, None)


def test_demo_reads_a_dsn_given_before_the_command() -> None:
    """``--dsn`` before ``demo`` is the first database; each ``--dsn`` after it the next."""
    parser = build_parser()
    assert parser.parse_args(["--dsn", "sqlite:///a.db", "demo"]).dsn == "sqlite:///a.db"
    args = parser.parse_args(["demo", "--dsn", "sqlite:///b.db", "--port", "0"])
    assert (args.dsn, args.dsns, args.host, args.port) == (
        None, ["sqlite:///b.db"], "127.0.0.1", 0)
    both = parser.parse_args(["--dsn", "sqlite:///a.db", "demo", "--dsn", "sqlite:///b.db"])
    assert (both.dsn, both.dsns) == ("sqlite:///a.db", ["sqlite:///b.db"])
    plain = parser.parse_args(["demo"])  # the demo's own SQLite files
    assert plain.dsn is None and not hasattr(plain, "dsns")


def test_recover_with_a_missing_ini_file_says_so(tmp_path: Path, capsys) -> None:
    """Its error used to be a SystemExit message that the command line swallowed."""
    missing = tmp_path / "missing.ini"
    status, out, err = run(capsys, "recover", "-c", str(missing))
    assert (status, out) == (1, "")
    assert err == f"mother: error: setting 'config' = '{missing}': file not found or " \
                  "unreadable\n"
    assert run(capsys, "check", "-c", str(missing)) == (1, "", err)


def test_help_lists_every_command_and_exits_0(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("map", "check", "exec", "recover", "demo"))
    assert main(["map", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(option in out for option in ("--json", "--config", "--name", "--dsn", "--create"))


def test_console_script(target: str) -> None:
    result = subprocess.run([sys.executable, "-m", "mother.cli", "map", "--json", "--dsn", target],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert "stars" in json.loads(result.stdout)["tables"]
    bad = subprocess.run([sys.executable, "-m", "mother.cli", "map", "--dsn", "bogus://"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith("mother: error: setting 'dsn'")


def test_demo_serves_the_app_and_prints_its_url(tmp_path: Path) -> None:
    """``mother demo`` starts waitress on two fresh SQLite files and prints the URL it
    serves, and no warning before it (Pyramid's about pkg_resources is not the user's)."""
    import os
    import urllib.request

    mother_script = Path(sys.executable).with_name("mother")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONWARNINGS"}
    process = subprocess.Popen(
        [str(mother_script), "demo", "--port", "0", "--dsn", f"sqlite:///{tmp_path / 'demo.db'}",
         "--dsn", f"sqlite:///{tmp_path / 'other.db'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = None
        before: list[str] = []
        for line in process.stdout:
            if "Serving at" in line:
                url = line.split("Serving at", 1)[1].split()[0]
                break
            before.append(line)
        assert url is not None and url.startswith("http://127.0.0.1:")
        assert not [line for line in before if "Warning" in line], before
        with urllib.request.urlopen(url, timeout=30) as response:
            page = response.read().decode()
        assert response.status == 200
        assert "Sun" in page
    finally:
        process.terminate()
        process.wait(timeout=30)


def mother_script(*argv: str, cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess, float]:
    """Run the real console script; its output and how long it took."""
    import time

    start = time.monotonic()
    result = subprocess.run([str(Path(sys.executable).with_name("mother")), *argv],
                            capture_output=True, text=True, cwd=cwd, check=False, timeout=60)
    return result, time.monotonic() - start


@pytest.mark.parametrize("command", ["map", "check", "exec", "recover", "demo"])
@pytest.mark.parametrize("problem", ["no such database", "unknown role", "server down"])
def test_connection_errors_are_reported_once_and_at_once(pg_server: str, tmp_path: Path,
                                                         command: str, problem: str) -> None:
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(pg_server)
    params.update({"no such database": {"dbname": "mother_no_such_db"},
                   "unknown role": {"user": "mother_no_such_role"},
                   "server down": {"port": "1"}}[problem])
    dsn = psycopg.conninfo.make_conninfo(**params)
    script = tmp_path / "one.sql"
    script.write_text("SELECT 1;")
    argv = [command, *([str(script)] if command == "exec" else []),
            *(["--port", "0"] if command == "demo" else []), "--dsn", dsn]
    result, seconds = mother_script(*argv)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("mother: error: ")
    assert seconds < 5  # no pool_timeout wait
    if command != "recover":  # recover names each database it could not reach
        assert "the DSN comes from the --dsn option" in result.stderr


def test_a_connection_error_names_the_ini_setting(pg_server: str, tmp_path: Path,
                                                  capsys) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text("[mother:astro]\ndsn = host=127.0.0.1 port=1 user=x dbname=x\n")
    status, _, err = run(capsys, "map", "-c", str(ini), "--name", "astro")
    assert status == 1
    assert err.endswith(f"(the DSN comes from the dsn setting of [mother:astro] in {ini} "
                        "(or --dsn))\n")


def test_name_without_its_section_is_an_error(target: str, tmp_path: Path, capsys) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text(f"[mother]\ndsn = {target}\n")
    status, out, err = run(capsys, "map", "-c", str(ini), "--name", "astro")
    assert (status, out) == (1, "")
    assert err == f"mother: error: --name astro: {ini} has no [mother:astro] section (it has " \
                  "mother)\n"


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path, capsys) -> None:
    typo = tmp_path / "asrto.db"
    for command in (["map"], ["check"]):
        status, _, err = run(capsys, *command, "--dsn", f"sqlite:///{typo}")
        assert status == 1
        assert f"no SQLite database file {typo}: check the path, or set create = true" in err
    script = tmp_path / "schema.sql"
    script.write_text("CREATE TABLE t (a INTEGER);")
    status, _, err = run(capsys, "exec", str(script), "--dsn", f"sqlite:///{typo}")
    assert status == 1 and "(mother: --create)" in err
    assert not typo.exists()
    status, out, _ = run(capsys, "exec", str(script), "--create", "--dsn", f"sqlite:///{typo}")
    assert status == 0 and typo.exists()
    status, out, _ = run(capsys, "map", "--dsn", f"sqlite:///{typo}")
    assert status == 0 and "t" in out.splitlines()


@pytest.mark.parametrize("control", ["COMMIT;", "commit", "END TRANSACTION;", "ROLLBACK;",
                                     "BEGIN;", "SAVEPOINT x;", "RELEASE x;",
                                     "PREPARE TRANSACTION 'x';", "START TRANSACTION;"])
def test_exec_refuses_transaction_control_and_runs_nothing(target: str, tmp_path: Path,
                                                           control: str, capsys) -> None:
    script = tmp_path / "half.sql"
    script.write_text("INSERT INTO stars (star_name) VALUES ('first half');\n"
                      f"/* then */ {control}\nINSERT INTO stars (star_name) VALUES ('second');\n")
    status, _, err = run(capsys, "exec", str(script), "--dsn", target)
    assert status == 1
    assert err.startswith(f"mother: error: {script}, statement 2 ({control.split()[0].rstrip(';')}")
    assert "remove its transaction control statements (nothing was run)" in err
    with MotherSession(database=init_mother(dsn=target)) as session:
        assert session.ov_query("SELECT COUNT(*) AS n FROM stars") == 0
    close_all()


def test_exec_takes_quoted_and_compound_text_for_what_it_is(target: str, kind: str,
                                                            tmp_path: Path, capsys) -> None:
    body = ("CREATE TRIGGER t_named AFTER INSERT ON stars BEGIN UPDATE stars SET star_age = 1; "
            "END;" if kind == "sqlite" else
            "CREATE FUNCTION t_one() RETURNS int AS $x$ BEGIN RETURN 1; END; $x$ "
            "LANGUAGE plpgsql;")
    script = tmp_path / "ok.sql"
    script.write_text(f"-- COMMIT;\n{body}\nINSERT INTO stars (star_name) VALUES ('COMMIT;');\n")
    status, _, err = run(capsys, "exec", str(script), "--dsn", target)
    assert (status, err) == (0, "")
    with MotherSession(database=init_mother(dsn=target)) as session:
        assert session.mr_query("SELECT star_name FROM stars") == [{"star_name": "COMMIT;"}]
    close_all()


@pytest.mark.parametrize("settings", ["pool_max = 3", "pool_min = 1\npool_max = 3", "",
                                      "pool_type = limited\npool_max = 40"])
def test_recover_accepts_every_ini_that_check_accepts(target: str, tmp_path: Path,
                                                      settings: str, capsys) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text(f"[mother]\ndsn = {target}\n{settings}\n")
    checked, _, check_err = run(capsys, "check", "-c", str(ini))
    recovered, _, recover_err = run(capsys, "recover", "-c", str(ini))
    assert (checked == 0) == (recovered == 0), (check_err, recover_err)
    if checked:  # refused by both, with the same message
        assert check_err == recover_err != ""


def test_pgcluster_stop_leaves_a_cluster_it_did_not_start(tmp_path: Path) -> None:
    """``make clean`` runs ``pgcluster.py stop``: it must not stop another checkout's server."""
    import os

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "postmaster.pid").write_text("1\n")
    (tmp_path / "started-by").write_text("/some/other/checkout\n")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "pgcluster.py"), "stop"],
                            env={**os.environ, "MOTHER_TEST_PG_BASE": str(tmp_path)},
                            capture_output=True, text=True, check=True)
    assert "leaving the cluster on port" in result.stdout
    assert "/some/other/checkout started it, not this checkout" in result.stdout
    assert (tmp_path / "started-by").exists()
