"""How cost grows with work: time per row against rows for load, insert and update,
dbmother against raw psycopg (and SQLAlchemy's ORM when it is installed), as a PNG.

    python -m benchmarks.bench_growth --dsn "$DSN" [--top 1000000] [--out docs/_static/growth.png]

(``DSN`` a PostgreSQL server, for example ``host=127.0.0.1 port=54329 user=postgres
dbname=postgres``.)

Sizes go from 10 rows to ``--top`` by powers of ten. Each point is the best of
``--repeat`` runs (one run from 100,000 rows on), one transaction each,
committed. The work, for each contender:

* **load**: every row of the table into objects: dbmother records
  (``MotherBox(..., MO_LOAD).getRecords(flag_obj=True)``), SQLAlchemy ORM
  objects, raw psycopg dicts (``fetchall`` with ``dict_row``);
* **insert**: the rows with their keys back: ``MotherMany(MO_SAVE)``
  (``session.add_all`` + flush for SQLAlchemy), raw ``executemany(…,
  returning=True)``; raw ``COPY`` (no keys) as the limit;
* **update**: a new value in every row, objects loaded before the clock starts:
  ``setField`` on each record and the session's commit (attributes set and
  commit for SQLAlchemy), raw ``executemany`` of ``UPDATE … WHERE key``.

The figures also print as a table (milliseconds per run and microseconds per row).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

import mother
from benchmarks.timing import create_scratch, drop_scratch
from mother import MO_LOAD, MO_SAVE, MotherBox, MotherMany, MotherSession

try:
    import sqlalchemy
    from sqlalchemy import orm
except ImportError:  # the plot then has no SQLAlchemy lines
    sqlalchemy = None

TABLE = ("CREATE TABLE growth (g_id SERIAL PRIMARY KEY, g_name TEXT NOT NULL, "
         "g_mass INTEGER NOT NULL)")
#: one colour per contender in every panel
COLORS = {"dbmother": "tab:blue", "raw psycopg": "tab:orange", "raw COPY (no keys)": "tab:gray",
          "SQLAlchemy ORM": "tab:green"}
#: per operation, per contender: run(n) -> seconds
Work = dict[str, dict[str, Callable[[int], float]]]


def rows(n: int) -> list[dict[str, Any]]:
    return [{"g_name": f"row {i}", "g_mass": i % 97} for i in range(n)]


class Bench:
    """The scratch database and what each contender needs to run on it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.raw = psycopg.connect(dsn, row_factory=dict_row)
        mother.init_mother(dsn=dsn, pool_min=1)
        self.engine: Any = None
        if sqlalchemy is not None:
            self.engine = sqlalchemy.create_engine("postgresql+psycopg://",
                                                   creator=lambda: psycopg.connect(dsn))

            class Base(orm.DeclarativeBase):
                pass

            class Growth(Base):
                __tablename__ = "growth"
                g_id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
                g_name: orm.Mapped[str]
                g_mass: orm.Mapped[int]

            self.Growth = Growth

    def fill(self, n: int) -> None:
        """The table with exactly ``n`` rows (untimed)."""
        with self.raw.cursor() as cur:
            cur.execute("TRUNCATE growth RESTART IDENTITY")
            with cur.copy("COPY growth (g_name, g_mass) FROM STDIN") as copy:
                for row in rows(n):
                    copy.write_row((row["g_name"], row["g_mass"]))
        self.raw.commit()

    def empty(self, n: int) -> None:
        self.raw.execute("TRUNCATE growth RESTART IDENTITY")
        self.raw.commit()

    # -- load ---------------------------------------------------------------------------
    def load_mother(self, n: int) -> float:
        start = time.perf_counter()
        with MotherSession() as s:
            got = MotherBox("growth", None, MO_LOAD, session=s).getRecords(flag_obj=True)
        elapsed = time.perf_counter() - start
        assert len(got) == n
        return elapsed

    def load_raw(self, n: int) -> float:
        start = time.perf_counter()
        got = self.raw.execute("SELECT g_id, g_name, g_mass FROM growth").fetchall()
        self.raw.commit()
        elapsed = time.perf_counter() - start
        assert len(got) == n
        return elapsed

    def load_sqlalchemy(self, n: int) -> float:
        start = time.perf_counter()
        with orm.Session(self.engine) as s:
            got = s.scalars(sqlalchemy.select(self.Growth)).all()
            s.commit()
        elapsed = time.perf_counter() - start
        assert len(got) == n
        return elapsed

    # -- insert -------------------------------------------------------------------------
    def insert_mother(self, n: int) -> float:
        data = rows(n)
        start = time.perf_counter()
        with MotherSession() as s:
            MotherMany("growth", data, MO_SAVE, s)
        elapsed = time.perf_counter() - start
        assert all("g_id" in row for row in data)
        return elapsed

    def insert_raw(self, n: int) -> float:
        data = [(row["g_name"], row["g_mass"]) for row in rows(n)]
        start = time.perf_counter()
        with self.raw.cursor() as cur:
            cur.executemany("INSERT INTO growth (g_name, g_mass) VALUES (%s, %s) "
                            "RETURNING g_id", data, returning=True)
            keys = []
            while True:
                keys.append(cur.fetchone())
                if not cur.nextset():
                    break
        self.raw.commit()
        elapsed = time.perf_counter() - start
        assert len(keys) == n
        return elapsed

    def insert_copy(self, n: int) -> float:
        data = [(row["g_name"], row["g_mass"]) for row in rows(n)]
        start = time.perf_counter()
        with self.raw.cursor() as cur, cur.copy("COPY growth (g_name, g_mass) FROM STDIN") \
                as copy:
            for row in data:
                copy.write_row(row)
        self.raw.commit()
        return time.perf_counter() - start

    def insert_sqlalchemy(self, n: int) -> float:
        objs = [self.Growth(**row) for row in rows(n)]
        start = time.perf_counter()
        with orm.Session(self.engine) as s:
            s.add_all(objs)
            s.flush()
            keys = [obj.g_id for obj in objs]
            s.commit()
        elapsed = time.perf_counter() - start
        assert None not in keys
        return elapsed

    # -- update -------------------------------------------------------------------------
    def update_mother(self, n: int) -> float:
        with MotherSession() as s:
            records = MotherBox("growth", None, MO_LOAD, session=s).getRecords(flag_obj=True)
            start = time.perf_counter()
            for record in records:
                record.setField("g_mass", record.getField("g_mass") + 1)
            s.commit()
            return time.perf_counter() - start

    def update_raw(self, n: int) -> float:
        found = self.raw.execute("SELECT g_id, g_mass FROM growth").fetchall()
        start = time.perf_counter()
        with self.raw.cursor() as cur:
            cur.executemany("UPDATE growth SET g_mass = %s WHERE g_id = %s",
                            [(row["g_mass"] + 1, row["g_id"]) for row in found])
        self.raw.commit()
        return time.perf_counter() - start

    def update_sqlalchemy(self, n: int) -> float:
        with orm.Session(self.engine) as s:
            objs = s.scalars(sqlalchemy.select(self.Growth)).all()
            start = time.perf_counter()
            for obj in objs:
                obj.g_mass = obj.g_mass + 1
            s.commit()
            return time.perf_counter() - start

    def work(self) -> tuple[Work, dict[str, Callable[[int], None]]]:
        """The contenders of each operation, and how to prepare the table for it."""
        work: Work = {
            "load": {"dbmother": self.load_mother, "raw psycopg": self.load_raw},
            "insert": {"dbmother": self.insert_mother, "raw psycopg": self.insert_raw,
                       "raw COPY (no keys)": self.insert_copy},
            "update": {"dbmother": self.update_mother, "raw psycopg": self.update_raw},
        }
        if self.engine is not None:
            work["load"]["SQLAlchemy ORM"] = self.load_sqlalchemy
            work["insert"]["SQLAlchemy ORM"] = self.insert_sqlalchemy
            work["update"]["SQLAlchemy ORM"] = self.update_sqlalchemy
        return work, {"load": self.fill, "insert": self.empty, "update": self.fill}


