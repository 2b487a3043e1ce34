"""The README tour and the Quickstart chapter run as written, on a new SQLite file and on
PostgreSQL: every Python block, in order, as one script in an empty directory; every
console block of the Quickstart after it. (The README's console blocks run the test suite
itself and the buildout: they are the commands that run this test.)"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

BLOCK = re.compile(r"^\.\. code-block:: (\w+)\n\n((?:(?:    .*)?\n)+)", re.MULTILINE)
#: the SQLite DSN each page writes, replaced by the PostgreSQL one for that run
PAGES = {"README.rst": "sqlite:///astro.db", "docs/quickstart.rst": "sqlite:///quickstart.db"}
#: console blocks that are not run here, by first command (they run this test, or need network)
NOT_RUN = {"make", "python3", "bo/bin/buildout", "bin/py", "bin/test", "bin/zconsole",
           "bin/runwsgi", ".venv/bin/pip"}


def blocks(page: str) -> list[tuple[str, str]]:
    """(language, code) of every code block of a page, dedented."""
    text = (ROOT / page).read_text(encoding="utf-8")
    return [(language, "\n".join(line[4:] for line in body.splitlines()).strip() + "\n")
            for language, body in BLOCK.findall(text)]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_block_is_python_or_console(page: str) -> None:
    found = blocks(page)
    assert found and {language for language, _ in found} <= {"python", "console"}
    literal = re.findall(r"::\n\n    ", (ROOT / page).read_text(encoding="utf-8"))
    assert literal == [], "write code as '.. code-block:: python' (or console) to have it run"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_runs_as_written(page: str, kind: str, dsn: str, tmp_path: Path) -> None:
    written = PAGES[page]
    use = written if kind == "sqlite" else dsn

    def adapt(code: str) -> str:
        return code.replace(written, use)

    python = [adapt(code) for language, code in blocks(page) if language == "python"]
    script = tmp_path / "page.py"
    script.write_text("\n".join(python), encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MOTHER_DSN", None)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for language, code in blocks(page):
        if language != "console":
            continue
        for line in code.splitlines():
            command = line.split("#", 1)[0].strip()
            if not command or command.split()[0] in NOT_RUN:
                continue
            quoted = adapt(command).replace(use, shlex.quote(use))
            done = subprocess.run(quoted, shell=True, cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, (command, done.stderr)
