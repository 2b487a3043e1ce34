"""How long a round trip takes after the client has worked a while (run by hand).

A ``SELECT 1`` through libpq (psycopg's ``pgconn.exec_``: no Python in between)
is timed after the client has kept its CPU busy for GAP microseconds, for each
gap in turns. On a machine whose idle CPUs sleep deeply (a virtual machine's
vCPUs, power saving), the server's backend and the client's own CPU fall asleep
during a long gap, and the next round trip pays for waking them: a unit of work
that sends two round trips with a few hundred microseconds of Python before each
pays that on both, while raw psycopg's six quick ones mostly do not. The figures
explain part of the one-database ratios of ``bench_tm`` (see docs/performance.rst).

Usage:
  MOTHER_TEST_PG_DSN="host=127.0.0.1 port=54329 user=postgres dbname=postgres" \\
      .venv/bin/python -m benchmarks.bench_wake [ROUNDS] [--repeat RUNS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg

GAPS = (0, 25, 50, 100, 200, 400, 800, 1600)


def busy(microseconds: int) -> None:
    """Keep this CPU busy (not asleep) for ``microseconds``."""
    end = time.perf_counter_ns() + microseconds * 1000
    while time.perf_counter_ns() < end:
        pass


def round_trips(pgconn: psycopg.pq.abc.PGconn, gap: int, rounds: int) -> float:
    """Median microseconds of a ``SELECT 1`` sent ``gap`` microseconds after the last."""
    samples = []
    for _ in range(rounds):
        busy(gap)
        start = time.perf_counter_ns()
        pgconn.exec_(b"SELECT 1")
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rounds", nargs="?", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dsn = os.environ.get("MOTHER_TEST_PG_DSN",
                         "host=127.0.0.1 port=54329 user=postgres dbname=postgres")
    with psycopg.connect(dsn, autocommit=True) as conn:
        runs = [{gap: round_trips(conn.pgconn, gap, args.rounds) for gap in GAPS}
                for _ in range(args.repeat)]
    print(f"SELECT 1 through libpq, median of {args.rounds} per gap, {args.repeat} runs")
    for gap in GAPS:
        each = " ".join(f"{run[gap]:5.0f}" for run in runs)
        print(f"  after {gap:5d} us of client work: {each} us")


if __name__ == "__main__":
    main()
