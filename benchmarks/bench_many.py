"""Bulk insert with keys: MotherMany against raw psycopg, same rows, same run, in turns.

    python -m benchmarks.bench_many --dsn "host=127.0.0.1 port=54329 user=postgres dbname=postgres"

Creates a scratch database and inserts ``--rows`` planets ``--repeat`` times
each way (one transaction per run, committed; the table emptied between runs,
untimed), in a rotating order (``timing.py``), and prints the best and median
times and each median against raw ``COPY`` and raw ``executemany``:

* raw psycopg ``executemany`` (no keys back), as a careful program writes it;
* raw psycopg ``COPY`` (no keys back): the limit;
* ``MotherMany(MO_SAVE)``, keys written back (keys from the sequence, then COPY);
* ``MotherMany(MO_SAVE)`` row by row (the fallback path: one ``INSERT … RETURNING``
  per row, pipelined), keys written back.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import psycopg

import mother
from benchmarks.timing import create_scratch, drop_scratch
from mother import MO_SAVE, MotherMany, MotherSession, bulk, tutorial

COLUMNS = ("planet_name", "planet_mass")


def rows(n: int) -> list[dict[str, object]]:
    return [{"planet_name": f"planet {i}", "planet_mass": i % 97} for i in range(n)]


def raw_executemany(conn: psycopg.Connection, n: int) -> float:
    data = [(r["planet_name"], r["planet_mass"]) for r in rows(n)]
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO planets (planet_name, planet_mass) VALUES (%s, %s)", data)
    conn.commit()
    return time.perf_counter() - start


def raw_copy(conn: psycopg.Connection, n: int) -> float:
    data = [(r["planet_name"], r["planet_mass"]) for r in rows(n)]
    start = time.perf_counter()
    with conn.cursor() as cur, cur.copy("COPY planets (planet_name, planet_mass) FROM STDIN") \
            as copy:
        for row in data:
            copy.write_row(row)
    conn.commit()
    return time.perf_counter() - start


def many(n: int) -> float:
    data = rows(n)
    session = MotherSession("bench")
    start = time.perf_counter()
    MotherMany("planets", data, MO_SAVE, session)
    session.endSession()
    elapsed = time.perf_counter() - start
    assert all("planet_id" in row for row in data)
    return elapsed


def many_row_by_row(n: int) -> float:
    saved = bulk.BULK_ROWS
    bulk.BULK_ROWS = n + 1  # below the threshold: the fallback path
    try:
        return many(n)
    finally:
        bulk.BULK_ROWS = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="a PostgreSQL server (any database)")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    name, dsn = create_scratch(args.dsn)
    try:
        database = mother.init_mother(dsn=dsn, pool_min=1)
        tutorial.create(database)
        with psycopg.connect(dsn) as conn:
            contenders: dict[str, Callable[[int], float]] = {
                "raw psycopg executemany": lambda n: raw_executemany(conn, n),
                "raw psycopg COPY": lambda n: raw_copy(conn, n),
                "MotherMany + keys (COPY)": many,
                "MotherMany + keys (row by row)": many_row_by_row,
            }
            names = list(contenders)
            results: dict[str, list[float]] = {label: [] for label in names}
            for run in range(args.repeat + 1):  # the first round warms up, untimed
                shift = run % len(names)
                for label in names[shift:] + names[:shift]:
                    elapsed = contenders[label](args.rows)
                    if run:
                        results[label].append(elapsed)
                    conn.execute("TRUNCATE planets CASCADE")
                    conn.commit()
        copy = statistics.median(results["raw psycopg COPY"])
        executemany = statistics.median(results["raw psycopg executemany"])
        print(f"{args.rows} rows, {args.repeat} runs each, psycopg {psycopg.__version__}")
        print(f"{'method':<32} {'best ms':>8} {'median ms':>10} {'/COPY':>6} {'/execmany':>9}")
        for label, times in results.items():
            median = statistics.median(times)
            print(f"{label:<32} {min(times) * 1e3:8.1f} {median * 1e3:10.1f} "
                  f"{median / copy:6.2f} {median / executemany:9.2f}")
    finally:
        mother.close_all()
        drop_scratch(args.dsn, name)


if __name__ == "__main__":
    main()
