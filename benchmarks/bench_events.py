"""What the event stream costs: the unit of work of ``bench_uow.py`` with nobody
listening, against the same code before the events existed, and with listeners
(run by hand; figures go in docs/seeing.rst).

    git worktree add /tmp/before 9664257      # main before mother.events
    python -m benchmarks.bench_events --before /tmp/before/src --dsn DSN [--n 2000]

One worker process per contender, importing ``mother`` from this checkout or
from ``--before``, each on its own scratch database (a PostgreSQL one made on
the ``--dsn`` server, and an SQLite file). The parent drives them in turns, in
a rotating order (as ``timing.py`` does), one unit of work per request, so
each process waits alike between its runs; each worker times its own unit of
work, so the pipe between them is not counted.
Contenders: nobody listening (two processes of each code: the gap between two
processes of the same code is the noise floor of the run); ``mother.sql`` at
DEBUG (to a handler writing to ``os.devnull``); and, in this checkout only, an
:func:`mother.events.capture` trace around each unit of work (what the
toolbar panel does per request).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
AFTER = ROOT / "src"


def worker(src: str, dsn: str) -> None:
    """Serve ``MODE NUMBER`` lines: run one unit of work, answer its nanoseconds
    (``mother`` comes from ``src``, first on the worker's PYTHONPATH)."""
    import mother
    import mother.tutorial
    from benchmarks import bench_uow

    if not mother.__file__ or not mother.__file__.startswith(src):
        raise SystemExit(f"imported {mother.__file__}, not from {src}")
    database = mother.init_mother(dsn=dsn, pool_min=1, pool_max=2, create=True)
    mother.tutorial.create(database)  # bench_uow.setup(), for both databases
    with mother.MotherSession() as s:
        mark = database.dialect.placeholder("n")
        s.mq_query(f"INSERT INTO stars (star_name, star_age) VALUES ({mark}, 1)",
                   [{"n": f"star{i}"} for i in range(100)])
    sql = logging.getLogger("mother.sql")
    sql.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
    sql.propagate = False
    events = getattr(mother, "events", None)
    clock = time.perf_counter_ns
    print("ready", flush=True)
    for line in sys.stdin:
        mode, number = line.split()
        sql.setLevel(logging.DEBUG if mode == "logger" else logging.WARNING)
        start = clock()
        if mode == "trace":
            with events.capture():
                bench_uow.with_session(int(number))
        else:
            bench_uow.with_session(int(number))
        print(clock() - start, flush=True)
    database.close()


class Worker:
    def __init__(self, src: Path, dsn: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_events", "worker", "--src", str(src),
             "--dsn", dsn], cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit(f"the worker for {src} did not start")

    def run(self, mode: str, number: int) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{mode} {number}\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


#: each contender: which code, and what listens
CONTENDERS = {
    "before, nobody listening": ("before", "quiet"),
    "before, nobody listening 2": ("before", "quiet"),
    "after, nobody listening": ("after", "quiet"),
    "after, nobody listening 2": ("after", "quiet"),
    "before, mother.sql at DEBUG": ("before", "logger"),
    "after, mother.sql at DEBUG": ("after", "logger"),
    "after, a trace per unit": ("after", "trace"),
}


def compare(before: Path, dsns: list[str], n: int, warmup: int = 100) -> dict[str, float]:
    """Median microseconds per unit of work of each contender, in turns; one database
    (of ``dsns``) and one process per contender."""
    names = list(CONTENDERS)
    workers = {name: Worker(before if CONTENDERS[name][0] == "before" else AFTER, dsn)
               for name, dsn in zip(names, dsns)}
    samples: dict[str, list[int]] = {name: [] for name in names}
    numbers = itertools.count(1000)  # fresh values: every unit of work really updates
    try:
        for i in range(warmup + n):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                took = workers[name].run(CONTENDERS[name][1], next(numbers))
                if i >= warmup:
                    samples[name].append(took)
    finally:
        for each in workers.values():
            each.close()
    return {name: statistics.median(values) / 1000 for name, values in samples.items()}


def report(label: str, result: dict[str, float], n: int) -> None:
    base = statistics.mean([result["before, nobody listening"],
                            result["before, nobody listening 2"]])
    print(f"{label}: unit of work of bench_uow.py, {n} runs each, in turns; median "
          "(and against the mean of the two 'before, nobody listening'):")
    for name, value in result.items():
        print(f"  {name:28}: {value:8.1f} us  ({value / base:.3f} x before)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("worker")
    serve.add_argument("--src", required=True)
    serve.add_argument("--dsn", required=True)
    parser.add_argument("--before", type=Path, help="the src folder of the code to compare with")
    parser.add_argument("--dsn", default=os.environ.get("MOTHER_TEST_PG_DSN"),
                        help="a PostgreSQL server (scratch databases are made there)")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    if args.command == "worker":
        worker(args.src, args.dsn)
        return
    if args.before is None:
        parser.error("--before is required")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = [f"sqlite:///{tmp}/{number}.db" for number in range(len(CONTENDERS))]
        report("SQLite", compare(args.before, sqlite, args.n), args.n)
    if not args.dsn:
        return
    server = psycopg.conninfo.conninfo_to_dict(args.dsn)
    names = [f"mother_bench_events_{os.getpid()}_{number}" for number in range(len(CONTENDERS))]
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        dsns = [psycopg.conninfo.make_conninfo(**{**server, "dbname": name}) for name in names]
        report("PostgreSQL", compare(args.before, dsns, args.n), args.n)
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
