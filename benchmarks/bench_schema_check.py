"""What ``schema_check`` costs (run by hand; figures for docs/configuration.rst).

On a scratch PostgreSQL database with the tutorial's 5 tables, then 100 and 1000
tables of 10 columns each (every one with a foreign key to the one before): the
fingerprint a due check runs (one round trip) against the introspection it
saves when nothing changed; and a session (one ``SELECT 1``) with
``schema_check`` off against one with it on but not due (the common case).

Usage:
  MOTHER_TEST_PG_DSN="host=127.0.0.1 port=54329 user=postgres dbname=postgres" \\
      .venv/bin/python -m benchmarks.bench_schema_check [RUNS]
"""

from __future__ import annotations

import os
import sys

import psycopg

import mother
from benchmarks.timing import create_scratch, drop_scratch, interleaved
from mother import tutorial

COLUMNS = ", ".join(f"c{n} TEXT" for n in range(8))


def add_tables(dsn: str, start: int, stop: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(start, stop):
            ref = f", up INTEGER REFERENCES t{n - 1} (id)" if n else ""
            conn.execute(f"CREATE TABLE t{n} (id SERIAL PRIMARY KEY, {COLUMNS}{ref})")


def one_session(database: str) -> None:
    with mother.MotherSession(database=database) as session:
        session.ov_query("SELECT 1")


def time_reads(database: mother.Database, runs: int) -> dict[str, float]:
    """Median microseconds of a fingerprint and of an introspection, on one connection."""
    dialect = database.dialect
    conn = dialect.connect()
    try:
        return interleaved({"fingerprint": lambda _i: dialect.schema_fingerprint(conn),
                            "introspect": lambda _i: dialect.introspect(conn)},
                           runs, warmup=5)
    finally:
        conn.close()


def main(runs: int) -> None:
    server = os.environ.get("MOTHER_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres")
    name, dsn = create_scratch(server)
    try:
        off = mother.init_mother(dsn=dsn, name="off", pool_min=1, recover_interval=None)
        on = mother.init_mother(dsn=dsn, name="on", pool_min=1, recover_interval=None,
                                schema_check=3600)
        tutorial.create(off)
        print(f"{runs} runs each, median; Python {sys.version.split()[0]}, "
              f"psycopg {psycopg.__version__}")
        made = 0
        for tables in (0, 100, 1000):
            add_tables(dsn, made, tables)
            made = tables
            times = time_reads(off, runs)
            print(f"{tables + 5:5d} tables: fingerprint {times['fingerprint'] / 1000:7.2f} ms, "
                  f"introspection {times['introspect'] / 1000:7.2f} ms")
        on.refresh_schema()
        times = interleaved({"off": lambda _i: one_session("off"),
                             "on, not due": lambda _i: one_session("on")}, runs * 20)
        print(f"a session with one SELECT: schema_check off {times['off']:.1f} us, "
              f"on but not due {times['on, not due']:.1f} us")
    finally:
        mother.close_all()
        drop_scratch(server, name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
