"""Benchmark mother.tm against raw psycopg (run by hand; prints figures for docs/).

Work unit: load one star, change it, add two child planets, commit.
  1. one session joined to the transaction vs raw psycopg (one COMMIT);
  2. the same on two PostgreSQL databases with two-phase commit vs raw psycopg
     tpc_begin / tpc_prepare / tpc_commit on both.

Contenders, in turns in the same run (``timing.interleaved``: blocks of ``--block`` calls,
default 10, the first of each untimed; ``--block 1`` alternates them call by call):
  unit        dbmother's unit of work: session.get, setField, two persist()
  immediate   Mother's immediate style: MO_LOAD, setField + update(), two MO_SAVE
              (the session sends the writes with its next round trip)
  at once     the same with defer_writes=False: each write a round trip of its own
  raw         psycopg by hand (tpc_* for two-phase commit)
  sqlalchemy  SQLAlchemy ORM + zope.sqlalchemy (a twophase=True session for 2PC)
each ending with transaction.commit() (raw: psycopg's own commit).

With ``--cpu``, each contender is timed by the CPU this process spends on it
(``time.process_time_ns``: its Python, the driver, the kernel's work for its
socket calls), not by the elapsed time, which adds the waits for the server.

With ``--phases``, instead: the immediate unit and raw psycopg's on one database, each
step timed by itself (by CPU with ``--cpu``), medians of ROUNDS: where each one's time
goes. ``--phases immediate`` or ``--phases raw`` runs one of them only: ``perf record
-e cpu-clock`` around such a run splits its CPU between the interpreter, the kernel,
libpq and psycopg's C code (``perf report --sort dso``; docs/unitofwork.rst).

With ``--gc``, instead: the immediate unit alone, ROUNDS times on one database then on
two, with the time the cyclic garbage collector took during them (``gc.callbacks``),
its collections and the objects it found unreachable, per unit (the medians above do
not show a collection that runs every twenty units; the mean does).

Usage:
  MOTHER_TEST_PG_DSN="host=127.0.0.1 port=54329 user=postgres dbname=postgres" \
      .venv/bin/python -m benchmarks.bench_tm [ROUNDS] [--repeat RUNS] [--block CALLS] [--cpu]
      [--only NAME ...] [--phases | --gc]
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy
import transaction
import zope.sqlalchemy
from sqlalchemy import orm

import mother
from benchmarks.timing import BLOCK, interleaved
from mother import MO_LOAD, MO_SAVE, DbMother, MotherSession, tutorial
from mother.tm import join


class Star(DbMother):
    table_name = "stars"


class Planet(DbMother):
    table_name = "planets"


def _dsn(server: str, name: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(server)
    params["dbname"] = name
    return psycopg.conninfo.make_conninfo(**params)


def mother_immediate(databases: list[str], defer: bool = True,
                     step: Callable[[], object] | None = None) -> None:
    """The immediate unit; ``step`` (``--phases``) is called after each of its steps."""
    for name in databases:
        s = MotherSession(database=name, defer_writes=defer)
        join(s)
        if step:
            step()
        star = Star({"star_id": 1}, MO_LOAD, session=s)
        if step:
            step()
        star.setField("star_age", (star.getField("star_age") or 0) + 1)
        star.update()
        if step:
            step()
        for _ in range(2):
            Planet({"star_id": 1, "planet_name": "p"}, MO_SAVE, session=s)
        if step:
            step()
    transaction.commit()
    if step:
        step()


def alchemy_classes(count: int) -> list[tuple[type[Any], type[Any]]]:
    """(Star, Planet) mapped classes for each of ``count`` databases (the same tables)."""
    pairs = []
    for i in range(count):
        class Base(orm.DeclarativeBase):
            pass

        star = type(f"AStar{i}", (Base,), {
            "__tablename__": "stars",
            "star_id": orm.mapped_column(sqlalchemy.Integer, primary_key=True),
            "star_name": orm.mapped_column(sqlalchemy.Text),
            "star_age": orm.mapped_column(sqlalchemy.Integer),
            "star_mass": orm.mapped_column(sqlalchemy.Integer)})
        planet = type(f"APlanet{i}", (Base,), {
            "__tablename__": "planets",
            "planet_id": orm.mapped_column(sqlalchemy.Integer, primary_key=True),
            "star_id": orm.mapped_column(sqlalchemy.ForeignKey("stars.star_id")),
            "planet_name": orm.mapped_column(sqlalchemy.Text),
            "planet_mass": orm.mapped_column(sqlalchemy.Integer)})
        pairs.append((star, planet))
    return pairs


def alchemy(dsns: list[str]) -> tuple[Callable[[], None], list[Any]]:
    """The unit of work through SQLAlchemy's ORM joined by zope.sqlalchemy (two-phase
    commit across the engines when there are several); returns it and the engines."""
    engines = [sqlalchemy.create_engine("postgresql+psycopg://", pool_size=1,
                                        creator=lambda dsn=dsn: psycopg.connect(dsn))
               for dsn in dsns]
    pairs = alchemy_classes(len(dsns))
    binds = {cls: engine for engine, pair in zip(engines, pairs) for cls in pair}
    factory = orm.sessionmaker(binds=binds, twophase=len(dsns) > 1)

    def unit() -> None:
        session = factory()
        zope.sqlalchemy.register(session)
        for star_cls, planet_cls in pairs:
            star = session.get(star_cls, 1)
            star.star_age = (star.star_age or 0) + 1
            session.add_all([planet_cls(star_id=1, planet_name="p") for _ in range(2)])
        transaction.commit()

    return unit, engines


def mother_unit(databases: list[str]) -> None:
    for name in databases:
        s = MotherSession(database=name)
        join(s)
        star = s.get(Star, 1)
        star.setField("star_age", (star.getField("star_age") or 0) + 1)
        for _ in range(2):
            s.persist(Planet({"star_id": 1, "planet_name": "p"}, session=s))
    transaction.commit()


def raw_unit(conns: list[psycopg.Connection], twophase: bool,
             step: Callable[[], object] | None = None) -> None:
    """Raw psycopg's unit; ``step`` (``--phases``) is called after each of its steps."""
    xids = []
    for conn in conns:
        if twophase:
            xid = conn.xid(1, uuid.uuid4().hex, "b")
            conn.tpc_begin(xid)
            xids.append(xid)
        row = conn.execute("SELECT * FROM stars WHERE star_id = %s", (1,)).fetchone()
        if step:
            step()
        conn.execute("UPDATE stars SET star_age = %s WHERE star_id = %s",
                     ((row[2] or 0) + 1, 1))
        if step:
            step()
        conn.cursor().executemany("INSERT INTO planets (star_id, planet_name) VALUES (%s, %s)",
                                  [(1, "p"), (1, "p")])
        if step:
            step()
    if twophase:
        for conn in conns:
            conn.tpc_prepare()
        for conn in conns:
            conn.tpc_commit()
    else:
        conns[0].commit()
    if step:
        step()


