"""The unit of work of ``bench_uow`` through PgBouncer in transaction mode (run by hand;
figures go in docs/pgbouncer.rst).

    python -m benchmarks.bench_pooler --dsn SERVER_DSN [--n 2000]

In a scratch database of the server, with PgBouncer (``tools/pgbouncer.py``: transaction
mode, port ``MOTHER_TEST_PGBOUNCER_PORT``, default 26432) in front of it, the same
unit of work ("load one row by key, change a column, add two child rows, commit",
:mod:`benchmarks.bench_uow`) runs in turns (``timing.py``): through a session with
``pooler = pgbouncer-transaction``, in Mother's immediate style, and by hand with
psycopg (its preparation off, as PgBouncer 1.18 in transaction mode requires), all
through PgBouncer; and, for reference, a session and psycopg straight to the server.
"""

from __future__ import annotations

import argparse
import itertools
import os

import psycopg_pool
from psycopg.rows import dict_row

import mother
from benchmarks.bench_uow import by_hand, immediate, setup, with_session
from benchmarks.timing import create_scratch, drop_scratch, fresh, interleaved
from tools import pgbouncer


def _pool(dsn: str, **kwargs: object) -> psycopg_pool.ConnectionPool:
    return psycopg_pool.ConnectionPool(dsn, min_size=1, max_size=2, open=True,
                                       kwargs={"row_factory": dict_row, **kwargs})


def compare(server_dsn: str, n: int) -> dict[str, float]:
    """Median microseconds per unit of work of each contender."""
    name, direct = create_scratch(server_dsn)
    started = False
    try:
        pooled = pgbouncer.through(direct)
        started = pgbouncer.ensure(server_dsn)[1]
        setup(direct, name="direct")
        mother.init_mother(dsn=pooled, pool_min=1, pool_max=2, pooler="pgbouncer-transaction")
        raw_pooled = _pool(pooled, prepare_threshold=None)
        raw_direct = _pool(direct)
        numbers = itertools.count(1000)
        try:
            return interleaved({
                "session, pgbouncer": fresh(with_session, numbers),
                "immediate, pgbouncer": fresh(immediate, numbers),
                "raw, pgbouncer": fresh(by_hand(raw_pooled), numbers),
                "session, direct": fresh(lambda i: with_session(i, database="direct"), numbers),
                "raw, direct": fresh(by_hand(raw_direct), numbers)}, n)
        finally:
            raw_pooled.close()
            raw_direct.close()
    finally:
        mother.close_all()
        drop_scratch(server_dsn, name)
        if started:
            pgbouncer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("MOTHER_TEST_PG_DSN"),
                        help="the PostgreSQL server (its maintenance database)")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    result = compare(args.dsn, args.n)
    print(f"unit of work, {args.n} runs each, in turns; median per unit of work:")
    for label, value in result.items():
        print(f"  {label:22}: {value:8.1f} us  ({value / result['raw, pgbouncer']:.2f} x raw "
              "through pgbouncer)")


if __name__ == "__main__":
    main()
