"""Benchmarks of the unit of work (run by hand; figures go in docs/unitofwork.rst).

    python -m benchmarks.bench_uow uow     --dsn DSN [--n 2000]   # session vs raw psycopg
    python -m benchmarks.bench_uow memory  [--rows 100000] [--dsn DSN] # bytes per held row

``uow`` is the unit of work "load one row by key, change a column, add two
child rows, commit", through a session (with ``session.get``/``persist``, and
in Mother's immediate style: ``MO_LOAD``, ``setField`` + ``update()``, two
``MO_SAVE``), with SQLAlchemy's ORM, and by hand with psycopg (the same
statements, one round trip each), in the same run, in turns (``timing.py``).
``benchmarks/bench_latency.py`` runs the same unit of work 1 ms away.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import sqlalchemy
from psycopg.rows import dict_row
from sqlalchemy import orm

import mother
from benchmarks.bench_tm import alchemy_classes
from benchmarks.timing import fresh, interleaved
from mother import tutorial


class Stars(mother.DbMother):
    table_name = "stars"


class Planets(mother.DbMother):
    table_name = "planets"


def setup(dsn: str, name: str = "default", **settings: Any) -> mother.Database:
    """Database ``name`` on ``dsn`` with the tutorial tables and 100 stars."""
    database = mother.init_mother(dsn=dsn, name=name, pool_min=1, pool_max=2, **settings)
    tutorial.create(database)
    with mother.MotherSession(database=name) as s:
        s.mq_query("INSERT INTO stars (star_name, star_age) VALUES (%(n)s, 1)",
                   [{"n": f"star{i}"} for i in range(100)])
    return database


def with_session(i: int, name: str | None = None, database: str = "default") -> None:
    s = mother.MotherSession(name, database=database)
    star = s.get(Stars, 1 + i % 100)
    star.setField("star_age", i)
    s.persist(Planets({"star_id": 1 + i % 100, "planet_name": "a"}))
    s.persist(Planets({"star_id": 1 + i % 100, "planet_name": "b"}))
    s.endSession()


def immediate(i: int, database: str = "default") -> None:
    """The same in Mother's immediate style (the session sends the writes with its COMMIT)."""
    s = mother.MotherSession(database=database)
    key = 1 + i % 100
    star = Stars({"star_id": key}, mother.MO_LOAD, session=s)
    star.setField("star_age", i)
    star.update()
    Planets({"star_id": key, "planet_name": "a"}, mother.MO_SAVE, session=s)
    Planets({"star_id": key, "planet_name": "b"}, mother.MO_SAVE, session=s)
    s.endSession()


def alchemy(dsn: str) -> tuple[Callable[[int], None], Any]:
    """The same with SQLAlchemy's ORM (its own pool of one connection); returns the engine."""
    engine = sqlalchemy.create_engine("postgresql+psycopg://", pool_size=1,
                                      creator=lambda: psycopg.connect(dsn))
    ((star_cls, planet_cls),) = alchemy_classes(1)
    factory = orm.sessionmaker(engine)

    def run(i: int) -> None:
        key = 1 + i % 100
        with factory() as session:
            session.get(star_cls, key).star_age = i
            session.add_all([planet_cls(star_id=key, planet_name=name) for name in "ab"])
            session.commit()
    return run, engine


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
    orm_unit, engine = alchemy(dsn)
    try:
        numbers = itertools.count(1000)
        return interleaved({"session": fresh(with_session, numbers),
                            "named session": fresh(lambda i: with_session(i, "bench"), numbers),
                            "immediate": fresh(immediate, numbers),
                            "sqlalchemy": fresh(orm_unit, numbers),
                            "raw": fresh(by_hand(pool), numbers)}, n)
    finally:
        engine.dispose()
        pool.close()
        database.close()


