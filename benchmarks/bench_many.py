"""MotherMany insert against raw psycopg executemany, same rows, same run.

    python -m benchmarks.bench_many --dsn "host=127.0.0.1 port=54329 user=postgres dbname=postgres"

Creates a scratch database, inserts ``--rows`` planets ``--repeat`` times each
way (one transaction per run, committed), and prints the best and median times.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import psycopg

import mother
from mother import MO_SAVE, MotherMany, MotherSession, tutorial


def rows(n: int) -> list[dict[str, object]]:
    return [{"planet_name": f"planet {i}", "planet_mass": i % 97} for i in range(n)]


def raw(dsn: str, n: int) -> float:
    data = [(r["planet_name"], r["planet_mass"]) for r in rows(n)]
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO planets (planet_name, planet_mass) VALUES (%s, %s)", data)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="a PostgreSQL server (any database)")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    name = f"mother_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = psycopg.conninfo.conninfo_to_dict(args.dsn)
    params["dbname"] = name
    dsn = psycopg.conninfo.make_conninfo(**params)
    try:
        database = mother.init_mother(dsn=dsn, pool_min=1)
        tutorial.create(database)
        results: dict[str, list[float]] = {"raw psycopg executemany": [],
                                           "MotherMany(MO_SAVE) + keys": []}
        for _ in range(args.repeat):  # interleaved, so both see the same conditions
            results["raw psycopg executemany"].append(raw(dsn, args.rows))
            results["MotherMany(MO_SAVE) + keys"].append(many(args.rows))
        base = statistics.median(results["raw psycopg executemany"])
        print(f"{args.rows} rows, {args.repeat} runs each")
        print(f"{'method':<30} {'best s':>8} {'median s':>9} {'ratio':>6}")
        for label, times in results.items():
            median = statistics.median(times)
            print(f"{label:<30} {min(times):8.4f} {median:9.4f} {median / base:6.2f}")
    finally:
        mother.close_all()
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
