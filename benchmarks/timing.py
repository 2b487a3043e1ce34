"""Timing shared by the benchmarks: contenders run in turns, so drift hits all alike.

This machine's speed wanders by tens of percent over seconds (other tenants,
frequency scaling); timing one contender for a while and then the other
measures the wander as much as the code. Here the contenders take turns, in a
rotating order, and each call is timed on its own; the median per contender is
reported.

A turn is a block of :data:`BLOCK` calls of one contender, the first of which is
not timed. Right after another contender ran, a call finds the processor's caches
(instructions, data, branch history) filled with the other one's code and pays
to bring its own back. Measured with ``bench_tm`` (docs/unitofwork.rst, "The order
of the contenders"), the same unit run as two contenders took 1.03x to 1.05x its
own time when the contenders alternated call by call, 1.00x to 1.02x in turns of
ten; dbmother's immediate unit measured 0.92x raw psycopg's call by call and 1.00x
to 1.02x in turns. The settling call takes that out: every contender is timed in
its own steady state. ``block=1`` times them alternating, as before.
"""

from __future__ import annotations

import itertools
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Mapping

import psycopg

#: calls per turn of one contender; the first settles it and is not timed
BLOCK = 10


def interleaved(contenders: Mapping[str, Callable[[int], object]], n: int,
                warmup: int = 100, clock: Callable[[], int] = time.perf_counter_ns,
                block: int = BLOCK) -> dict[str, float]:
    """Median microseconds per call of each contender, ``n`` timed calls each, in turns of
    ``block`` calls (the first untimed; ``block=1``: every call timed, alternating), by
    ``clock`` (nanoseconds: elapsed by default; ``time.process_time_ns`` counts only the
    CPU this process spent, not its waits for the server). Each call is given a number
    of its own."""
    if block < 1:
        raise ValueError(f"block must be at least 1, not {block}")
    names = list(contenders)
    calls = itertools.count()
    for _ in range(warmup):
        for name in names:
            contenders[name](next(calls))
    settle = 1 if block > 1 else 0
    per_turn = block - settle
    samples: dict[str, list[int]] = {name: [] for name in names}
    for turn in range(-(-n // per_turn)):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            work, times = contenders[name], samples[name]
            for _ in range(settle):
                work(next(calls))
            for _ in range(min(per_turn, n - len(times))):
                start = clock()
                work(next(calls))
                times.append(clock() - start)
    return {name: statistics.median(values) / 1000 for name, values in samples.items()}


def fresh(work: Callable[[int], None], numbers: Iterator[int]) -> Callable[[int], None]:
    """``work`` called with a number never used before instead of the run's index.

    ``setField`` skips a value that already is the stored object, and each run of
    ``timing.interleaved`` numbers its calls from 0 again: with those numbers a session
    would sometimes not UPDATE at all, while the raw contender always does. Fresh
    numbers make every unit of work really change the row.
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
