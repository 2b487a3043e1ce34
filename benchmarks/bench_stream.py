"""Large reads: 1,000,000 rows streamed against loaded, and against a raw psycopg
server-side cursor, for time and memory.

    python -m benchmarks.bench_stream --dsn "$DSN" [--rows 1000000] [--size 1000] [--repeat 3]

(``DSN`` a PostgreSQL server, for example ``host=127.0.0.1 port=54329 user=postgres
dbname=postgres``.)

Creates a scratch database with a table of ``--rows`` rows (four columns), then
runs each contender in a fresh Python process (so that its peak RSS is its
own), ``--repeat`` times in turns, and prints per contender the median time,
the peak RSS above the process's state just before the read (a session open,
or a connection made), and, in one more run under :mod:`tracemalloc`, the peak
of memory Python allocated during the read:

* ``stream_query`` in a session (``size`` rows per FETCH), rows as dicts;
* ``MotherBox(..., stream=size)`` in a session, rows as dicts;
* ``mr_query`` in a session: every row loaded into a list first;
* a raw psycopg server-side cursor (``conn.cursor(name)``, ``itersize = size``),
  rows as dicts (``dict_row``, as dbmother gives them) and as tuples.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable

import psycopg
from psycopg.rows import dict_row, tuple_row

import mother
from benchmarks.timing import create_scratch, drop_scratch
from mother import MO_LOAD, MotherBox, MotherSession

QUERY = "SELECT big_id, big_name, big_mass, big_at FROM big"
CONTENDERS = ("stream_query", "MotherBox(stream=)", "mr_query (loaded)",
              "raw server cursor, dict rows", "raw server cursor, tuple rows")


def rss() -> int:
    """The process's peak resident set so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def consume(rows: Iterable[object]) -> int:
    count = 0
    for _row in rows:
        count += 1
    return count


def child(dsn: str, mode: str, size: int, traced: bool) -> dict[str, float]:
    """One read in this process: its time, peak RSS growth and (traced) Python peak."""
    read: Callable[[], Iterable[object]]
    if mode.startswith("raw"):
        factory = dict_row if "dict" in mode else tuple_row
        conn = psycopg.connect(dsn, row_factory=factory)  # type: ignore[arg-type]
        conn.execute("SELECT 1")
        cursor = conn.cursor(name="raw_stream")
        cursor.itersize = size

        def read() -> Iterable[object]:
            cursor.execute(QUERY)
            return cursor
    else:
        mother.init_mother(dsn=dsn, pool_min=1)
        session = MotherSession("bench")
        session.ov_query("SELECT 1 AS one")  # the connection and the schema, before the read
        MotherBox("big", {"big_id": 0}, MO_LOAD, session=session)

        def read() -> Iterable[object]:
            if mode == "stream_query":
                return session.stream_query(QUERY, size=size)
            if mode == "MotherBox(stream=)":
                return MotherBox("big", None, MO_LOAD, session=session, stream=size)
            return session.mr_query(QUERY)
    before = current_rss()
    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    count = consume(read())
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    return {"rows": count, "seconds": elapsed, "rss": max(0, rss() - before), "traced": peak}


def run_child(dsn: str, mode: str, size: int, traced: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_stream", "--dsn", dsn,
                          "--child", mode, "--size", str(size)]
                         + (["--traced"] if traced else []),
                         check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="a PostgreSQL server (any database)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=1000, help="rows per FETCH")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.dsn, args.child, args.size, args.traced)))
        return
    name, dsn = create_scratch(args.dsn)
    try:
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE TABLE big (big_id SERIAL PRIMARY KEY, big_name TEXT, "
                         "big_mass INTEGER, big_at TIMESTAMPTZ)")
            conn.execute("INSERT INTO big (big_name, big_mass, big_at) SELECT 'row ' || g, "
                         "g %% 1000, now() FROM generate_series(1, %s) g", (args.rows,))
            conn.execute("ANALYZE big")
        times: dict[str, list[float]] = {mode: [] for mode in CONTENDERS}
        grown: dict[str, list[float]] = {mode: [] for mode in CONTENDERS}
        for run in range(args.repeat):
            shift = run % len(CONTENDERS)
            for mode in CONTENDERS[shift:] + CONTENDERS[:shift]:
                result = run_child(dsn, mode, args.size, traced=False)
                assert result["rows"] == args.rows, result
                times[mode].append(result["seconds"])
                grown[mode].append(result["rss"])
        traced = {mode: run_child(dsn, mode, args.size, traced=True)["traced"]
                  for mode in CONTENDERS}
        raw = statistics.median(times["raw server cursor, dict rows"])
        raw_tuples = statistics.median(times["raw server cursor, tuple rows"])
        print(f"{args.rows} rows, {args.size} per FETCH, {args.repeat} runs each "
              f"(medians), psycopg {psycopg.__version__}")
        print(f"{'contender':<30} {'time s':>7} {'/raw dict':>9} {'/raw tuple':>10} "
              f"{'RSS MB':>7} {'traced MB':>9}")
        for mode in CONTENDERS:
            median = statistics.median(times[mode])
            print(f"{mode:<30} {median:7.2f} {median / raw:9.2f} {median / raw_tuples:10.2f} "
                  f"{statistics.median(grown[mode]) / 1e6:7.1f} {traced[mode] / 1e6:9.1f}")
    finally:
        mother.close_all()
        drop_scratch(args.dsn, name)


if __name__ == "__main__":
    main()
