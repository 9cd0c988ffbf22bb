"""RealSense recordings written and played back through the real SDK (pyrealsense2), no mocks."""
import time

import numpy as np
import pytest

rs = pytest.importorskip("pyrealsense2")

from mke.runtime.camera import Intrinsics  # noqa: E402
from mke.runtime.errors import MkeError  # noqa: E402
from mke.runtime.sensors.realsense_recording import (  # noqa: E402
    Extrinsics,
    read_recording,
    write_recording,
)

W, H = 160, 120
SMALL = Intrinsics(width=W, height=H, fx=140.5, fy=140.5, cx=79.5, cy=59.5)
D435_COLOR = Intrinsics(width=640, height=480, fx=615.0, fy=615.0, cx=320.0, cy=240.0)
D435_DEPTH = Intrinsics(width=848, height=480, fx=425.0, fy=425.0, cx=424.0, cy=240.0)


def gradient_frames(n, depth_scale=1):
    """Frame i: red = column, green = row, blue = i; depth (mm) = a ramp shifted by i."""
    for i in range(n):
        rgb = np.empty((H, W, 3), np.uint8)
        rgb[..., 0] = np.arange(W, dtype=np.uint8)[None, :]
        rgb[..., 1] = np.arange(H, dtype=np.uint8)[:, None]
        rgb[..., 2] = i
        depth_mm = (np.arange(H * W).reshape(H, W) % 4000 + 300 + i).astype(np.uint16)
        depth_mm[::7, ::11] = 0  # holes: no depth
        yield rgb, (depth_mm * depth_scale).astype(np.uint16)


@pytest.fixture(scope="module")
def small_recording(tmp_path_factory):
    return write_recording(tmp_path_factory.mktemp("rec") / "small.db3", gradient_frames(10),
                           color_intrinsics=SMALL)


def test_round_trip_gives_back_exact_pixels_and_millimetres(small_recording):
    played = list(read_recording(small_recording))
    expected = list(gradient_frames(10))

    assert len(played) == 10
    assert [f.frame_number for f in played] == list(range(10))
    assert [f.timestamp_ms for f in played] == pytest.approx([i * 1000 / 30 for i in range(10)])
    for frame, (rgb, depth_mm) in zip(played, expected):
        assert frame.rgb.dtype == np.uint8 and frame.depth_mm.dtype == np.uint16
        np.testing.assert_array_equal(frame.rgb, rgb)
        np.testing.assert_array_equal(frame.depth_mm, depth_mm)
        assert frame.color_intrinsics == SMALL
        assert frame.depth_intrinsics == SMALL


def test_unaligned_playback_is_exact_too(small_recording):
    played = list(read_recording(small_recording, align_to_color=False))
    assert len(played) == 10
    np.testing.assert_array_equal(played[4].depth_mm, list(gradient_frames(5))[4][1])


def test_depth_units_are_converted_to_millimetres(tmp_path):
    path = write_recording(tmp_path / "tenth_mm.db3", gradient_frames(3, depth_scale=10),
                           color_intrinsics=SMALL, depth_units=0.0001, compress=False)
    played = list(read_recording(path))
    assert len(played) == 3
    for frame, (_, depth_mm) in zip(played, gradient_frames(3)):
        np.testing.assert_array_equal(frame.depth_mm, depth_mm)


def test_every_nth_frameset_and_max_frames(small_recording):
    assert [f.frame_number for f in read_recording(small_recording, every=3)] == [0, 3, 6, 9]
    assert [f.frame_number for f in read_recording(small_recording, max_frames=4)] == [0, 1, 2, 3]


def test_leaving_playback_early_releases_the_file(small_recording):
    frames = read_recording(small_recording)
    next(frames)
    frames.close()
    assert len(list(read_recording(small_recording))) == 10


def test_d435_profile_aligns_848x480_depth_onto_640x480_colour(tmp_path):
    plane = [(np.full((480, 640, 3), 90, np.uint8), np.full((480, 848), 1500, np.uint16))] * 5
    path = write_recording(tmp_path / "d435.db3", plane, color_intrinsics=D435_COLOR,
                           depth_intrinsics=D435_DEPTH,
                           depth_to_color=Extrinsics(translation=(0.015, 0.0, 0.0)))

    aligned = list(read_recording(path))
    assert len(aligned) == 5
    for frame in aligned:
        assert frame.rgb.shape == (480, 640, 3) and frame.depth_mm.shape == (480, 640)
        assert frame.depth_intrinsics == D435_COLOR
        valid = frame.depth_mm[frame.depth_mm > 0]
        assert valid.size > 0.95 * 480 * 640
        assert np.median(valid) == 1500 and np.all(np.abs(valid.astype(int) - 1500) <= 1)

    raw = next(read_recording(path, align_to_color=False))
    assert raw.depth_mm.shape == (480, 848) and raw.depth_intrinsics == D435_DEPTH


