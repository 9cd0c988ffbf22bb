"""A fixed-size ring of recent audio stamped with the host clock, filled by the device's callback thread."""
from __future__ import annotations

import threading

import numpy as np


class AudioRing:
    """The last `seconds` of (channels, samples) float32 audio at `rate` Hz.

    `write` stamps the newest sample with the host's monotonic time; `window(end, n)` returns the n
    samples ending at host time `end`, zero-filled where nothing arrived, and whether audio that
    should have been there is missing (an underrun: the device or its driver fell behind).
    """

    def __init__(self, rate: float, channels: int, seconds: float = 4.0):
        self.rate, self.channels = float(rate), int(channels)
        self._buf = np.zeros((self.channels, max(1, int(rate * seconds))), np.float32)
        self._written = 0             # samples ever written
        self._end_time: float | None = None
        self._lock = threading.Lock()

    def write(self, block: np.ndarray, end_time: float) -> None:
        """`block`: (samples, channels) as sounddevice delivers it."""
        data = np.asarray(block, np.float32).T
        n, size = data.shape[1], self._buf.shape[1]
        if n >= size:
            data, n = data[:, -size:], size
        with self._lock:
            start = self._written % size
            first = min(n, size - start)
            self._buf[:, start:start + first] = data[:, :first]
            self._buf[:, :n - first] = data[:, first:]
            self._written += n
            self._end_time = end_time

    def window(self, end_time: float, n: int, tolerance_s: float = 0.05) -> tuple[np.ndarray, bool]:
        out = np.zeros((self.channels, n), np.float32)
        with self._lock:
            if self._end_time is None:
                return out, True
            size = self._buf.shape[1]
            late = end_time - self._end_time           # seconds the window reaches past the newest sample
            missing = max(0, int(round((late - tolerance_s) * self.rate))) if late > tolerance_s else 0
            back = max(0, int(round(-late * self.rate)))  # the window ends this many samples before the newest
            have = min(n - missing, self._written - back, size - back)
            if have > 0:
                newest = self._written - back           # one past the last sample to take
                idx = np.arange(newest - have, newest) % size
                out[:, n - missing - have:n - missing] = self._buf[:, idx]
        return out, missing > 0 or (have < n - missing and self._written < n)