#: the contenders as ``--only`` names them (a space in a contender's name is a dash here);
#: ``immediate-again``, the immediate unit once more, only when asked: the same code
#: twice shows what the order of the turns alone does to a contender's time
CONTENDERS = ("unit", "immediate", "at-once", "raw", "sqlalchemy", "immediate-again")
#: the ratios reported per scenario: (contender, against, target)
#: (None: the same code, where anything but 1.00x is the order of the turns)
RATIOS: dict[str, list[tuple[str, str, float | None]]] = {
    "one session joined": [("unit", "raw", 1.10), ("immediate", "raw", 0.90),
                           ("immediate", "sqlalchemy", 0.60),
                           ("immediate again", "immediate", None)],
    "two databases, 2PC": [("unit", "raw", 1.15), ("immediate", "raw", 1.00),
                           ("immediate", "sqlalchemy", 0.60),
                           ("immediate again", "immediate", None)]}


def compare(contenders: dict[str, Callable[[int], object]], rounds: int, repeat: int,
            clock: Callable[[], int], block: int) -> list[dict[str, float]]:
    """Median microseconds of each contender by ``clock``, per run of ``rounds`` in turns
    of ``block`` (the machine wanders between runs: every run is reported)."""
    return [interleaved(contenders, rounds, clock=clock, block=block) for _ in range(repeat)]


def report(label: str, runs: list[dict[str, float]]) -> None:
    times = "  ".join(f"{name} {statistics.median(run[name] for run in runs) / 1e3:.3f} ms"
                      for name in runs[0])
    print(f"{label}: {times}")
    for ours, other, target in RATIOS[label]:
        if ours not in runs[0] or other not in runs[0]:
            continue  # a contender left out (--only)
        ratios = [run[ours] / run[other] for run in runs]
        each = " ".join(f"{ratio:.2f}" for ratio in ratios)
        goal = "the same code" if target is None else f"target <= {target:.2f}x"
        print(f"  {ours:9s} / {other:10s} median {statistics.median(ratios):.2f}x "
              f"(runs: {each})  {goal}")


def collected(unit: Callable[[], None], rounds: int) -> dict[str, float]:
    """Per unit of ``rounds`` runs of ``unit`` (after a warm-up): mean microseconds, the
    cyclic garbage collector's microseconds, its collections and the objects it found
    unreachable (cyclic garbage the unit left)."""
    for _ in range(100):
        unit()
    gc.collect()
    totals = {"gc": 0.0, "collections": 0.0, "garbage": 0.0}
    started: list[float] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
            return
        totals["gc"] += time.perf_counter() - started.pop()
        totals["collections"] += 1
        totals["garbage"] += info["collected"]

    gc.callbacks.append(watch)
    try:
        start = time.perf_counter()
        for _ in range(rounds):
            unit()
        elapsed = time.perf_counter() - start
    finally:
        gc.callbacks.remove(watch)
    return {"mean": elapsed / rounds * 1e6, "gc": totals["gc"] / rounds * 1e6,
            "collections": totals["collections"] / rounds,
            "garbage": totals["garbage"] / rounds}


