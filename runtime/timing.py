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


def ort_session_options(threads: int = 0, spinning: bool = False):
    """ONNX Runtime options for fair timing: `threads` intra-op threads (0 = its default) and no
    spinning — idle pools that spin steal the cores from the session being timed next (2-thread
    medians went from 2.8 ms to 15–23 ms at 120×160 here with spinning on)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return opts
