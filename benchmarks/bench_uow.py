"""Benchmarks of the unit of work (run by hand; figures go in docs/unitofwork.rst).

    python benchmarks/bench_uow.py uow     --dsn DSN [--n 2000]   # session vs raw psycopg
    python benchmarks/bench_uow.py latency --dsn DSN [--delay 1ms] # same, 1 ms away (root)
    python benchmarks/bench_uow.py memory  [--rows 100000]         # bytes per held row

``uow`` is the unit of work "load one row by key, change a column, add two
child rows, commit", through a session and by hand with psycopg (the same
statements, one round trip each), in the same run, in turns (``timing.py``).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import psycopg_pool
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from timing import interleaved  # noqa: E402

import mother  # noqa: E402
from mother import tutorial  # noqa: E402


class Stars(mother.DbMother):
    table_name = "stars"


class Planets(mother.DbMother):
    table_name = "planets"


def setup(dsn: str) -> mother.Database:
    database = mother.init_mother(dsn=dsn, pool_min=1, pool_max=2)
    tutorial.create(database)
    with mother.MotherSession() as s:
        s.mq_query("INSERT INTO stars (star_name, star_age) VALUES (%(n)s, 1)",
                   [{"n": f"star{i}"} for i in range(100)])
    return database


def with_session(i: int, name: str | None = None) -> None:
    s = mother.MotherSession(name)
    star = s.get(Stars, 1 + i % 100)
    star.setField("star_age", i)
    s.persist(Planets({"star_id": 1 + i % 100, "planet_name": "a"}))
    s.persist(Planets({"star_id": 1 + i % 100, "planet_name": "b"}))
    s.endSession()


def by_hand(pool: psycopg_pool.ConnectionPool) -> Callable[[int], None]:
    def run(i: int) -> None:
        with pool.connection() as conn:
            key = 1 + i % 100
            row = conn.execute("SELECT star_id, star_name, star_age, star_mass FROM stars "
                               "WHERE star_id = %s", (key,)).fetchone()
            conn.execute("UPDATE stars SET star_age = %s WHERE star_id = %s",
                         (i, row["star_id"]))
            conn.execute("INSERT INTO planets (star_id, planet_name) VALUES (%s, %s) "
                         "RETURNING planet_id", (key, "a")).fetchone()
            conn.execute("INSERT INTO planets (star_id, planet_name) VALUES (%s, %s) "
                         "RETURNING planet_id", (key, "b")).fetchone()
            conn.commit()
    return run


def compare(dsn: str, n: int) -> dict[str, float]:
    database = setup(dsn)
    # a plain psycopg pool (dbmother's checks lent connections without a round trip)
    pool = psycopg_pool.ConnectionPool(dsn, min_size=1, max_size=2,
                                       kwargs={"row_factory": dict_row}, open=True)
    try:
        return interleaved({"session": with_session,
                            "named session": lambda i: with_session(i, "bench"),
                            "raw": by_hand(pool)}, n)
    finally:
        pool.close()
        database.close()


def cmd_uow(args: argparse.Namespace) -> None:
    result = compare(args.dsn, args.n)
    print(f"unit of work, {args.n} runs each, in turns; median per unit of work:")
    for name, value in result.items():
        print(f"  {name:14}: {value:8.1f} us  ({value / result['raw']:.2f} x raw)")


def cmd_memory(args: argparse.Namespace) -> None:
    path = Path(tempfile.mkdtemp()) / "mem.db"
    database = mother.init_mother(dsn=f"sqlite:///{path}", pool_min=1)
    tutorial.create(database)
    with mother.MotherSession() as s:
        s.mq_query("INSERT INTO stars (star_name, star_age, star_mass) VALUES (:n, :a, :m)",
                   [{"n": f"star number {i}", "a": i, "m": i * 7} for i in range(args.rows)])
    s = mother.MotherSession()
    rows = s.mr_query("SELECT * FROM stars")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    plain = [dict(row) for row in rows]
    plain_bytes = tracemalloc.get_traced_memory()[0] - before
    del plain
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    held = [Stars.from_row(s, row) for row in rows]
    held_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(list(s)) == args.rows and len(held) == args.rows
    s.close()
    # the values (shared by both) are counted in neither: both copy the same row dict
    print(f"{args.rows} rows of stars held in a session (values shared with the row):")
    print(f"  plain dict per row : {plain_bytes / args.rows:7.1f} B")
    print(f"  session per row    : {held_bytes / args.rows:7.1f} B")
    print(f"  ratio              : {held_bytes / plain_bytes:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    uow = sub.add_parser("uow")
    uow.add_argument("--dsn", default=os.environ.get("MOTHER_TEST_PG_DSN"))
    uow.add_argument("--n", type=int, default=2000)
    memory = sub.add_parser("memory")
    memory.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    {"uow": cmd_uow, "memory": cmd_memory}[args.command](args)


if __name__ == "__main__":
    main()
