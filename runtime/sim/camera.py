"""Pinhole camera maths for the simulator: intrinsics, poses and the OpenGL matrices pybullet wants.

Poses are camera-to-world 4x4 float64 matrices in the OpenCV camera convention (x right, y down,
z forward, metres); the world has z up and the floor at z = 0. Pixel centres are at integer
coordinates, so the principal point of a centred camera is ((width - 1) / 2, (height - 1) / 2),
as in RealSense intrinsics.
"""
from __future__ import annotations

import math

import numpy as np

from mke.runtime.camera import Intrinsics
from mke.runtime.errors import MkeError

_OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def check_resolution(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 8 <= value <= 4096:
            raise MkeError(f"image {name} {value!r} must be an integer in 8..4096 pixels")


def pose_from_heading(position, yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world pose at `position` (metres) looking along heading `yaw` (radians, from world
    +x towards +y), tilted up by `pitch` (negative looks down) and rolled by `roll` about the view axis."""
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    forward = np.array([cp * cy, cp * sy, sp])
    right = np.array([sy, -cy, 0.0])
    down = np.cross(forward, right)
    cr, sr = math.cos(roll), math.sin(roll)
    right, down = cr * right + sr * down, -sr * right + cr * down
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = right, down, forward
    pose[:3, 3] = np.asarray(position, dtype=np.float64)
    return pose


def check_pose(pose) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise MkeError(f"camera pose must be a finite 4x4 camera-to-world matrix, got shape {pose.shape}")
    rot = pose[:3, :3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-5) or not np.allclose(pose[3], [0, 0, 0, 1]):
        raise MkeError("camera pose must be a rigid transform (orthonormal rotation, last row 0 0 0 1)")
    return pose


def view_matrix(pose: np.ndarray) -> list[float]:
    """pybullet's view matrix (world-to-OpenGL-camera, column-major) for a camera-to-world pose."""
    world_to_gl = np.linalg.inv(pose @ _OPENCV_TO_OPENGL)
    return world_to_gl.T.ravel().tolist()


def projection_matrix(intr: Intrinsics, near: float, far: float) -> list[float]:
    """OpenGL projection (column-major) matching `intr`; equals pybullet's computeProjectionMatrixFOV."""
    f = 2.0 * intr.fy / intr.height
    proj = np.array([
        [f * intr.height / intr.width, 0.0, 0.0, 0.0],
        [0.0, f, 0.0, 0.0],
        [0.0, 0.0, (far + near) / (near - far), 2.0 * far * near / (near - far)],
        [0.0, 0.0, -1.0, 0.0],
    ])
    return proj.T.ravel().tolist()


def zbuffer_to_metres(zbuffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """Metric depth along the optical axis (float32 metres) from pybullet's [0, 1] depth buffer."""
    d = zbuffer.astype(np.float64)
    return (far * near / (far - (far - near) * d)).astype(np.float32)
