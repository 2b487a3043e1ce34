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
from collections.abc import Callable, Mapping


def interleaved(contenders: Mapping[str, Callable[[int], object]], n: int,
                warmup: int = 100) -> dict[str, float]:
    """Median microseconds per call of each contender, run in turns ``n`` times."""
    names = list(contenders)
    for i in range(warmup):
        for name in names:
            contenders[name](i)
    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for i in range(n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = clock()
            contenders[name](i)
            samples[name].append(clock() - start)
    return {name: statistics.median(values) / 1000 for name, values in samples.items()}
