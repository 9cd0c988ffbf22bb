"""The simulated RGB-D rooms: reproducible, RealSense-shaped, labelled by shape, noisy like a sensor."""
import dataclasses
import math
import sys

import numpy as np
import pytest

pytest.importorskip("pybullet")

from mke.runtime.errors import MkeError
from mke.runtime.sim import (CLASS_COLORS, CLASS_NAMES, VOID, DepthNoise, Frame, Intrinsics, World,
                             apply_depth_noise, pose_from_heading)
from mke.runtime.sim.layout import random_layout

FLOOR, WALL = CLASS_NAMES.index("floor"), CLASS_NAMES.index("wall")
FURNITURE = {CLASS_NAMES.index(n) for n in ("table", "chair", "cabinet", "sofa", "bin")}
QUIET = DepthNoise(dropout=0.0, blob_fraction=0.0, edge_dropout=0.0, baseline=0.0)


@pytest.fixture(scope="module")
def world():
    with World.random(3) as w:
        yield w


def corner_view(world, height=1.0, pitch_deg=-20.0):
    """From near one corner towards the opposite one: floor close by, far wall metres away."""
    w, d, _ = world.layout.size
    return pose_from_heading((0.4, 0.4, height), math.atan2(d - 0.8, w - 0.8), math.radians(pitch_deg))


def test_class_table_is_complete():
    assert len(CLASS_NAMES) == len(CLASS_COLORS) == len(set(CLASS_NAMES))
    assert 6 <= len(CLASS_NAMES) <= 8 and CLASS_NAMES[:2] == ("floor", "wall")
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in CLASS_COLORS)


def test_same_seed_gives_identical_frames_and_worlds_coexist():
    with World.random(11) as a, World.random(11) as b:
        poses_a, poses_b = a.trajectory(5, seed=2), b.trajectory(5, seed=2)
        for pa, pb in zip(poses_a, poses_b):
            np.testing.assert_array_equal(pa, pb)
        for fa, fb in zip(a.frames(3, seed=2), b.frames(3, seed=2)):
            np.testing.assert_array_equal(fa.rgb, fb.rgb)
            np.testing.assert_array_equal(fa.depth, fb.depth)
            np.testing.assert_array_equal(fa.labels, fb.labels)
        np.testing.assert_array_equal(a.render(poses_a[4]).depth, a.render(poses_a[4]).depth)
        assert not np.allclose(a.trajectory(5, seed=3)[-1], poses_a[-1])


@pytest.mark.parametrize("width,height", [(160, 120), (64, 48), (640, 480)])
def test_frame_dtypes_and_shapes(world, width, height):
    pose = world.trajectory(1)[0]
    f = world.render(pose, width, height)
    assert isinstance(f, Frame)
    assert f.rgb.shape == (height, width, 3) and f.rgb.dtype == np.uint8
    assert f.depth.shape == (height, width) and f.depth.dtype == np.uint16
    assert f.labels.shape == (height, width) and f.labels.dtype == np.uint8
    assert f.pose.shape == (4, 4) and f.pose.dtype == np.float64
    np.testing.assert_array_equal(f.pose, pose)
    np.testing.assert_allclose(f.pose[:3, :3] @ f.up, [0, 0, 1], atol=1e-12)
    assert f.depth_scale == 0.001
    assert f.rgb.std() > 5  # a real image, not a flat or empty one


def test_intrinsics_follow_resolution_and_fov(world):
    for width, height in [(160, 120), (640, 480), (320, 180)]:
        k = Intrinsics.from_vertical_fov(width, height, 50.0)
        assert (k.width, k.height) == (width, height)
        assert k.fx == pytest.approx(k.fy) == pytest.approx(height / 2 / math.tan(math.radians(25)))
        assert (k.cx, k.cy) == ((width - 1) / 2, (height - 1) / 2)
    # the intrinsics and pose of a frame put its floor pixels back on the plane z = 0
    f = world.render(corner_view(world), 320, 240, noise=None)
    assert f.intrinsics == Intrinsics.from_vertical_fov(320, 240, 50.0)
    v, u = np.nonzero((f.labels == FLOOR) & (f.depth > 0))
    z = f.depth[v, u] * f.depth_scale
    k = f.intrinsics
    cam = np.stack([(u - k.cx) / k.fx * z, (v - k.cy) / k.fy * z, z, np.ones_like(z)])
    floor_z = (f.pose @ cam)[2]
    assert len(z) > 1000 and np.percentile(np.abs(floor_z), 95) < 0.015  # rugs lie 8 mm above the floor


def test_depth_is_millimetres_with_holes_but_mostly_valid(world):
    w, d, h = world.layout.size
    farthest_mm = 1000 * math.sqrt(w * w + d * d + h * h)
    for f in world.frames(4, seed=1):
        valid = f.depth > 0
        assert 0 < valid.mean() < 1 and valid.mean() > 0.8
        assert f.depth[valid].min() >= 150 and f.depth[valid].max() <= min(7000 * 1.2, farthest_mm + 300)
        assert 300 < np.median(f.depth[valid]) < farthest_mm


