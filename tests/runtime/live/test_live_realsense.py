"""mke-live on RealSense recordings written in the test (rs.software_device + rs.recorder) and played
back through the real SDK, at a small size and at the D435's default profile (alignment + resize)."""
import json

import numpy as np
import pytest

rs = pytest.importorskip("pyrealsense2")

from mke.runtime.cli import main  # noqa: E402
from mke.runtime.live.sources.discovery import realsense_devices  # noqa: E402
from mke.runtime.live.sources.realsense import pick_resolution  # noqa: E402
from mke.runtime.camera import Intrinsics  # noqa: E402
from mke.runtime.sensors.realsense_recording import write_recording  # noqa: E402

NEAR_MM, FAR_MM = 500, 5000   # the tiny model calls near depth "floor" and far depth "wall"


def split_depth_frames(n, color: Intrinsics, depth_hw):
    """Left half near, right half far (split at the depth camera's principal point), dark blue-free RGB."""
    h, w = depth_hw
    for i in range(n):
        rgb = np.zeros((color.height, color.width, 3), np.uint8)
        rgb[..., 0] = 40 + i
        depth = np.full((h, w), FAR_MM, np.uint16)
        depth[:, : w // 2] = NEAR_MM
        yield rgb, depth


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def small_recording(tmp_path_factory):
    color = Intrinsics(width=160, height=120, fx=140.0, fy=140.0, cx=79.5, cy=59.5)
    return write_recording(tmp_path_factory.mktemp("rec") / "small.db3", split_depth_frames(12, color, (120, 160)),
                           color_intrinsics=color, compress=False)


@pytest.mark.parametrize("flag", ["--replay", "--input"])   # the alias, and the bare path as --input
def test_replay_through_the_sdk_gives_every_frame_and_the_depth_reaches_the_model(rgbd_onnx, small_recording,
                                                                                 tmp_path, capsys, flag):
    out = tmp_path / "out"
    code = main([str(rgbd_onnx), flag, str(small_recording), "--fast", "--headless",
                 "--jsonl", str(out / "p.jsonl"), "--save", str(out / "v.mp4"), "--stats-json", str(out / "s.json")])
    assert code == 0
    lines = read_jsonl(out / "p.jsonl")
    assert [r["frame"] for r in lines] == list(range(12))            # --fast: nothing dropped
    for r in lines:
        assert r["classes"]["floor"] == pytest.approx(0.5, abs=0.02)   # the near half
        assert r["classes"]["wall"] == pytest.approx(0.5, abs=0.02)    # the far half
    stats = json.loads((out / "s.json").read_text())
    assert stats["frames"] == 12 and stats["drops"] == 0 and stats["errors"] == 0 and stats["exit"] == "end of stream"
    assert stats["latency_ms"]["p95"] >= stats["latency_ms"]["p50"] > 0 and stats["preprocess_ms"] > 0
    import cv2

    video = cv2.VideoCapture(str(out / "v.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 12 and int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 160
    assert sorted(p.name for p in out.iterdir()) == ["p.jsonl", "s.json", "v.mp4"]   # no temporary files left
    err = capsys.readouterr().err
    assert "end of stream after 12 frames" in err and "onnxruntime" in err


def test_d435_default_profile_is_aligned_to_colour_and_resized_for_the_model(rgbd_onnx, tmp_path):
    color = Intrinsics(width=640, height=480, fx=615.0, fy=615.0, cx=319.5, cy=239.5)
    depth = color.for_sensor(848, 480)   # the depth camera sees wider, as a D435's does
    path = write_recording(tmp_path / "d435.db3", split_depth_frames(4, color, (480, 848)), color_intrinsics=color,
                           depth_intrinsics=depth, compress=False)
    code = main([str(rgbd_onnx), "--replay", str(path), "--fast", "--headless", "--jsonl", str(tmp_path / "p.jsonl"),
                 "--stats-every", "0"])
    assert code == 0
    lines = read_jsonl(tmp_path / "p.jsonl")
    assert len(lines) == 4
    for r in lines:
        # after rs.align the split lies at the colour image's centre; a few border pixels have no depth
        assert r["classes"]["floor"] == pytest.approx(0.5, abs=0.05)
        assert r["classes"]["wall"] == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("source", [lambda rec: ["--replay", str(rec), "--loop"],
                                    lambda rec: ["--input", f"file://{rec}?loop=1"]], ids=["alias", "uri"])
def test_looped_replay_runs_past_the_end_of_the_recording(rgbd_onnx, small_recording, tmp_path, source):
    code = main([str(rgbd_onnx), *source(small_recording), "--fast", "--headless", "--frames", "30",
                 "--stats-json", str(tmp_path / "s.json"), "--stats-every", "0"])
    stats = json.loads((tmp_path / "s.json").read_text())
    assert code == 0 and stats["frames"] == 30 and stats["exit"] == "frame limit"


def test_a_recording_the_sdk_cannot_read_is_named(rgbd_onnx, tmp_path, capsys):
    bad = tmp_path / "notes.db3"
    bad.write_text("not a recording")
    assert main([str(rgbd_onnx), "--replay", str(bad), "--headless", "--save", str(tmp_path / "v.mp4")]) == 2
    assert "notes.db3: not a RealSense recording" in capsys.readouterr().err
    assert not (tmp_path / "v.mp4").exists() and list(tmp_path.iterdir()) == [bad]


@pytest.mark.skipif(bool(realsense_devices()), reason="a RealSense camera is attached")
def test_no_camera_lists_what_was_found_and_suggests_a_replay_or_sim(rgbd_onnx, capsys):
    assert main([str(rgbd_onnx), "--sensor", "realsense", "--headless"]) == 2
    err = capsys.readouterr().err
    assert "no RealSense camera found (RealSense cameras: none; video devices:" in err
    assert "--replay FILE.db3" in err and "--sensor sim" in err


def test_record_only_applies_to_a_live_camera(rgbd_onnx, small_recording, tmp_path, capsys):
    assert main([str(rgbd_onnx), "--replay", str(small_recording), "--record", str(tmp_path / "x.db3")]) == 2
    assert "--record saves a live camera's streams" in capsys.readouterr().err


def test_the_smallest_profile_covering_the_model_is_picked():
    # a D435's RGB8 colour profiles at 30 FPS (and one at 60)
    colour = [(w, h, 30) for w, h in ((1920, 1080), (1280, 720), (960, 540), (848, 480), (640, 480), (640, 360),
                                      (424, 240), (320, 240), (320, 180))] + [(640, 480, 60)]
    assert pick_resolution(colour, (160, 120), 30, (640, 480)) == (320, 240)     # 4:3, not the smaller 320×180
    assert pick_resolution(colour, (160, 90), 30, (640, 480)) == (320, 180)      # 16:9
    assert pick_resolution(colour, (640, 480), 60, (640, 480)) == (640, 480)
    assert pick_resolution(colour, (1000, 700), 30, (640, 480)) == (1280, 720)   # no 10:7 profile: the smallest covering
    assert pick_resolution(colour, (4000, 3000), 30, (640, 480)) == (640, 480)   # none covers it: the default
    depth = [(w, h, 30) for w, h in ((1280, 720), (848, 480), (640, 480), (640, 360), (480, 270), (424, 240),
                                     (256, 144))]
    assert pick_resolution(depth, (1, 240), 30, (848, 480), keep_aspect=False) == (424, 240)


def test_the_benchmark_on_a_replay_reports_the_sdk_playback_beside_the_preloaded_frames(rgbd_onnx, small_recording,
                                                                                       tmp_path, capsys):
    result_path = tmp_path / "b.json"
    assert main([str(rgbd_onnx), "--replay", str(small_recording), "--loop", "--benchmark", "--frames", "15",
                 "--rounds", "1", "--stats-json", str(result_path)]) == 0
    result = json.loads(result_path.read_text())
    assert result["preloaded_frames"] == 15 and result["errors"] == 0    # 12 recorded frames, looped
    assert result["source"].startswith("realsense replay ")
    row = result["rounds"][0]
    assert row["e2e_fps"] > 0 and row["source_fps"] > 0 and row["memory_e2e_fps"] > 0
    assert "SDK playback" in capsys.readouterr().out
