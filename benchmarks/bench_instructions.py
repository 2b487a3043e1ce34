"""Machine instructions per unit of work, counted by valgrind (run by hand).

This machine's speed wanders by tens of percent from one minute to the next, so a
change worth a few percent cannot be seen in seconds. ``valgrind --tool=callgrind``
counts the instructions the process executes instead: the same count for the same
code, however busy the machine is. It counts user space only (the interpreter,
psycopg's C code, libpq, libc), not the kernel's work for the socket calls, nor the
waits for the server.

Each contender of ``bench_tm`` (one database: ``immediate``, ``unit``, ``raw``; two
with two-phase commit: ``immediate-2pc``, ``raw-2pc``) runs in a process of its own
under callgrind twice (one hash seed for both), ROUNDS and 5 x ROUNDS units after
the same start; the difference of the two totals, divided by 4 x ROUNDS, is one
unit's count, with the start-up (imports, connecting, warming up) taken out.
``--split`` also divides the count between the interpreter, psycopg's C code, libpq
and libc (``callgrind_annotate``).

Usage (valgrind from Debian's package):
  MOTHER_TEST_PG_DSN="host=127.0.0.1 port=54329 user=postgres dbname=postgres" \
      PYTHONPATH=$PWD/src:$PWD .venv/bin/python -m benchmarks.bench_instructions \
      [ROUNDS] [--only NAME ...] [--split]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable

import psycopg

import mother
from benchmarks.bench_tm import mother_immediate, mother_unit, raw_unit
from benchmarks.timing import create_scratch, drop_scratch
from mother import MotherSession, tutorial

#: contender: (databases, what one unit runs given the raw connections)
CONTENDERS: dict[str, tuple[int, Callable[[list[psycopg.Connection]], None]]] = {
    "immediate": (1, lambda conns: mother_immediate(["default"])),
    "unit": (1, lambda conns: mother_unit(["default"])),
    "raw": (1, lambda conns: raw_unit(conns, False)),
    "immediate-2pc": (2, lambda conns: mother_immediate(["default", "second"])),
    "raw-2pc": (2, lambda conns: raw_unit(conns, True)),
}
LABELS = ("default", "second")
WARMUP = 50


def child(name: str, rounds: int, dsns: list[str]) -> None:
    """Run ``rounds`` units of contender ``name`` (inside valgrind) after the warm-up."""
    count, unit = CONTENDERS[name]
    for label, dsn in zip(LABELS, dsns[:count]):
        mother.init_mother(dsn=dsn, name=label, pool_min=1)
    conns = [psycopg.connect(dsn) for dsn in dsns[:count]]
    try:
        for _ in range(WARMUP + rounds):
            unit(conns)
    finally:
        for conn in conns:
            conn.close()
        mother.close_all()


def counted(name: str, rounds: int, dsns: list[str], out: str) -> int:
    """The instructions callgrind counted in a child running ``rounds`` units."""
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               sys.executable, "-m", "benchmarks.bench_instructions", "--child", name,
               str(rounds), *dsns]
    # one hash seed: the same layout of every dict and set from one run to the next
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise RuntimeError(f"{name} under callgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def by_object(path: str) -> collections.Counter[str]:
    """Instructions per shared object (the interpreter, psycopg, libpq, libc) of one
    callgrind output."""
    report = subprocess.run(["callgrind_annotate", "--threshold=100", path],
                            capture_output=True, text=True, check=True).stdout
    split: collections.Counter[str] = collections.Counter()
    for line in report.splitlines():
        row = re.match(r"\s*([\d,]+) \([^)]*\)\s+.*?(?:\[(.*)\])?$", line)
        if row and "PROGRAM TOTALS" not in line:
            # a line without its object is code inlined from CPython's headers
            obj = os.path.basename(row.group(2) or "libpython")
            group = ("interpreter" if obj.startswith("libpython") else
                     "psycopg C" if obj.startswith(("_psycopg", "pq.")) else
                     "libpq" if obj.startswith("libpq") else
                     "libc" if obj.startswith("libc.") else "other")
            split[group] += int(row.group(1).replace(",", ""))
    return split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rounds", nargs="?", type=int, default=100)
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--split", action="store_true",
                        help="divide each count between the interpreter, psycopg, libpq, libc")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, rounds, *dsns = args.child
        child(name, int(rounds), dsns)
        return
    server = os.environ.get("MOTHER_TEST_PG_DSN",
                            "host=127.0.0.1 port=54329 user=postgres dbname=postgres")
    scratch = [create_scratch(server) for _ in LABELS]
    try:
        for label, (_, dsn) in zip(LABELS, scratch):
            tutorial.create(mother.init_mother(dsn=dsn, name=label, pool_min=1))
            with MotherSession(database=label) as s:
                s.oc_query("INSERT INTO stars (star_id, star_name, star_age) VALUES (1, 'Sun', 0)")
        mother.close_all()
        dsns = [dsn for _, dsn in scratch]
        print(f"instructions per unit (callgrind, user space), {args.rounds} and "
              f"{5 * args.rounds} units; Python {sys.version.split()[0]}, "
              f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__})")
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.only:
                short, long = (os.path.join(tmp, f"{name}.{n}") for n in ("short", "long"))
                few = counted(name, args.rounds, dsns, short)
                many = counted(name, 5 * args.rounds, dsns, long)
                print(f"  {name:14s} {(many - few) / (4 * args.rounds) / 1e3:8.1f} k")
                if args.split:
                    before, after = by_object(short), by_object(long)
                    each = {group: (after[group] - before[group]) / (4 * args.rounds) / 1e3
                            for group in after}
                    parts = "  ".join(f"{group} {count:.1f} k" for group, count in
                                      sorted(each.items(), key=lambda item: -item[1]))
                    print(f"  {'':14s} {parts}")
    finally:
        mother.close_all()
        for name, _ in scratch:
            drop_scratch(server, name)


if __name__ == "__main__":
    main()
