"""Benchmark mother.tm against raw psycopg (run by hand; prints figures for docs/).

Work unit: load one star, change it, add two child planets, commit.
  1. one session joined to the transaction vs raw psycopg (one COMMIT);
  2. the same on two PostgreSQL databases with two-phase commit vs raw psycopg
     tpc_begin / tpc_prepare / tpc_commit on both.

Usage:
  MOTHER_TEST_PG_DSN="host=127.0.0.1 port=54329 user=postgres dbname=postgres" \
      .venv/bin/python -m benchmarks.bench_tm [ROUNDS] [--repeat RUNS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import uuid
from collections.abc import Callable

import psycopg
import transaction

import mother
from benchmarks.timing import interleaved
from mother import DbMother, MotherSession, tutorial
from mother.tm import join


class Star(DbMother):
    table_name = "stars"


class Planet(DbMother):
    table_name = "planets"


def _dsn(server: str, name: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(server)
    params["dbname"] = name
    return psycopg.conninfo.make_conninfo(**params)


def mother_unit(databases: list[str]) -> None:
    for name in databases:
        s = MotherSession(database=name)
        join(s)
        star = s.get(Star, 1)
        star.setField("star_age", (star.getField("star_age") or 0) + 1)
        for _ in range(2):
            s.persist(Planet({"star_id": 1, "planet_name": "p"}, session=s))
    transaction.commit()


def raw_unit(conns: list[psycopg.Connection], twophase: bool) -> None:
    xids = []
    for conn in conns:
        if twophase:
            xid = conn.xid(1, uuid.uuid4().hex, "b")
            conn.tpc_begin(xid)
            xids.append(xid)
        row = conn.execute("SELECT * FROM stars WHERE star_id = %s", (1,)).fetchone()
        conn.execute("UPDATE stars SET star_age = %s WHERE star_id = %s",
                     ((row[2] or 0) + 1, 1))
        conn.cursor().executemany("INSERT INTO planets (star_id, planet_name) VALUES (%s, %s)",
                                  [(1, "p"), (1, "p")])
    if twophase:
        for conn in conns:
            conn.tpc_prepare()
        for conn in conns:
            conn.tpc_commit()
    else:
        conns[0].commit()


def compare(contenders: dict[str, Callable[[int], object]], rounds: int,
            repeat: int) -> tuple[float, float, list[float]]:
    """Median time of each contender over ``repeat`` runs of ``rounds`` in turns, and the
    ratio ours/raw of every run (the machine wanders between runs: report them all)."""
    runs = [interleaved(contenders, rounds) for _ in range(repeat)]
    ratios = [run["ours"] / run["raw"] for run in runs]
    return (statistics.median(run["ours"] for run in runs),
            statistics.median(run["raw"] for run in runs), ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rounds", nargs="?", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    server = os.environ.get("MOTHER_TEST_PG_DSN",
                            "host=127.0.0.1 port=54329 user=postgres dbname=postgres")
    names = [f"mother_bench_{uuid.uuid4().hex[:8]}_{i}" for i in range(2)]
    with psycopg.connect(server, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        for label, name in zip(("default", "second"), names):
            db = mother.init_mother(dsn=_dsn(server, name), name=label, pool_min=1)
            tutorial.create(db)
            with MotherSession(database=label) as s:
                s.oc_query("INSERT INTO stars (star_id, star_name, star_age) VALUES (1, 'Sun', 0)")
        conns = [psycopg.connect(_dsn(server, name)) for name in names]
        one = compare({"ours": lambda i: mother_unit(["default"]),
                       "raw": lambda i: raw_unit(conns[:1], False)}, args.rounds, args.repeat)
        two = compare({"ours": lambda i: mother_unit(["default", "second"]),
                       "raw": lambda i: raw_unit(conns, True)}, args.rounds, args.repeat)
        results = [("one session joined", *one, 1.10), ("two databases, 2PC", *two, 1.15)]
        for conn in conns:
            conn.close()
    finally:
        mother.close_all()
        with psycopg.connect(server, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"{args.repeat} runs of {args.rounds} rounds each, in turns; Python "
          f"{sys.version.split()[0]}, psycopg {psycopg.__version__}")
    for label, ours, raw, ratios, target in results:
        each = " ".join(f"{ratio:.2f}" for ratio in ratios)
        print(f"{label:20s} dbmother {ours / 1e3:6.3f} ms  raw psycopg {raw / 1e3:6.3f} ms  "
              f"ratio median {statistics.median(ratios):.2f}x (runs: {each})  "
              f"target {target:.2f}x")


if __name__ == "__main__":
    main()