def cmd_uow(args: argparse.Namespace) -> None:
    result = compare(args.dsn, args.n)
    print(f"unit of work, {args.n} runs each, in turns; median per unit of work:")
    for name, value in result.items():
        print(f"  {name:14}: {value:8.1f} us  ({value / result['raw']:.2f} x raw)")


def retained(load: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes still allocated after ``load()`` and a full collection, and what it returned."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = load()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before, held
    finally:
        tracemalloc.stop()


def _memory(label: str, dsn: str, rows: int) -> None:
    database = mother.init_mother(dsn=dsn, pool_min=1, pool_max=2)
    try:
        tutorial.create(database)
        with mother.MotherSession() as s:
            marks = ", ".join(database.dialect.placeholder(name) for name in "nam")
            s.mq_query(f"INSERT INTO stars (star_name, star_age, star_mass) VALUES ({marks})",
                       [{"n": f"star number {i}", "a": i, "m": i * 7} for i in range(rows)])
        query = "SELECT * FROM stars"

        def plain() -> list[dict[str, Any]]:
            with mother.MotherSession() as s:
                return s.mr_query(query)

        def session(s: mother.Session) -> Callable[[], list[mother.DbMother]]:
            return lambda: mother.MotherBox(Stars, None, mother.MO_LOAD,
                                            session=s).getRecords(flag_obj=True)

        # warm up both paths (statement caches, schema) before anything is counted
        plain()
        with mother.MotherSession() as s:
            session(s)()
        # the requirement: N loaded rows held in a session against the same N rows held as
        # plain dicts, each side loading its own rows, so the values count on both sides
        plain_bytes, held = retained(plain)
        assert len(held) == rows
        del held
        s = mother.MotherSession()
        session_bytes, held = retained(session(s))
        assert len(held) == rows and len(list(s)) == rows
        del held
        s.close()
        # harsher: the containers only; the values of rows loaded beforehand are shared
        with mother.MotherSession() as s:
            loaded = s.mr_query(query)
        plain_only, held = retained(lambda: [dict(row) for row in loaded])
        del held
        s = mother.MotherSession()
        session_only, held = retained(lambda: [Stars.from_row(s, dict(row)) for row in loaded])
        assert len(list(s)) == rows
        del held
        s.close()
    finally:
        database.close()
    print(f"{rows} rows of stars, {label} (tracemalloc, retained after gc.collect()):")
    print("  loaded rows, values counted on both sides:")
    print(f"    plain dicts     : {plain_bytes / rows:7.1f} B/row")
    print(f"    session records : {session_bytes / rows:7.1f} B/row")
    print(f"    ratio           : {session_bytes / plain_bytes:7.2f}")
    print("  containers only (values shared, counted in neither):")
    print(f"    plain dict      : {plain_only / rows:7.1f} B/row")
    print(f"    session record  : {session_only / rows:7.1f} B/row")
    print(f"    ratio           : {session_only / plain_only:7.2f}")


def cmd_memory(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _memory("SQLite", f"sqlite:///{Path(tmp) / 'mem.db'}", args.rows)
    if args.dsn:
        server = psycopg.conninfo.conninfo_to_dict(args.dsn)
        name = f"mother_bench_memory_{os.getpid()}"
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            _memory("PostgreSQL", psycopg.conninfo.make_conninfo(**{**server, "dbname": name}),
                    args.rows)
        finally:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    uow = sub.add_parser("uow")
    uow.add_argument("--dsn", default=os.environ.get("MOTHER_TEST_PG_DSN"))
    uow.add_argument("--n", type=int, default=2000)
    memory = sub.add_parser("memory")
    memory.add_argument("--rows", type=int, default=100_000)
    memory.add_argument("--dsn", default=os.environ.get("MOTHER_TEST_PG_DSN"),
                        help="a PostgreSQL server: also measure there (in a scratch database)")
    args = parser.parse_args()
    {"uow": cmd_uow, "memory": cmd_memory}[args.command](args)


if __name__ == "__main__":
    main()
