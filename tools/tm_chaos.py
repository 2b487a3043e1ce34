"""Run the two-phase commit chaos (tests/support/tm_chaos.py) for a chosen time; print its table.

Two fresh databases are made on the test server (``tools/pgcluster.py``) and
dropped afterwards. From the checkout's root, for example::

    MOTHER_TEST_PG_DSN="host=127.0.0.1 port=54329 user=postgres dbname=postgres" \\
        .venv/bin/python -m tools.tm_chaos --seconds 25
    .venv/bin/python -m tools.tm_chaos --seconds 10 --no-kills --no-online --recover-interval off
    .venv/bin/python -m tools.tm_chaos --seconds 30 --no-kills --no-online --recover-interval 0.2 \
        --recover-min-age 3 --dying vote finish --drain      # tests/tm/test_many_processes.py

The exit status is 1 when the run found an anomaly.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import uuid
from pathlib import Path

from tests.support.pgserver import create_databases, drop_databases, server_dsn
from tests.support.tm_chaos import run_chaos


def _seconds_or_off(value: str) -> float | None:
    return None if value.lower() in ("off", "none", "0") else float(value)


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
    parser.add_argument("--recover-min-age", type=float, default=5.0,
                        help="the workers' automatic recovery grace (default 5)")
    parser.add_argument("--dying", nargs="*", default=[], choices=("vote", "finish"),
                        help="phases the first workers end themselves in, once each")
    parser.add_argument("--drain", action="store_true",
                        help="stopped workers recover until nothing is prepared, then report")
    parser.add_argument("--widen", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the last recovery's report is in the table
    server = server_dsn()
    names = [f"mother_chaos_{uuid.uuid4().hex[:10]}_{suffix}" for suffix in ("a", "b")]
    dsns = create_databases(server, names)
    try:
        with tempfile.TemporaryDirectory(prefix="mother-chaos-") as workdir:
            result = run_chaos(
                dsns, Path(workdir), seconds=args.seconds, workers=args.workers,
                kill_every=None if args.no_kills else tuple(args.kill_every),
                online_every=None if args.no_online else args.online_every,
                online_min_age=args.min_age, recover_interval=args.recover_interval,
                recover_min_age=args.recover_min_age, widen=args.widen, dying=args.dying,
                drain=args.drain, seed=args.seed)
        print(result.table())
        for stats in result.worker_stats:
            print("worker recovery:", ", ".join(f"{k} {v}" for k, v in stats.items()))
    finally:
        drop_databases(server, names)
    return 1 if sum(result.anomalies.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
