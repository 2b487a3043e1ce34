"""Run the two-phase commit chaos (tests/tm_chaos.py) for a chosen time and print its table.

Two fresh databases are made on the server and dropped afterwards. Examples::

    MOTHER_TEST_PG_DSN="host=127.0.0.1 port=54329 user=postgres dbname=postgres" \\
        .venv/bin/python tools/tm_chaos.py --seconds 25
    .venv/bin/python tools/tm_chaos.py --seconds 10 --no-kills --no-online --recover-interval off

The exit status is 1 when the run found an anomaly.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from tm_chaos import run_chaos  # noqa: E402


def _seconds_or_off(value: str) -> float | None:
    return None if value.lower() in ("off", "none", "0") else float(value)


def _server() -> str:
    dsn = os.environ.get("MOTHER_TEST_PG_DSN")
    if dsn:
        return dsn
    return subprocess.run([sys.executable, str(ROOT / "tools" / "pgcluster.py"), "ensure"],
                          check=True, capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--no-kills", action="store_true", help="never kill a worker")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(0.1, 0.5),
                        metavar=("MIN", "MAX"), help="seconds between kills (default 0.1 0.5)")
    parser.add_argument("--no-online", action="store_true",
                        help="no recovering process (recovery only at the end)")
    parser.add_argument("--online-every", type=float, default=0.05)
    parser.add_argument("--min-age", type=_seconds_or_off, default=0.0,
                        help="min_age of the online recoverer ('none': recover()'s default)")
    parser.add_argument("--recover-interval", type=_seconds_or_off, default=0.5,
                        help="automatic recovery in the workers ('off' for none)")
    parser.add_argument("--widen", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the last recovery's report is in the table
    server = _server()
    names = [f"mother_chaos_{uuid.uuid4().hex[:10]}_{suffix}" for suffix in ("a", "b")]
    params = psycopg.conninfo.conninfo_to_dict(server)
    dsns = [psycopg.conninfo.make_conninfo(**{**params, "dbname": name}) for name in names]
    with psycopg.connect(server, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory(prefix="mother-chaos-") as workdir:
            result = run_chaos(
                dsns, Path(workdir), seconds=args.seconds, workers=args.workers,
                kill_every=None if args.no_kills else tuple(args.kill_every),
                online_every=None if args.no_online else args.online_every,
                online_min_age=args.min_age, recover_interval=args.recover_interval,
                widen=args.widen, seed=args.seed)
        print(result.table())
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            for gid, database in conn.execute(
                    "SELECT gid, database FROM pg_prepared_xacts WHERE database = ANY(%s)",
                    (names,)).fetchall():
                with psycopg.connect(dsns[names.index(database)], autocommit=True) as other:
                    other.execute(psycopg.sql.SQL("ROLLBACK PREPARED {}").format(gid))
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 1 if sum(result.anomalies.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
