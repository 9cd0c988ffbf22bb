"""Smooth camera paths of a robot wandering through a room, at robot height, looking ahead.

The robot drives forward `step` metres a frame, its heading drifting smoothly and steering towards
open space when something is close; it never leaves the walkable cells of the layout (furniture and
walls stay at least `ROBOT_RADIUS` away). The camera rides at 0.3-1.2 m, pitched 5-25 degrees down,
with slow sways of height, pitch and pan and a slight roll.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.sim.camera import pose_from_heading
from mke.runtime.sim.layout import CELL, Layout

MIN_HEIGHT, MAX_HEIGHT = 0.3, 1.2  # metres
MAX_TURN = 0.12  # radians per frame


def wander(layout: Layout, n_frames: int, rng: np.random.Generator, step: float = 0.08) -> list[np.ndarray]:
    """`n_frames` camera-to-world poses (4x4 float64, OpenCV camera axes) along one path."""
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise MkeError(f"n_frames {n_frames!r} must be a non-negative integer")
    if not 0.0 < step <= 1.0:
        raise MkeError(f"trajectory step {step!r} must be in (0, 1] metres per frame")
    walk = layout.walkable
    if not walk.any():
        raise MkeError(f"room of seed {layout.seed} has no space to stand in")

    def free(x, y):
        i, j = int(y / CELL), int(x / CELL)
        return 0 <= i < walk.shape[0] and 0 <= j < walk.shape[1] and bool(walk[i, j])

    def open_ahead(x, y, heading, reach=1.5):
        for k in range(1, int(reach / CELL) + 1):
            if not free(x + k * CELL * math.cos(heading), y + k * CELL * math.sin(heading)):
                return (k - 1) * CELL
        return reach

    cells = np.argwhere(_largest_region(walk))
    i, j = cells[rng.integers(len(cells))]
    x, y = (j + 0.5) * CELL, (i + 0.5) * CELL
    headings = np.linspace(-math.pi, math.pi, 36, endpoint=False)
    yaw = float(headings[int(np.argmax([open_ahead(x, y, a) for a in headings]))])
    u = rng.uniform
    base_h, base_pitch = u(MIN_HEIGHT, MAX_HEIGHT), math.radians(u(-25, -5))
    sway = [(u(0.02, 0.12), u(40, 120), u(0, 2 * math.pi)),  # height: amplitude m, period frames, phase
            (math.radians(u(1, 5)), u(30, 90), u(0, 2 * math.pi)),  # pitch
            (math.radians(u(3, 12)), u(40, 120), u(0, 2 * math.pi))]  # pan
    roll_amp = math.radians(u(0, 2))
    centre = (walk.shape[1] * CELL / 2, walk.shape[0] * CELL / 2)
    omega, target, poses = 0.0, yaw, []
    for f in range(n_frames):
        h, dp, pan = (a * math.sin(2 * math.pi * f / period + phase) for a, period, phase in sway)
        height = min(max(base_h + h, MIN_HEIGHT), MAX_HEIGHT)
        roll = roll_amp * math.sin(2 * math.pi * f / 70.0 + sway[0][2])
        poses.append(pose_from_heading((x, y, height), yaw + pan + _gaze(x, y, yaw, centre), base_pitch + dp, roll))
        ahead = open_ahead(x, y, yaw)
        if ahead < 0.8 or f % 30 == 0:  # head for open space, preferring small turns
            scores = [open_ahead(x, y, yaw + a, 4.0) - 0.4 * abs(a) + rng.normal(0.0, 0.3) for a in headings]
            target = yaw + float(headings[int(np.argmax(scores))])
        turn = 0.25 * _wrap(target - yaw) + rng.normal(0.0, 0.03)
        omega = min(max(0.6 * omega + 0.4 * turn, -MAX_TURN), MAX_TURN)
        yaw = _wrap(yaw + omega)
        v = step * min(max(ahead / 0.8, 0.2), 1.0)
        nx, ny = x + v * math.cos(yaw), y + v * math.sin(yaw)
        if free(nx, ny):
            x, y = nx, ny
    return poses


def _wrap(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))


def _gaze(x, y, heading, centre) -> float:
    """A pan of up to 30 degrees towards the room's middle, as a curious robot glances into the room;
    smooth in the bearing (no jump when the middle is behind) and fading out near the middle."""
    dx, dy = centre[0] - x, centre[1] - y
    return 0.52 * math.sin(math.atan2(dy, dx) - heading) * min(1.0, math.hypot(dx, dy))


def _largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of `mask`, so the robot starts where it has most room."""
    seen = np.zeros(mask.shape, bool)
    best: list[tuple[int, int]] = []
    h, w = mask.shape
    for start in map(tuple, np.argwhere(mask)):
        if seen[start]:
            continue
        seen[start] = True
        region, queue = [start], deque([start])
        while queue:
            i, j = queue.popleft()
            for n in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if 0 <= n[0] < h and 0 <= n[1] < w and mask[n] and not seen[n]:
                    seen[n] = True
                    region.append(n)
                    queue.append(n)
        if len(region) > len(best):
            best = region
    out = np.zeros(mask.shape, bool)
    out[tuple(np.array(best).T)] = True
    return out
