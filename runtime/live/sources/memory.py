"""Frames read once from another source, kept in memory and replayed in a loop: a source that can
outrun any model.

`mke-live --benchmark` uses it to measure what the pipeline itself costs (capture hand-over,
preprocessing, inference, decoding) apart from what the sensor or its SDK can deliver: the SDK's
playback of a compressed recording decodes a 640×480 RGB-D frameset in about 15 ms on a busy
2-core machine, slower than a small model, and no pipeline can be faster than its source. The
frames are exactly what the source gave (the SDK's decoded, depth-aligned frames), shared read-only
between repetitions; each repetition is a new LiveFrame with its own index and arrival time.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame, Status
from mke.runtime.live.sources.base import Source

DEFAULT_FRAMES = 100  # 640×480 RGB-D: 1.5 MB a frame, 150 MB — more than any cache, so memory traffic is real


def _read_only(array):
    if isinstance(array, np.ndarray):
        array.flags.writeable = False  # repetitions share the array: nobody may change it in place
    return array


class Preloaded(Source):
    """Up to `frames` frames of `source` (opened, read to its end or to `frames`, closed), looped."""

    live = False

    def __init__(self, source: Source, frames: int = DEFAULT_FRAMES, read_timeout_s: float = 5.0):
        if frames < 1:
            raise MkeError(f"preloading needs at least one frame, got {frames}")
        self.source, self.frames, self.read_timeout_s = source, int(frames), read_timeout_s
        self.modalities = source.modalities
        self.name = f"{source.name}, preloaded"
        self._cache: list[LiveFrame] = []
        self._next = 0
        self._index = 0

    def open(self) -> None:
        if not self._cache:
            cache = []
            self.source.open()
            try:
                timeouts = 0
                while len(cache) < self.frames:
                    status, frame = self.source.read(self.read_timeout_s)
                    if status is Status.OK:
                        for array in (frame.rgb, frame.depth, frame.audio, frame.up, *frame.extras.values()):
                            _read_only(array)
                        cache.append(frame)
                    elif status in (Status.END, Status.ERROR):
                        break
                    elif status is Status.TIMEOUT:
                        timeouts += 1
                        if timeouts > 3:
                            break
            finally:
                self.source.close()
            if not cache:
                raise MkeError(f"{self.source.name} gave no frame to preload")
            self._cache = cache
            self.name = f"{self.source.name}, {len(cache)} frames decoded once into memory and looped"
        self._next = 0

    def read(self, timeout_s: float) -> tuple[Status, LiveFrame | None]:
        if not self._cache:
            raise MkeError(f"{self.name}: read before open")
        frame = self._cache[self._next]
        self._next = (self._next + 1) % len(self._cache)
        out = replace(frame, index=self._index, arrival_s=time.monotonic())
        self._index += 1
        return Status.OK, out

    def close(self) -> None:
        self._next = 0

    def describe(self) -> str:
        return self.name
