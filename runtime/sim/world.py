"""A simulated room in its own pybullet client, rendered as an RGB-D camera with labels."""
from __future__ import annotations

import ctypes
import math
import os
import sys
import tempfile
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.sim.appearance import write_png
from mke.runtime.camera import Intrinsics
from mke.runtime.depth_units import metres_to_millimetres
from mke.runtime.sim.camera import check_pose, check_resolution, projection_matrix, view_matrix, zbuffer_to_metres
from mke.runtime.sim.classes import VOID
from mke.runtime.sim.layout import Layout, check_seed, random_layout
from mke.runtime.sim.noise import DepthNoise, apply_depth_noise
from mke.runtime.sim.trajectory import wander

NEAR, FAR = 0.05, 40.0  # clipping planes, metres
DEPTH_SCALE = 0.001  # metres per depth unit (millimetres, as a RealSense reports)


def _pybullet():
    try:
        import pybullet
    except ImportError as e:
        raise MkeError(f"the simulator needs pybullet, which is not importable ({e}): pip install pybullet") from e
    return pybullet


def _connect_quietly(p) -> int:
    """p.connect(DIRECT) without the build-time line pybullet's C code prints to stdout (our stdout
    carries the commands' own output)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            try:
                return p.connect(p.DIRECT)
            finally:
                ctypes.CDLL(None).fflush(None)  # the line sits in C's stdout buffer until flushed
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass
class Frame:
    """One RGB-D camera frame with per-pixel labels, aligned pixel for pixel."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) uint16 millimetres along the optical axis, 0 = no measurement
    labels: np.ndarray  # (H, W) uint8 class ids (CLASS_NAMES), VOID = 255 where nothing was hit
    intrinsics: Intrinsics
    pose: np.ndarray  # (4, 4) float64 camera-to-world, OpenCV axes (x right, y down, z forward)
    depth_scale: float = DEPTH_SCALE

    @property
    def up(self) -> np.ndarray:
        """Gravity's opposite (world +z) in camera coordinates, a unit 3-vector: what HHA needs."""
        return self.pose[2, :3].copy()