def report_gc(rounds: int) -> None:
    for label, databases in (("one database", ["default"]),
                             ("two databases, 2PC", ["default", "second"])):
        found = collected(lambda d=databases: mother_immediate(d), rounds)
        print(f"{label}: immediate unit mean {found['mean']:.1f} us, cyclic GC "
              f"{found['gc']:.1f} us a unit ({found['collections']:.3f} collections, "
              f"{found['garbage']:.1f} unreachable objects a unit)")


def timed_steps(unit: Callable[..., None], clock: Callable[[], int]) -> list[int]:
    """Each step's ``clock`` time in one run of ``unit`` (given ``step=``, its callback)."""
    stamps = [clock()]
    unit(step=lambda: stamps.append(clock()))
    return [after - before for before, after in zip(stamps, stamps[1:])]


#: the steps of each unit, as ``--phases`` names them (one database)
STEPS = {"immediate": ["MotherSession + join", "MO_LOAD (BEGIN, SELECT)", "setField + update",
                       "two MO_SAVE", "transaction.commit (writes, COMMIT)"],
         "raw": ["SELECT (BEGIN, SELECT)", "UPDATE", "executemany (two INSERTs)", "COMMIT"]}


def report_phases(conn: psycopg.Connection[Any], rounds: int, clock: Callable[[], int],
                  which: str) -> None:
    units = {"immediate": functools.partial(mother_immediate, ["default"]),
             "raw": functools.partial(raw_unit, [conn], False)}
    for name, unit in units.items():
        if which not in ("both", name):
            continue
        for _ in range(min(rounds, 300)):  # warm-up
            unit()
        samples = [timed_steps(unit, clock) for _ in range(rounds)]
        medians = [statistics.median(column) / 1e3 for column in zip(*samples)]
        print(f"{name}: medians of {rounds}, sum {sum(medians):.1f} us")
        for step, median in zip(STEPS[name], medians):
            print(f"  {step:38s} {median:7.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rounds", nargs="?", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cpu", action="store_true",
                        help="time by this process's CPU, not by the elapsed time")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS[:-1]),
                        help="run these contenders only")
    parser.add_argument("--block", type=int, default=BLOCK,
                        help="calls per turn of a contender, the first untimed (1: the "
                             "contenders alternate call by call, every call timed)")
    parser.add_argument("--phases", nargs="?", const="both", choices=("both", *STEPS),
                        help="each step of the immediate and the raw unit (or of one of "
                             "them), one database")
    parser.add_argument("--gc", action="store_true",
                        help="the cyclic garbage collector's share of the immediate unit")
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
        if args.gc:
            report_gc(args.rounds)
            return
        clock = time.process_time_ns if args.cpu else time.perf_counter_ns
        dsns = [_dsn(server, name) for name in names]
        if args.phases:
            with psycopg.connect(dsns[0]) as conn:
                print("per step, " + ("the CPU this process spent" if args.cpu else "elapsed"))
                report_phases(conn, args.rounds, clock, args.phases)
            return
        conns = [psycopg.connect(dsn) for dsn in dsns]
        alchemy_one, engines_one = alchemy(dsns[:1])
        alchemy_two, engines_two = alchemy(dsns)
        results = []
        for label, databases, twophase, sqla in (
                ("one session joined", ["default"], False, alchemy_one),
                ("two databases, 2PC", ["default", "second"], True, alchemy_two)):
            every: dict[str, Callable[[int], object]] = {
                "unit": lambda i, d=databases: mother_unit(d),
                "immediate": lambda i, d=databases: mother_immediate(d),
                "at once": lambda i, d=databases: mother_immediate(d, defer=False),
                "raw": lambda i, c=conns[:2 if twophase else 1], t=twophase: raw_unit(c, t),
                "sqlalchemy": lambda i, u=sqla: u(),
                "immediate again": lambda i, d=databases: mother_immediate(d)}
            contenders = {name: work for name, work in every.items()
                          if name.replace(" ", "-") in args.only}
            results.append((label, compare(contenders, args.rounds, args.repeat, clock,
                                            args.block)))
        for conn in conns:
            conn.close()
        for engine in engines_one + engines_two:
            engine.dispose()
    finally:
        mother.close_all()
        with psycopg.connect(server, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    turns = (f"in turns of {args.block} (the first untimed)" if args.block > 1
             else "alternating call by call")
    print(f"{args.repeat} runs of {args.rounds} rounds each, {turns}; Python "
          f"{sys.version.split()[0]}, psycopg {psycopg.__version__}")
    print(f"SQLAlchemy {sqlalchemy.__version__}, zope.sqlalchemy; medians per unit of work"
          + (", of the CPU this process spent (not the elapsed time)" if args.cpu else ""))
    for label, runs in results:
        report(label, runs)


if __name__ == "__main__":
    main()
