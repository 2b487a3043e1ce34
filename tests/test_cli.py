"""The ``mother`` command line: map, check, exec, options and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from mother import MotherSession, close_all, init_mother, tutorial
from mother.cli import COMMANDS, Command, main


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


EXTRA = Command(lambda parser: parser.add_argument("--word", default="hi"),
                lambda args: print(f"extra says {args.word}") or 0)


def test_commands_can_be_added_lazily(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(COMMANDS, "extra", ("a plugged-in command", "test_cli:EXTRA"))
    monkeypatch.setitem(COMMANDS, "broken", ("never imported", "no_such_module:X"))
    status, out, _ = run(capsys, "extra", "--word", "hello")
    assert (status, out) == (0, "extra says hello\n")


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
    """``mother demo`` starts waitress on a fresh SQLite file and prints the URL it serves."""
    import urllib.request

    mother_script = Path(sys.executable).with_name("mother")
    process = subprocess.Popen(
        [str(mother_script), "demo", "--port", "0", "--dsn", f"sqlite:///{tmp_path / 'demo.db'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for line in process.stdout:
            if "Serving at" in line:
                url = line.split("Serving at", 1)[1].split()[0]
                break
        assert url is not None and url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=30) as response:
            page = response.read().decode()
        assert response.status == 200
        assert "Sun" in page
    finally:
        process.terminate()
        process.wait(timeout=30)
