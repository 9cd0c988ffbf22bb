"""Simulated indoor RGB-D camera: furnished rooms rendered with pybullet's CPU renderer (no torch).

The built-in data of the `rgbd` task and the `sim` live source. Rooms hold a floor, walls with a
door gap, tables, chairs, cabinets, sofas and bins (CLASS_NAMES, CLASS_COLORS; the ceiling is VOID);
shape defines the class, while colours, textures and light are random and independent of it, so RGB alone
is ambiguous where depth is not. Depth goes through a RealSense-like sensor model (DepthNoise).

    from mke.runtime.sim import World

    with World.random(seed=3) as world:                       # one room, its own pybullet client
        poses = world.trajectory(n_frames=100, seed=0)       # list of 4x4 camera-to-world poses
        frame = world.render(poses[0], width=160, height=120) # Frame
        for frame in world.frames(100, 640, 480, seed=0):    # trajectory + render in one go
            ...

    Frame.rgb          (H, W, 3) uint8
    Frame.depth        (H, W) uint16 millimetres, 0 = invalid (Frame.depth_scale = 0.001 m)
    Frame.labels       (H, W) uint8 class ids, VOID = 255 on the ceiling
    Frame.intrinsics   Intrinsics(fx, fy, cx, cy, width, height), pixels, from the vertical FOV
    Frame.pose         (4, 4) float64 camera-to-world, OpenCV axes (x right, y down, z forward),
                       world z up with the floor at z = 0, metres
    Frame.up           world +z in camera coordinates (the `up` of HHA encoding)

    World.render(pose, width=160, height=120, *, vfov_deg=50, noise=DepthNoise(), rgb_noise=2.0,
                 exposure_jitter=0.08, rng=None) -> Frame
    apply_depth_noise(depth_m, rng, noise, fx, surface_ids=None) -> uint16 mm

Everything is reproducible: a seed fixes the room, a trajectory seed its path, and the noise of a
render is seeded from the world and the pose unless an `rng` is given. pybullet is imported only
when a World is made; without it an MkeError says how to install it.
"""
from mke.runtime.sim.camera import Intrinsics, pose_from_heading
from mke.runtime.sim.classes import CLASS_COLORS, CLASS_NAMES, VOID
from mke.runtime.sim.noise import DepthNoise, apply_depth_noise
from mke.runtime.sim.world import DEPTH_SCALE, Frame, World

__all__ = ["CLASS_COLORS", "CLASS_NAMES", "DEPTH_SCALE", "DepthNoise", "Frame", "Intrinsics", "VOID", "World",
           "apply_depth_noise", "pose_from_heading"]
