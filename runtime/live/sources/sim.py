"""The simulator as a camera (`sim://?seed=3`): pybullet rooms (`mke.runtime.sim`) with a camera flying
through them, one room after another — RGB-D frames with no hardware at all, rendered at the model's
size. Paced at `fps` unless `real_time` is off."""
from __future__ import annotations

import time
from dataclasses import dataclass

from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame, Status
from mke.runtime.live.sources.base import Source
from mke.runtime.live.sources.registry import SourceContext, register_source

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


@dataclass(frozen=True)
class SimOptions:
    seed: int = 0       # the first room's seed; room k is seed + k
    fps: float = 30.0   # frames per second of simulated time (and of real time, unless --fast)

    def __post_init__(self):
        if not self.fps > 0:
            raise MkeError(f"fps must be positive, got {self.fps}")


@register_source("sim", options=SimOptions, modalities={"rgb", "depth"}, form="sim://",
                 summary="the built-in pybullet rooms, rendered at the model's size (no hardware)")
def open_sim(options: SimOptions, context: SourceContext) -> SimCamera:
    return SimCamera(size=context.image_size, seed=options.seed, fps=options.fps, real_time=context.real_time)