def test_far_range_and_left_shadow_holes():
    fx = 100.0
    depth = np.full((20, 80), 4.0, np.float32)
    depth[:, 40:60] = 1.0  # a near object in front of a wall 4 m away
    out = apply_depth_noise(depth, np.random.default_rng(0), DepthNoise(sigma_coeff=0.0, dropout=0.0,
                            blob_fraction=0.0, edge_dropout=0.0, baseline=0.05), fx)
    band = round(0.05 * fx * (1 / 1.0 - 1 / 4.0))  # 3.75 pixels left of the object lose depth
    row = out[10]
    assert np.all(row[40 - band + 1:40] == 0) and row[40 - band - 2] == 4000
    assert np.all(row[40:60] == 1000) and np.all(row[62:] == 4000)
    assert np.all(row[:1] == 0)  # the image's own left band
    far = apply_depth_noise(depth, np.random.default_rng(0), dataclasses.replace(QUIET, sigma_coeff=0.0), fx)
    assert np.all(far[:, 40:60] == 1000) and np.all(far[:, :40] == 4000)
    cut = apply_depth_noise(depth, np.random.default_rng(0), DepthNoise(max_range=3.0, baseline=0.0, dropout=0.0,
                            blob_fraction=0.0, edge_dropout=0.0), fx)
    assert np.all(cut[:, :40] == 0) and np.all(cut[:, 40:60] > 0)


def test_holes_gather_on_depth_edges(world):
    f_clean = world.render(corner_view(world), noise=None)
    f = world.render(corner_view(world), noise=DepthNoise(dropout=0.0, blob_fraction=0.0, baseline=0.0))
    z = f_clean.depth.astype(float)
    jump = np.zeros(z.shape, bool)
    across = np.abs(np.diff(z, axis=1)) > 0.05 * np.minimum(z[:, 1:], z[:, :-1])
    down = np.abs(np.diff(z, axis=0)) > 0.05 * np.minimum(z[1:], z[:-1])
    jump[:, 1:] |= across
    jump[:, :-1] |= across
    jump[1:] |= down
    jump[:-1] |= down
    lost = (f.depth == 0) & (f_clean.depth > 0) & (f_clean.depth < 7000)
    assert jump.sum() > 20
    assert lost[jump].mean() > 0.2 > 10 * lost[~jump].mean()


def test_depth_noise_grows_with_distance(world):
    pose = corner_view(world)
    clean = world.render(pose, noise=None).depth.astype(float) / 1000
    noisy = world.render(pose, noise=QUIET, rng=5).depth.astype(float) / 1000
    both = (clean > 0) & (noisy > 0)
    err = noisy - clean
    near, far = both & (clean < 2.0), both & (clean > 3.5)
    assert near.sum() > 200 and far.sum() > 200
    for band in (near, far):
        expected = QUIET.sigma_coeff * np.sqrt(np.mean(clean[band] ** 4))
        assert err[band].std() == pytest.approx(expected, rel=0.3, abs=0.0015)
    assert err[far].std() > 3 * err[near].std()
    assert abs(err[far].mean()) < 0.02


def test_labels_show_floor_walls_and_furniture(world):
    seen = set()
    for f in world.frames(12, seed=0):
        seen |= set(np.unique(f.labels).tolist())
    assert {FLOOR, WALL} <= seen
    assert seen & FURNITURE
    assert seen <= set(range(len(CLASS_NAMES))) | {VOID}


def test_colours_are_drawn_independently_of_class():
    per_class = {c: [] for c in range(len(CLASS_NAMES))}
    floors = []
    for seed in range(40):
        layout = random_layout(seed)
        for part in layout.parts:
            if part.class_id in per_class:
                per_class[part.class_id].append(layout.materials[part.material].rgba[:3])
        floors.append(next(layout.materials[p.material].rgba for p in layout.parts if p.class_id == FLOOR))
    assert len({tuple(np.round(c, 3)) for c in floors}) == len(floors)  # every room its own floor colour
    means = {c: np.mean(v, axis=0) for c, v in per_class.items() if v}
    overall = np.mean(list(means.values()), axis=0)
    for c, m in means.items():
        assert np.abs(m - overall).max() < 0.12, (CLASS_NAMES[c], m, overall)


def test_rendered_floor_colour_differs_between_seeds():
    colours = []
    for seed in (0, 1):
        with World.random(seed) as w:
            f = w.render(corner_view(w), rgb_noise=0.0, exposure_jitter=0.0)
            colours.append(f.rgb[f.labels == FLOOR].mean(axis=0))
    assert np.abs(colours[0] - colours[1]).max() > 10


def test_trajectory_is_smooth_at_robot_height_inside_the_room(world):
    poses = world.trajectory(60, seed=4)
    w, d, _ = world.layout.size
    pos = np.array([p[:3, 3] for p in poses])
    assert np.all((pos[:, 0] > 0.2) & (pos[:, 0] < w - 0.2) & (pos[:, 1] > 0.2) & (pos[:, 1] < d - 0.2))
    assert np.all((pos[:, 2] >= 0.3) & (pos[:, 2] <= 1.2))
    assert np.linalg.norm(np.diff(pos, axis=0), axis=1).max() < 0.15
    forward = np.array([p[:3, 2] for p in poses])
    assert np.all(forward[:, 2] < 0.05) and np.all(forward[:, 2] > -0.6)  # level to slightly down
    assert np.all(np.sum(forward[1:] * forward[:-1], axis=1) > math.cos(math.radians(15)))


def test_user_errors_name_the_bad_value(world):
    pose = world.trajectory(1)[0]
    with pytest.raises(MkeError, match="width 0"):
        world.render(pose, 0, 120)
    with pytest.raises(MkeError, match="4x4"):
        world.render(np.eye(3))
    with pytest.raises(MkeError, match="-1"):
        World.random(-1)
    with pytest.raises(MkeError, match="sigma_coeff"):
        DepthNoise(sigma_coeff=-1)
    closed = World.random(0)
    closed.close()
    closed.close()
    with pytest.raises(MkeError, match="closed"):
        closed.render(pose)


def test_missing_pybullet_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pybullet", None)
    with pytest.raises(MkeError, match="pip install pybullet"):
        World.random(0)
