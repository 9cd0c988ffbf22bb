"""Whole rooms rendered in one call — the unit of work when a dataset is rendered by several
processes (this module imports neither torch nor the training side, so a worker starts fast)."""
from __future__ import annotations

import numpy as np

from mke.runtime.sim.world import World

FIELDS = ("rgb", "depth_mm", "labels", "intrinsics", "up")


def render_rooms(rooms: list[tuple[int, int]], width: int, height: int, step: float) -> list[dict[str, np.ndarray]]:
    """For each (room seed, frame count): the room's trajectory rendered as stacked arrays
    rgb (N, H, W, 3) uint8, depth_mm (N, H, W) uint16, labels (N, H, W) uint8, intrinsics (N, 4)
    fx fy cx cy and up (N, 3); the trajectory seed is the room seed."""
    out = []
    for seed, n in rooms:
        arrays = {k: [] for k in FIELDS}
        with World.random(seed) as world:
            for frame in world.frames(n, width, height, seed=seed, step=step):
                arrays["rgb"].append(frame.rgb)
                arrays["depth_mm"].append(frame.depth)
                arrays["labels"].append(frame.labels)
                k = frame.intrinsics
                arrays["intrinsics"].append((k.fx, k.fy, k.cx, k.cy))
                arrays["up"].append(frame.up)
        out.append({k: np.stack(v) for k, v in arrays.items()})
    return out
