"""Timing shared by the benchmarks: contenders run in turns, so drift hits all alike.

This machine's speed wanders by tens of percent over seconds (other tenants,
frequency scaling); timing one contender for a while and then the other
measures the wander as much as the code. Here every iteration runs each
contender once, in a rotating order, and each is timed on its own; the
median per contender is reported.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Mapping

import psycopg


def interleaved(contenders: Mapping[str, Callable[[int], object]], n: int,
                warmup: int = 100, clock: Callable[[], int] = time.perf_counter_ns
                ) -> dict[str, float]:
    """Median microseconds per call of each contender, run in turns ``n`` times, by
    ``clock`` (nanoseconds: elapsed by default; ``time.process_time_ns`` counts only the
    CPU this process spent, not its waits for the server)."""
    names = list(contenders)
    for i in range(warmup):
        for name in names:
            contenders[name](i)
    samples: dict[str, list[int]] = {name: [] for name in names}
    for i in range(n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = clock()
            contenders[name](i)
            samples[name].append(clock() - start)
    return {name: statistics.median(values) / 1000 for name, values in samples.items()}


def fresh(work: Callable[[int], None], numbers: Iterator[int]) -> Callable[[int], None]:
    """``work`` called with a number never used before instead of the run's index.

    ``setField`` skips a value that already is the stored object, and the runs of
    ``timing.interleaved`` (warm-up, then timed) and of the passes here reuse their
    indexes: with them a session would sometimes not UPDATE at all, while the raw
    contender always does. Fresh numbers make every unit of work really change the row.
    """
    return lambda _index: work(next(numbers))


def create_scratch(server_dsn: str) -> tuple[str, str]:
    """A fresh PostgreSQL database on the server of ``server_dsn`` for one benchmark run:
    ``(its name, its DSN)``; :func:`drop_scratch` drops it."""
    name = f"mother_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = psycopg.conninfo.conninfo_to_dict(server_dsn)
    params["dbname"] = name
    return name, psycopg.conninfo.make_conninfo(**params)


def drop_scratch(server_dsn: str, name: str) -> None:
    """Drop the scratch database ``name`` (connections to it closed by force)."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