def test_default_depth_intrinsics_keep_the_colour_lens(tmp_path):
    plane = [(np.full((480, 640, 3), 90, np.uint8), np.full((480, 848), 2000, np.uint16))] * 2
    path = write_recording(tmp_path / "d435_default.db3", plane, color_intrinsics=D435_COLOR)
    raw = next(read_recording(path, align_to_color=False))
    assert raw.depth_intrinsics == Intrinsics(width=848, height=480, fx=615.0, fy=615.0, cx=424.0, cy=240.0)
    aligned = next(read_recording(path))
    assert np.mean(aligned.depth_mm == 2000) > 0.95


def test_paced_recording_plays_in_real_time(tmp_path):
    path = write_recording(tmp_path / "paced.db3", gradient_frames(6), color_intrinsics=SMALL,
                           pace=True)
    start = time.monotonic()
    played = [f.frame_number for f in read_recording(path, real_time=True)]
    assert time.monotonic() - start >= 0.1  # 6 frames at 30 fps span 0.17 s
    assert played and played == sorted(played)


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 100, b"#ROSBAG V2.0\n" + b"\x17" * 300])
@pytest.mark.parametrize("name", ["bad.db3", "bad.bag"])
def test_files_that_are_not_recordings_raise_mke_error_naming_them(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MkeError, match=name):
        read_recording(path)


def test_missing_file_raises_mke_error(tmp_path):
    with pytest.raises(MkeError, match="nowhere.db3"):
        read_recording(tmp_path / "nowhere.db3")


def test_db3_content_under_a_bag_name_says_to_rename(small_recording, tmp_path):
    renamed = tmp_path / "small.bag"
    renamed.write_bytes(small_recording.read_bytes())
    with pytest.raises(MkeError, match="rename it to small.db3"):
        read_recording(renamed)


def _record_depth_only(path):
    device = rs.software_device()
    sensor = device.add_sensor("Stereo Module")
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.depth, 0, 0
    stream.width, stream.height, stream.fps, stream.bpp = W, H, 30, 2
    stream.fmt, stream.intrinsics = rs.format.z16, SMALL.to_rs(rs)
    profile = sensor.add_video_stream(stream).as_video_stream_profile()
    recorder = rs.recorder(str(path), device)
    sensor.open(profile)
    sensor.start(rs.frame_queue(1))
    for i in range(3):
        frame = rs.software_video_frame()
        frame.pixels = np.full((H, W), 1000, np.uint16)
        frame.bpp, frame.stride, frame.timestamp, frame.frame_number = 2, 2 * W, i * 33.3, i
        frame.domain, frame.profile = rs.timestamp_domain.hardware_clock, profile
        sensor.on_video_frame(frame)
    sensor.stop()
    sensor.close()
    del recorder


def test_recording_without_colour_stream_is_rejected(tmp_path):
    path = tmp_path / "depth_only.db3"
    _record_depth_only(path)
    with pytest.raises(MkeError, match=r"depth_only\.db3.*no colour stream"):
        read_recording(path)


def test_interrupted_write_leaves_nothing_behind(tmp_path):
    def crashing():
        yield from gradient_frames(3)
        raise RuntimeError("camera unplugged")

    target = tmp_path / "crash.db3"
    with pytest.raises(RuntimeError, match="unplugged"):
        write_recording(target, crashing(), color_intrinsics=SMALL)
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_unsupported_suffix_raise_mke_error_and_leave_nothing(tmp_path):
    wrong_size = [(np.zeros((H, W + 1, 3), np.uint8), np.zeros((H, W), np.uint16))]
    with pytest.raises(MkeError, match="rgb must be uint8"):
        write_recording(tmp_path / "x.db3", wrong_size, color_intrinsics=SMALL)
    with pytest.raises(MkeError, match=r"x\.bag.*\.db3"):
        write_recording(tmp_path / "x.bag", gradient_frames(2), color_intrinsics=SMALL)
    with pytest.raises(MkeError, match="no frames"):
        write_recording(tmp_path / "x.db3", [], color_intrinsics=SMALL)
    assert list(tmp_path.iterdir()) == []


def test_intrinsics_from_a_dict_and_bad_options_raise_mke_error(tmp_path):
    path = write_recording(tmp_path / "dict.db3", gradient_frames(2),
                           color_intrinsics=dict(width=W, height=H, fx=140.5, fy=140.5, cx=79.5,
                                                 cy=59.5))
    assert next(read_recording(path)).color_intrinsics == SMALL
    with pytest.raises(MkeError, match="missing"):
        write_recording(tmp_path / "y.db3", gradient_frames(1), color_intrinsics=dict(width=W))
    with pytest.raises(MkeError, match="every"):
        read_recording(path, every=0)
