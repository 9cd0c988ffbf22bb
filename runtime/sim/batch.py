"""Whole rooms rendered in one call — the unit of work when a dataset is rendered by several
processes (this module imports neither torch nor the training side, so a worker starts fast)."""
from __future__ import annotations

import numpy as np

from mke.runtime.sim.world import World

FIELDS = ("rgb", "depth_mm", "labels", "intrinsics", "up")


def field_layout(width: int, height: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each field's per-frame shape and dtype as `render_rooms` returns them: what a writer needs to
    lay out files for frames not rendered yet."""
    return {"rgb": ((height, width, 3), np.dtype(np.uint8)), "depth_mm": ((height, width), np.dtype(np.uint16)),
            "labels": ((height, width), np.dtype(np.uint8)), "intrinsics": ((4,), np.dtype(np.float64)),
            "up": ((3,), np.dtype(np.float64))}


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
