"""Side-by-side latency: several callables timed in turn within one loop.

Round r runs every callable once, in an order that rotates each round, so that a busy machine
(other jobs, frequency changes) slows them all alike: compare ratios, not the absolute milliseconds
of a shared machine. Used by mke-export's table, the calibration benchmark and, later, mke-live.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from mke.runtime.errors import MkeError


@dataclass(frozen=True)
class Latency:
    median_ms: float
    p90_ms: float
    runs: int


def interleaved_latency(runs: Mapping[str, Callable[[], object]], repeats: int = 50,
                        warmup: int = 5) -> dict[str, Latency]:
    """{name: median and 90th-percentile milliseconds} of each callable, measured interleaved."""
    if not runs:
        raise MkeError("nothing to time: give at least one callable")
    if repeats < 1 or warmup < 0:
        raise MkeError(f"repeats must be ≥ 1 and warmup ≥ 0 (got {repeats}, {warmup})")
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times = {name: np.empty(repeats) for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runs[name]()
            times[name][r] = time.perf_counter() - start
    return {n: Latency(float(np.median(t) * 1e3), float(np.percentile(t, 90) * 1e3), repeats) for n, t in times.items()}