class World:
    """One furnished room in a private pybullet DIRECT client; close it (or use `with`) when done."""

    def __init__(self, layout: Layout):
        p = _pybullet()
        self.layout = layout
        self._p = p
        self._cid = _connect_quietly(p)
        if self._cid < 0:
            raise MkeError("pybullet could not open another DIRECT client")
        self._finalizer = weakref.finalize(self, _disconnect, p, self._cid)
        try:
            self._class_of_uid = self._build()
        except BaseException:
            self.close()
            raise

    @classmethod
    def random(cls, seed: int) -> "World":
        """A random room; the same seed gives the same room, colours and light."""
        return cls(random_layout(seed))

    @property
    def seed(self) -> int:
        return self.layout.seed

    def _build(self) -> np.ndarray:
        p, cid = self._p, self._cid
        with tempfile.TemporaryDirectory(prefix="mke-sim-") as tmp:
            textures = []
            for k, image in enumerate(self.layout.textures):
                path = Path(tmp) / f"texture{k}.png"
                write_png(path, image)
                textures.append(p.loadTexture(str(path), physicsClientId=cid))
        classes = {}
        for part in self.layout.parts:
            mat = self.layout.materials[part.material]
            if part.shape == "box":
                vis = p.createVisualShape(p.GEOM_BOX, halfExtents=part.size, rgbaColor=mat.rgba, physicsClientId=cid)
            elif part.shape == "cylinder":
                vis = p.createVisualShape(p.GEOM_CYLINDER, radius=part.size[0], length=part.size[1],
                                          rgbaColor=mat.rgba, physicsClientId=cid)
            else:
                vis = p.createVisualShape(p.GEOM_SPHERE, radius=part.size[0], rgbaColor=mat.rgba,
                                          physicsClientId=cid)
            uid = p.createMultiBody(baseMass=0, baseVisualShapeIndex=vis, basePosition=part.position,
                                    baseOrientation=(0.0, 0.0, math.sin(part.yaw / 2), math.cos(part.yaw / 2)),
                                    physicsClientId=cid)
            if mat.texture >= 0:
                p.changeVisualShape(uid, -1, textureUniqueId=textures[mat.texture], physicsClientId=cid)
            classes[uid] = part.class_id
        lut = np.full(max(classes) + 2, VOID, np.uint8)  # index uid + 1, so -1 (nothing) maps to VOID
        for uid, class_id in classes.items():
            lut[uid + 1] = class_id
        return lut

    def trajectory(self, n_frames: int, seed: int = 0, step: float = 0.08) -> list[np.ndarray]:
        """`n_frames` camera-to-world poses along a smooth path through the room, `step` metres apart."""
        seed = check_seed(seed, "trajectory seed")
        return wander(self.layout, n_frames, np.random.default_rng([self.seed, seed, 7]), step)

    def render(self, pose, width: int = 160, height: int = 120, *, vfov_deg: float = 50.0,
               noise: DepthNoise | None = DepthNoise(), rgb_noise: float = 2.0, exposure_jitter: float = 0.08,
               rng: np.random.Generator | int | None = None) -> Frame:
        """Render the camera at `pose` (4x4 camera-to-world, OpenCV axes, metres).

        `noise` is the depth sensor model (None: exact depth rounded to mm); `rgb_noise` the std of
        per-pixel colour noise in grey levels and `exposure_jitter` the +- fraction of a per-frame
        brightness gain. `rng` (a Generator or an int seed) drives the noise; by default it is
        seeded from the world's seed and the pose, so the same call gives the same frame."""
        self._check_open()
        pose = check_pose(pose)
        check_resolution(width, height)
        intr = Intrinsics.from_vertical_fov(width, height, vfov_deg)
        if not 0 <= rgb_noise <= 64 or not 0 <= exposure_jitter < 1:
            raise MkeError(f"rgb_noise {rgb_noise!r} must be in 0..64 grey levels and exposure_jitter "
                           f"{exposure_jitter!r} in [0, 1)")
        rng = self._frame_rng(pose, rng)
        p = self._p
        _, _, rgba, zbuf, seg = p.getCameraImage(
            width, height, view_matrix(pose), projection_matrix(intr, NEAR, FAR), renderer=p.ER_TINY_RENDERER,
            physicsClientId=self._cid, **self.layout.lighting.camera_image_kwargs())
        rgba = np.asarray(rgba, np.uint8).reshape(height, width, 4)
        seg = np.asarray(seg, np.int64).reshape(height, width)
        hit = seg >= 0
        depth_m = zbuffer_to_metres(np.asarray(zbuf, np.float32).reshape(height, width), NEAR, FAR)
        depth_m[~hit] = np.nan
        labels = self._class_of_uid[np.clip(seg + 1, 0, len(self._class_of_uid) - 1)]
        if noise is None:
            depth = metres_to_millimetres(depth_m)
        else:
            depth = apply_depth_noise(depth_m, rng, noise, intr.fx, surface_ids=seg)
        return Frame(rgb=_camera_rgb(rgba[:, :, :3], rng, rgb_noise, exposure_jitter), depth=depth,
                     labels=labels, intrinsics=intr, pose=pose.copy())

    def frames(self, n_frames: int, width: int = 160, height: int = 120, seed: int = 0, step: float = 0.08,
               **render_kwargs) -> Iterator[Frame]:
        """Frames along `trajectory(n_frames, seed, step)`, each with its own reproducible noise."""
        for k, pose in enumerate(self.trajectory(n_frames, seed, step)):
            rng = np.random.default_rng([self.seed, check_seed(seed), k, 11])
            yield self.render(pose, width, height, rng=rng, **render_kwargs)

    def _frame_rng(self, pose: np.ndarray, rng) -> np.random.Generator:
        if isinstance(rng, np.random.Generator):
            return rng
        if rng is None:
            return np.random.default_rng([self.seed, zlib.crc32(pose.tobytes())])
        return np.random.default_rng(check_seed(rng, "rng seed"))

    def _check_open(self):
        if not self._finalizer.alive:
            raise MkeError(f"simulated world of seed {self.seed} is closed")

    def close(self) -> None:
        """Disconnect the pybullet client; safe to call twice."""
        self._finalizer()

    def __enter__(self) -> "World":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _camera_rgb(rgb: np.ndarray, rng: np.random.Generator, sigma: float, jitter: float) -> np.ndarray:
    if sigma == 0 and jitter == 0:
        return np.ascontiguousarray(rgb)
    gain = 1.0 + rng.uniform(-jitter, jitter)
    out = rgb.astype(np.float32) * gain
    if sigma > 0:
        out += np.float32(sigma) * rng.standard_normal(rgb.shape, dtype=np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _disconnect(p, cid: int) -> None:
    try:
        p.disconnect(physicsClientId=cid)
    except Exception:  # the client may already be gone at interpreter exit
        pass
