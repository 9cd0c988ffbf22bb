"""Fault injection: what a robot's sensors do on a bad day, on demand and reproducibly.

`--inject-faults zero_depth=0.02,nan_depth=0.02,drop=0.05,underrun=0.05,seed=0` gives each frame
those probabilities of an all-zero depth image, an all-NaN depth image (float metres, as a driver
reporting "no data" might), being dropped before the pipeline sees it, and its audio window
missing its newest 200 ms. `lose_at=N` makes the device fail for good after N frames (the
pipeline's retries then give up and the run exits with the "device lost" status).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, fields

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame, Status
from mke.runtime.live.sources.base import Source

UNDERRUN_S = 0.2


@dataclass(frozen=True)
class FaultPlan:
    zero_depth: float = 0.0
    nan_depth: float = 0.0
    drop: float = 0.0
    underrun: float = 0.0
    lose_at: int | None = None
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> "FaultPlan":
        names = [f.name for f in fields(cls)]
        values: dict = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq:
                raise MkeError(f"--inject-faults: expected key=value, got {part!r}")
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                raise MkeError(f"--inject-faults: unknown fault {key!r}" + (f" (did you mean {close[0]!r}?)" if close
                               else "") + f"; expected {', '.join(names)} as key=value pairs")
            try:
                values[key] = int(value) if key in ("lose_at", "seed") else float(value)
            except ValueError:
                raise MkeError(f"--inject-faults: {key} needs a number, got {value!r}") from None
            if key not in ("lose_at", "seed") and not 0.0 <= values[key] <= 1.0:
                raise MkeError(f"--inject-faults: {key} is a probability in 0..1, got {values[key]}")
        return cls(**values)


class FaultySource(Source):
    """Wraps a source and injects a FaultPlan's faults; `injected` counts what it did."""

    def __init__(self, inner: Source, plan: FaultPlan):
        self.inner, self.plan = inner, plan
        self.modalities, self.live = inner.modalities, inner.live
        self.injected = {"zero_depth": 0, "nan_depth": 0, "dropped": 0, "underrun": 0}
        self._rng = np.random.default_rng(plan.seed)
        self._frames = 0
        self._lost = False

    @property
    def name(self) -> str:
        return self.inner.name

    def describe(self) -> str:
        return f"{self.inner.describe()} with injected faults ({self.plan})"

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def reopen(self) -> None:
        if not self._lost:
            self.inner.reopen()

    def read(self, timeout_s: float) -> tuple[Status, LiveFrame | None]:
        plan, rng = self.plan, self._rng
        if plan.lose_at is not None and self._frames >= plan.lose_at:
            self._lost = True
            return Status.ERROR, None
        draws = rng.random(4)
        underrun = "audio" in self.modalities and draws[3] < plan.underrun
        if underrun:
            self.inner.inject_missing_s = UNDERRUN_S
        status, frame = self.inner.read(timeout_s)
        if status is not Status.OK:
            return status, frame
        self._frames += 1
        if draws[0] < plan.drop:
            self.injected["dropped"] += 1
            return Status.DROPPED, None
        self.injected["underrun"] += int(underrun)
        if frame.depth is not None:
            if draws[1] < plan.zero_depth:
                frame.depth = np.zeros_like(frame.depth)
                self.injected["zero_depth"] += 1
            elif draws[2] < plan.nan_depth:
                frame.depth = np.full(frame.depth.shape, np.nan, np.float32)
                self.injected["nan_depth"] += 1
        return status, frame