def measure(bench: Bench, sizes: list[int], repeat: int
            ) -> dict[str, dict[str, list[float]]]:
    """Seconds per row, per operation, per contender, per size."""
    work, prepare = bench.work()
    results: dict[str, dict[str, list[float]]] = {
        op: {name: [] for name in contenders} for op, contenders in work.items()}
    for n in sizes:
        runs = repeat if n < 100_000 else 1
        for op, contenders in work.items():
            for name, run in contenders.items():
                best = float("inf")
                for _ in range(runs):
                    prepare[op](n)
                    best = min(best, run(n))
                results[op][name].append(best / n)
                print(f"{op:<7} {name:<20} {n:>9} rows {best * 1e3:10.1f} ms "
                      f"{best / n * 1e6:8.2f} µs/row", flush=True)
    return results


def plot(results: dict[str, dict[str, list[float]]], sizes: list[int], out: Path,
         title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, len(results), figsize=(5 * len(results), 4.2),
                                   sharey=True)
    for axis, (op, contenders) in zip(axes, results.items()):
        for name, per_row in contenders.items():
            style = "--" if "COPY" in name else "-"
            axis.plot(sizes, [value * 1e6 for value in per_row], style, marker="o", label=name,
                      color=COLORS.get(name))
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(op)
        axis.set_xlabel("rows")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    axes[0].set_ylabel("µs per row")
    figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="a PostgreSQL server (any database)")
    parser.add_argument("--top", type=int, default=1_000_000, help="the largest size")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/_static/growth.png"))
    args = parser.parse_args()
    sizes = [10 ** k for k in range(1, 8) if 10 ** k <= args.top]
    name, dsn = create_scratch(args.dsn)
    bench = None
    try:
        with psycopg.connect(dsn) as conn:
            conn.execute(TABLE)
        bench = Bench(dsn)
        results = measure(bench, sizes, args.repeat)
        versions = f"psycopg {psycopg.__version__}" + (
            f", SQLAlchemy {sqlalchemy.__version__}" if sqlalchemy is not None else "")
        plot(results, sizes, args.out, f"time per row, best of {args.repeat} ({versions})")
    finally:
        if bench is not None:
            bench.raw.close()
            if bench.engine is not None:
                bench.engine.dispose()
        mother.close_all()
        drop_scratch(args.dsn, name)


if __name__ == "__main__":
    main()
