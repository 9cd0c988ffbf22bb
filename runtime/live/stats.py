"""Run statistics: throughput, latency percentiles, drops, errors and memory, as a line and as JSON."""
from __future__ import annotations

import os
import threading
import time

import numpy as np


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Recent:
    """The last `size` values (for percentiles) and the running mean of all of them: constant memory."""

    def __init__(self, size: int = 4096):
        self._buf = np.zeros(size, np.float64)
        self._n = 0
        self._sum = 0.0

    def add(self, value: float) -> None:
        self._buf[self._n % self._buf.size] = value
        self._n += 1
        self._sum += value

    def percentile(self, q: float) -> float:
        return float(np.percentile(self._buf[:min(self._n, self._buf.size)], q)) if self._n else 0.0

    @property
    def mean(self) -> float:
        return self._sum / self._n if self._n else 0.0

    @property
    def count(self) -> int:
        return self._n


class RunStats:
    """Counters the capture and inference threads update; `line()` and `summary()` read them."""

    COUNTERS = ("captured", "processed", "dropped_stale", "dropped_source", "timeouts", "retries", "errors",
                "audio_underruns")

    def __init__(self, memory_baseline_after: int = 50):
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self.COUNTERS, 0)
        self.latency_ms, self.model_ms, self.preprocess_ms = Recent(), Recent(), Recent()
        self.started = time.monotonic()
        self.first_done: float | None = None
        self.last_done: float | None = None
        self.memory_baseline_after = memory_baseline_after
        self.rss_baseline: float | None = None
        self.rss_peak = 0.0
        self.errors: list[str] = []   # the first few messages, for the summary
        self._last_line = (self.started, 0)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def error(self, message: str) -> None:
        with self._lock:
            self.counts["errors"] += 1
            if len(self.errors) < 5:
                self.errors.append(message)

    def preprocessed(self, ms: float) -> None:
        with self._lock:
            self.preprocess_ms.add(ms)

    def done(self, latency_ms: float, model_ms: float, underrun: bool) -> None:
        now = time.monotonic()
        with self._lock:
            self.counts["processed"] += 1
            self.counts["audio_underruns"] += int(underrun)
            self.latency_ms.add(latency_ms)
            self.model_ms.add(model_ms)
            if self.first_done is None:
                self.first_done = now
            self.last_done = now
            n = self.counts["processed"]
            if n == self.memory_baseline_after or (n < self.memory_baseline_after and self.rss_baseline is None):
                self.rss_baseline = rss_mb()
            if n % 50 == 0:
                self.rss_peak = max(self.rss_peak, rss_mb())

    def fps(self) -> float:
        """Steady throughput: frames between the first and the last result, over that time."""
        n = self.counts["processed"]
        if n < 2 or self.last_done == self.first_done:
            return 0.0
        return (n - 1) / (self.last_done - self.first_done)

    def line(self) -> str:
        """One stats line; FPS over the time since the previous line."""
        now = time.monotonic()
        with self._lock:
            t0, n0 = self._last_line
            n = self.counts["processed"]
            self._last_line = (now, n)
            drops = self.counts["dropped_stale"] + self.counts["dropped_source"]
            return (f"{n} frames | {(n - n0) / max(now - t0, 1e-9):.1f} FPS | latency p50 "
                    f"{self.latency_ms.percentile(50):.1f} ms p95 {self.latency_ms.percentile(95):.1f} ms | model "
                    f"{self.model_ms.mean:.1f} ms | drops {drops} | errors {self.counts['errors']}")

    def summary(self) -> dict:
        rss_end = rss_mb()
        with self._lock:
            c = dict(self.counts)
            base = self.rss_baseline
            model_mean = self.model_ms.mean
            return {
                "frames": c["processed"],
                "captured": c["captured"],
                "seconds": round(time.monotonic() - self.started, 3),
                "fps": round(self.fps(), 2),
                "model_fps": round(1000.0 / model_mean, 2) if model_mean else 0.0,
                "latency_ms": {"p50": round(self.latency_ms.percentile(50), 2),
                               "p95": round(self.latency_ms.percentile(95), 2)},
                "model_ms": round(model_mean, 3),
                "preprocess_ms": round(self.preprocess_ms.mean, 3),
                "drops": c["dropped_stale"] + c["dropped_source"],
                "dropped": {"stale": c["dropped_stale"], "source": c["dropped_source"], "timeouts": c["timeouts"]},
                "retries": c["retries"],
                "errors": c["errors"],
                "error_messages": list(self.errors),
                "audio_underruns": c["audio_underruns"],
                "memory_mb": {"baseline": round(base, 1) if base else None, "end": round(rss_end, 1),
                              "peak": round(max(self.rss_peak, rss_end), 1),
                              "growth_pct": round(100.0 * (rss_end - base) / base, 2) if base else None,
                              "baseline_after_frames": self.memory_baseline_after},
            }
