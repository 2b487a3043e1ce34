"""mother.dialects._psycopg: the fence around psycopg's internals and its version check."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mother.dialects import _psycopg
from mother.errors import UnsupportedDriverError

SRC = Path(__file__).resolve().parents[2] / "src" / "mother"
#: what only the fence may touch: psycopg's undocumented parts
INTERNALS = re.compile(r"\bgenerators\b|\bconn\.wait\(|\bconn\.lock\b|\bTransformer\b|"
                       r"dump_sequence|set_pgresult|error_from_result|psycopg\._")


@pytest.mark.parametrize("version", ["3.0.18", "3.1.19", "3.4.0", "4.0", "3.4.0.dev1"])
def test_an_unsupported_psycopg_is_refused_naming_the_range(version: str) -> None:
    with pytest.raises(UnsupportedDriverError,
                       match=rf"needs psycopg >= 3\.1\.20, < 3\.4 .* psycopg {re.escape(version)} "
                             "is installed"):
        _psycopg.check_version(version)


@pytest.mark.parametrize("version", ["3.1.20", "3.2.0", "3.3.9", "3.3.10.dev2"])
def test_a_supported_psycopg_passes(version: str) -> None:
    _psycopg.check_version(version)


def test_an_unreadable_version_is_refused() -> None:
    with pytest.raises(UnsupportedDriverError, match="unreadable version 'x3'"):
        _psycopg.check_version("x3")


def test_an_unsupported_psycopg_fails_when_the_postgresql_dialect_is_imported() -> None:
    # a fake version, set before anything of dbmother is imported; SQLite needs no psycopg
    code = ("import psycopg; psycopg.__version__ = '3.0.1'\n"
            "import mother\n"
            "try:\n    import mother.dialects.postgres\n"
            "except ImportError as error:\n    print(type(error).__name__, error)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC.parent)}, check=True)
    assert done.stdout.startswith("UnsupportedDriverError dbmother needs psycopg >= 3.1.20, "
                                  "< 3.4"), done.stdout + done.stderr
    assert "psycopg 3.0.1 is installed" in done.stdout


def test_no_module_but_the_fence_touches_psycopg_internals() -> None:
    found = [f"{path.relative_to(SRC)}: {match[0]}" for path in sorted(SRC.rglob("*.py"))
             if path.name != "_psycopg.py"
             for match in INTERNALS.finditer(path.read_text())]
    assert found == []


def test_write_rows_copies_what_write_row_copies_a_chunk_at_a_time(pgdb) -> None:
    odd = ["tab\there", "new\nline", "back\\slash", "\\N", None, "", "é ✓", "cr\rlf"]
    rows = [(f"{odd[i % len(odd)]} {i}" if i % 9 else odd[i % len(odd)], i % 7)
            for i in range(_psycopg.COPY_CHUNK * 2 + 17)]
    conn = pgdb.dialect.connect()
    try:
        copy = "COPY stars (star_name, star_mass) FROM STDIN"
        read = "SELECT star_name, star_mass FROM stars ORDER BY star_id"
        with conn.cursor() as cur:
            with cur.copy(copy) as out:
                _psycopg.write_rows(out, iter(rows))
            assert cur.rowcount == len(rows)
            chunked = [tuple(row.values()) for row in cur.execute(read)]
            cur.execute("TRUNCATE stars CASCADE")
            with cur.copy(copy) as out:
                for row in rows:
                    out.write_row(row)
            assert [tuple(row.values()) for row in cur.execute(read)] == chunked == rows
        with conn.cursor() as cur, cur.copy(copy) as out:
            _psycopg.write_rows(out, [])  # nothing to write: an empty COPY
        conn.rollback()
    finally:
        conn.close()
