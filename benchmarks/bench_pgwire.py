"""The PostgreSQL fast path against psycopg's public pipeline (run by hand; figures in
docs/sessions.rst, "How statements reach PostgreSQL").

    python -m benchmarks.bench_pgwire --dsn DSN [--n 2000]

One transaction of three statements with parameters (a SELECT, an UPDATE, an
INSERT) and its COMMIT, in one round trip both ways: through
``mother.dialects.pgwire`` (which needs psycopg's internals, fenced in
``mother.dialects._psycopg``) and through psycopg's public ``conn.pipeline()``
with a cursor. Same connection settings, same preparation threshold, in turns
(``timing.py``), in a scratch database.
"""

from __future__ import annotations

import argparse
import os

import psycopg

from benchmarks.timing import interleaved
from mother.dialects import pgwire

SETUP = ("CREATE TABLE counter (id int PRIMARY KEY, v int NOT NULL);"
         "INSERT INTO counter VALUES (1, 0);"
         "CREATE TABLE log (id serial PRIMARY KEY, v int NOT NULL)")
STATEMENTS = ["SELECT v FROM counter WHERE id = %s",
              "UPDATE counter SET v = v + 1 WHERE id = %s",
              "INSERT INTO log (v) VALUES (%s)"]


def _run(dsn: str, n: int) -> dict[str, float]:
    fast = psycopg.connect(dsn)
    pgwire.set_prepare_threshold(fast, 5)
    public = psycopg.connect(dsn, prepare_threshold=5)
    cursor = public.cursor()

    def through_pgwire(i: int) -> None:
        pgwire.begin(fast, None)
        pgwire.run(fast, [(STATEMENTS[0], (1,)), (STATEMENTS[1], (1,)), (STATEMENTS[2], (i,))],
                   end=b"COMMIT")

    def through_pipeline(i: int) -> None:
        with public.pipeline():
            cursor.execute(STATEMENTS[0], (1,))
            cursor.execute(STATEMENTS[1], (1,))
            cursor.execute(STATEMENTS[2], (i,))
            public.commit()

    try:
        return interleaved({"pgwire": through_pgwire, "conn.pipeline()": through_pipeline}, n)
    finally:
        fast.close()
        public.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("MOTHER_TEST_PG_DSN"))
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    server = psycopg.conninfo.conninfo_to_dict(args.dsn)
    name = f"mother_bench_pgwire_{os.getpid()}"
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = psycopg.conninfo.make_conninfo(**{**server, "dbname": name})
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SETUP)
        medians = _run(dsn, args.n)
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    impl = psycopg.pq.__impl__
    print(f"3 statements + COMMIT in one round trip, {args.n} runs each, in turns "
          f"(psycopg {psycopg.__version__}, {impl}); median:")
    for label, median in medians.items():
        print(f"  {label:16}: {median:8.1f} us  ({median / medians['pgwire']:.2f} x pgwire)")


if __name__ == "__main__":
    main()
