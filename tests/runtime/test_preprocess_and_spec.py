"""The one preprocessing (shared by training, calibration and the robot) and the model spec."""
import json

import numpy as np
import pytest

from mke.runtime.errors import MkeError
from mke.runtime.camera import Intrinsics
from mke.runtime.preprocess import hha_encode, preprocess_depth, preprocess_rgb, preprocessor
from mke.runtime.spec import InputSpec, ModelSpec, OutputSpec


def test_rgb_is_resized_scaled_normalised_and_channels_first():
    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[..., 0] = 255
    out = preprocess_rgb(rgb, {"size": [120, 160], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 0.5]})
    assert out.shape == (3, 120, 160) and out.dtype == np.float32
    assert np.allclose(out[0], 2.0) and np.allclose(out[1], -1.0)
    with pytest.raises(MkeError, match="uint8"):
        preprocess_rgb(rgb.astype(np.float32), {})


def test_metric_depth_keeps_invalid_pixels_at_zero_and_resizes_without_mixing():
    depth = np.full((4, 6), 2000, np.uint16)
    depth[:, :3] = 0  # invalid left half
    depth[0, 5] = 9000  # beyond max_m: invalid too
    out = preprocess_depth(depth, {"encoding": "metric", "max_m": 7.0, "mean": 1.0, "std": 0.5})
    assert out.shape == (1, 4, 6)
    assert np.all(out[0, :, :3] == 0) and out[0, 0, 5] == 0
    assert np.allclose(out[0, 1:, 3:], 2.0)  # (2 m − 1) / 0.5
    small = preprocess_depth(depth, {"encoding": "metric", "size": [2, 3], "mean": 0.0, "std": 1.0})
    assert set(np.unique(small).round(3)) <= {0.0, 2.0}  # nearest neighbours: no blend of 0 and 2 m
    with pytest.raises(MkeError, match="uint16 millimetres"):
        preprocess_depth(depth.astype(np.float32), {})
    with pytest.raises(MkeError, match="encoding 'disparity'"):
        preprocess_depth(depth, {"encoding": "disparity"})


def _level_camera_room(h=60, w=80, f=60.0, cam_height=1.0, wall_z=3.0):
    """A level camera 1 m above a floor, facing a wall 3 m away: depth in mm and intrinsics."""
    cx, cy = (w - 1) / 2, (h - 1) / 2
    v = np.arange(h, dtype=np.float64)[:, None].repeat(w, 1)
    with np.errstate(divide="ignore"):
        floor_z = np.where(v > cy, f * cam_height / (v - cy), np.inf)
    z = np.minimum(floor_z, wall_z)
    return np.round(z * 1000).astype(np.uint16), Intrinsics(width=w, height=h, fx=f, fy=f, cx=cx, cy=cy), floor_z < wall_z


def test_hha_sees_floor_facing_up_at_height_zero_and_the_wall_vertical():
    depth, k, is_floor = _level_camera_room()
    hha = hha_encode(depth * 0.001, k)
    disparity, height, angle = hha
    inner = np.zeros_like(is_floor)
    inner[2:-2, 2:-2] = True  # borders have one-sided gradients
    floor = is_floor & inner & ~np.roll(~is_floor, 2, axis=0) & ~np.roll(~is_floor, -2, axis=0)
    wall = ~is_floor & inner & ~np.roll(is_floor, 2, axis=0) & ~np.roll(is_floor, -2, axis=0)
    assert np.allclose(disparity[wall], 1 / 3.0, atol=1e-3)
    assert np.median(angle[floor]) < 0.05 and np.median(angle[wall]) == pytest.approx(1.0, abs=0.05)
    assert np.median(height[floor]) < 0.05
    top_wall = height[3][wall[3]].mean()
    assert top_wall == pytest.approx(1.0 + 3.0 * (k.cy - 3) / k.fy, abs=0.08)  # 1 m up to the camera, then above


def test_hha_through_preprocess_depth_and_a_tilted_up_vector():
    depth, k, _ = _level_camera_room()
    out = preprocess_depth(depth, {"encoding": "hha"}, k)
    assert out.shape == (3, 60, 80)
    with pytest.raises(MkeError, match="intrinsics"):
        preprocess_depth(depth, {"encoding": "hha"})
    tilted = preprocess_depth(depth, {"encoding": "hha"}, k, up=np.array([0.0, -0.9, 0.1]))
    assert not np.allclose(tilted[2], out[2])


def test_preprocessor_by_kind():
    assert preprocessor({"kind": "rgb"}) is preprocess_rgb
    with pytest.raises(MkeError, match="'mfcc2'"):
        preprocessor({"kind": "mfcc2"})


def _spec(**over):
    fields = dict(task="rgbd", kind="segmentation", classes=["floor", "wall"], colors=[[1, 2, 3], [4, 5, 6]],
                  inputs=[InputSpec("rgb", "rgb", [1, 3, 120, 160], preprocess={"kind": "rgb"}),
                          InputSpec("depth", "depth", [1, 1, 120, 160], preprocess={"kind": "depth"})],
                  outputs=[OutputSpec("logits", [1, 2, 120, 160])], provenance={"run": "runs/rgbd"})
    fields.update(over)
    return ModelSpec(**fields)


def test_spec_round_trips_through_json():
    spec = _spec()
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec and again.input("depth").preprocess == {"kind": "depth"}
    assert json.loads(spec.to_json())["format"] == "mke-model-spec/1"


def test_spec_errors_name_the_field():
    with pytest.raises(MkeError, match="'kind' must be one of"):
        _spec(kind="detection")
    with pytest.raises(MkeError, match="2 classes but 1 colours"):
        _spec(colors=[[0, 0, 0]])
    with pytest.raises(MkeError, match="not an MKE model spec"):
        ModelSpec.from_json('{"format": "other"}', "x.onnx")
    with pytest.raises(MkeError, match="x.onnx is not valid JSON"):
        ModelSpec.from_json("{", "x.onnx")
    with pytest.raises(MkeError, match="no input 'audio'"):
        _spec().input("audio")
