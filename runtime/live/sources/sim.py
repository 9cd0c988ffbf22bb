"""The simulator as a camera: pybullet rooms (`mke.runtime.sim`) with a camera flying through them,
one room after another — RGB-D frames with no hardware at all. Paced at `fps` unless `real_time` is off."""
from __future__ import annotations

import time

from mke.runtime.live.frame import LiveFrame, Status
from mke.runtime.live.sources.base import Source

FRAMES_PER_ROOM = 300


class SimCamera(Source):
    modalities = frozenset({"rgb", "depth"})

    def __init__(self, size: tuple[int, int] = (160, 120), seed: int = 0, fps: float = 30.0,
                 real_time: bool = True, step: float = 0.05):
        self.size, self.seed, self.fps, self.live, self.step = size, int(seed), float(fps), bool(real_time), step
        self.name = f"sim rooms from seed {seed} at {size[0]}x{size[1]}"
        self._world = self._frames = None
        self._room = 0
        self._index = 0
        self._start = 0.0

    def open(self) -> None:
        self._room = 0
        self._next_room()
        self._start = time.monotonic()

    def _next_room(self) -> None:
        from mke.runtime.sim import World

        if self._world is not None:
            self._world.close()
        self._world = World.random(self.seed + self._room)
        self._frames = self._world.frames(FRAMES_PER_ROOM, self.size[0], self.size[1], seed=self.seed,
                                          step=self.step)
        self._room += 1

    def read(self, timeout_s: float) -> tuple[Status, LiveFrame | None]:
        frame = next(self._frames, None)
        if frame is None:
            self._next_room()
            frame = next(self._frames)
        due = self._start + self._index / self.fps
        if self.live:
            time.sleep(max(0.0, due - time.monotonic()))
        live = LiveFrame(index=self._index, timestamp_s=self._index / self.fps, arrival_s=time.monotonic(),
                         rgb=frame.rgb, depth=frame.depth, intrinsics=frame.intrinsics,
                         up=frame.up)
        self._index += 1
        return Status.OK, live

    def close(self) -> None:
        if self._world is not None:
            self._world.close()
            self._world = self._frames = None
