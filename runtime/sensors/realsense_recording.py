"""Write and read RealSense RGB-D recordings through the real librealsense SDK (pyrealsense2).

A recording written here is what a real camera records: a depth sensor with a Z16 stream and a
`depth_units` option, a colour sensor with an RGB8 stream, and depth→colour extrinsics, so
`rs.align` and `get_depth_scale()` work on playback exactly as for a camera's file. Tests, demos
and the `mke-live` recording source all go through these two functions.

File formats (pyrealsense2 2.59, seen here):
- Writing: librealsense 2.58+ records ROS2 rosbag2 files (SQLite, suffix `.db3`) and refuses any
  other suffix ("Output file must have .db3 extension"); older SDKs wrote ROS1 `.bag`. The suffix
  of `path` is passed through, so whichever the installed SDK records works.
- Reading: the SDK picks its reader by suffix — `.db3` is read as ROS2, anything else as a ROS1
  `.bag`. A file whose content does not match its suffix is rejected with a message saying so.

SDK facts this module works around:
- `rs.extrinsics()` starts with an all-zero rotation, not the identity: registering it unchanged
  makes `rs.align` project every depth pixel to z = 0 (an all-invalid aligned depth).
- Playback runs in real time until `set_real_time(False)` is called; calling it after
  `pipeline.start` loses the first frames. The config is resolved first and the playback device
  switched before the pipeline starts.
- The recorder stamps each message with the wall-clock time it received the frame, not with the
  frame's timestamp: real-time playback replays the writing speed (see `pace`).
- `pipeline.start` starts the playback sensors one after the other, and the file starts playing
  with the first: under CPU load the frames read before the colour sensor has started are lost,
  or the syncer, not yet knowing the colour stream, lets every depth frame through alone and
  then pairs each colour frame with the last depth frame (15 % of plays of a 20-frame recording
  on a loaded 2-core machine, with either symptom). Paused before `pipeline.start` and resumed
  after it, playback begins with both sensors running (0 bad plays in 300 under the same load).
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from mke.runtime.camera import Intrinsics
from mke.runtime.depth_units import units_to_millimetres
from mke.runtime.errors import MkeError

_SQLITE_MAGIC = b"SQLite format 3\x00"
_ROSBAG1_MAGIC = b"#ROSBAG V2.0"
_POLL_MS = 100
_STALL_S = 30.0


def _import_rs():
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise MkeError(
            "pyrealsense2 is not installed: pip install pyrealsense2 (or mke-edge[sensors]); "
            "on Linux it also needs libusb-1.0-0 (apt-get install libusb-1.0-0)"
        ) from exc
    return rs


@dataclass(frozen=True)
class Extrinsics:
    """A rigid transform from the depth camera to the colour camera.

    `rotation` is a 3×3 matrix in librealsense's column-major order, `translation` is in metres.
    """

    rotation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_rs(self, rs):
        if len(self.rotation) != 9 or len(self.translation) != 3:
            raise MkeError(f"depth_to_color: expected 9 rotation and 3 translation values, got {self}")
        rot = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-4):
            raise MkeError(f"depth_to_color: rotation {self.rotation} is not a rotation matrix")
        ext = rs.extrinsics()
        ext.rotation = [float(v) for v in self.rotation]
        ext.translation = [float(v) for v in self.translation]
        return ext


@dataclass(frozen=True)
class RecordedFrame:
    """One depth + colour pair played back from a recording.

    `depth_mm` is in millimetres (0 = no depth); aligned to colour it has the colour image's size
    and `depth_intrinsics == color_intrinsics`. `timestamp_ms` and `frame_number` are the colour
    frame's, as the camera stamped them.
    """

    rgb: np.ndarray = field(repr=False)
    depth_mm: np.ndarray = field(repr=False)
    timestamp_ms: float
    frame_number: int
    color_intrinsics: Intrinsics
    depth_intrinsics: Intrinsics


# --------------------------------------------------------------------------------------- writing

def write_recording(
    path: str | os.PathLike,
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    color_intrinsics: Intrinsics | Mapping[str, Any],
    depth_intrinsics: Intrinsics | Mapping[str, Any] | None = None,
    depth_to_color: Extrinsics | None = None,
    fps: int = 30,
    depth_units: float = 0.001,
    compress: bool = True,
    pace: bool = False,
) -> Path:
    """Record (rgb uint8 H×W×3, depth uint16 H'×W') pairs as a RealSense recording at `path`.

    Depth values are in units of `depth_units` metres (0.001: millimetres, the D4xx default).
    `depth_intrinsics` defaults to the colour camera's lens on the depth image's size
    (`Intrinsics.for_sensor`); `depth_to_color` defaults to the identity. Frame i is stamped i/fps seconds.
    `compress` uses the SDK's lossless frame compression. `pace` feeds frames at `fps` in wall
    time, so that real-time playback runs at `fps` (the recorder stamps arrival times).

    The file is written beside `path` under a temporary name and renamed when complete: an
    error, or an exception raised by `frames`, leaves nothing at `path`.
    """
    rs = _import_rs()
    target = Path(path)
    color = Intrinsics.coerce(color_intrinsics, "color_intrinsics")
    if not (isinstance(fps, int) and fps > 0):
        raise MkeError(f"fps must be a positive integer, got {fps!r}")
    if not (isinstance(depth_units, (int, float)) and 0 < depth_units < 1):
        raise MkeError("depth_units is in metres per depth unit (0.001 for millimetres), "
                       f"got {depth_units!r}")

    pairs = iter(frames)
    first = next(pairs, None)
    if first is None:
        raise MkeError(f"{target}: no frames to record")
    _check_pair(first, 0, color, None)
    depth_hw = np.asarray(first[1]).shape
    depth = (Intrinsics.coerce(depth_intrinsics, "depth_intrinsics") if depth_intrinsics is not None
             else color.for_sensor(depth_hw[1], depth_hw[0]))
    if (depth.height, depth.width) != depth_hw:
        raise MkeError(f"depth_intrinsics are {depth.width}x{depth.height} but the depth images are "
                       f"{depth_hw[1]}x{depth_hw[0]}")
    extrinsics = (depth_to_color or Extrinsics()).to_rs(rs)

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{target.suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        count = _record(rs, tmp, target, chain([first], pairs), color, depth, extrinsics,
                        fps=fps, depth_units=float(depth_units), compress=compress, pace=pace)
        _check_frames_written(tmp, target, count)
        os.replace(tmp, target)
    except BaseException:
        for leftover in (tmp, *(Path(f"{tmp}{s}") for s in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
        raise
    return target


def _check_pair(pair: Any, index: int, color: Intrinsics, depth_hw: tuple[int, int] | None) -> None:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise MkeError(f"frame {index}: expected an (rgb, depth) pair, got {type(pair).__name__}")
    rgb, depth = pair
    rgb_shape = (color.height, color.width, 3)
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.shape == rgb_shape):
        raise MkeError(f"frame {index}: rgb must be uint8 of shape {rgb_shape} "
                       f"(color_intrinsics), got {getattr(rgb, 'dtype', type(rgb).__name__)} "
                       f"{getattr(rgb, 'shape', '')}")
    if not (isinstance(depth, np.ndarray) and depth.dtype == np.uint16 and depth.ndim == 2):
        raise MkeError(f"frame {index}: depth must be a 2-D uint16 array in depth units, got "
                       f"{getattr(depth, 'dtype', type(depth).__name__)} {getattr(depth, 'shape', '')}")
    if depth_hw is not None and depth.shape != depth_hw:
        raise MkeError(f"frame {index}: depth has shape {depth.shape}, earlier frames {depth_hw}")


def _video_stream(rs, kind, uid: int, intr: Intrinsics, fps: int, bpp: int, fmt):
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = kind, 0, uid
    stream.width, stream.height, stream.fps = intr.width, intr.height, fps
    stream.bpp, stream.fmt, stream.intrinsics = bpp, fmt, intr.to_rs(rs)
    return stream


def _video_frame(rs, pixels: np.ndarray, profile, index: int, fps: int):
    frame = rs.software_video_frame()
    frame.pixels = np.ascontiguousarray(pixels)
    frame.bpp = pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1)
    frame.stride = frame.bpp * pixels.shape[1]
    frame.timestamp = index * 1000.0 / fps
    frame.domain = rs.timestamp_domain.hardware_clock
    frame.frame_number = index
    frame.profile = profile
    return frame


def _record(rs, tmp: Path, target: Path, pairs: Iterator, color: Intrinsics, depth: Intrinsics,
            extrinsics, *, fps: int, depth_units: float, compress: bool, pace: bool) -> int:
    device = rs.software_device()
    device.register_info(rs.camera_info.name, "MKE Edge software RGB-D camera")
    depth_sensor = device.add_sensor("Stereo Module")
    color_sensor = device.add_sensor("RGB Camera")
    depth_profile = depth_sensor.add_video_stream(
        _video_stream(rs, rs.stream.depth, 0, depth, fps, 2, rs.format.z16)).as_video_stream_profile()
    color_profile = color_sensor.add_video_stream(
        _video_stream(rs, rs.stream.color, 1, color, fps, 3, rs.format.rgb8)).as_video_stream_profile()
    depth_sensor.add_read_only_option(rs.option.depth_units, depth_units)
    depth_profile.register_extrinsics_to(color_profile, extrinsics)
    try:
        recorder = rs.recorder(str(tmp), device, bool(compress))
    except RuntimeError as exc:
        hint = (" (this SDK records ROS2 .db3 files: name the recording *.db3)"
                if target.suffix != ".db3" else "")
        raise MkeError(f"cannot record {target}: pyrealsense2 {getattr(rs, '__version__', '?')} "
                       f"says: {exc}{hint}") from exc
    # The recorder taps frames before the sink; a one-slot queue keeps Python out of the SDK thread.
    sink = rs.frame_queue(1)
    count = 0
    depth_hw = None
    try:
        depth_sensor.open(depth_profile)
        color_sensor.open(color_profile)
        depth_sensor.start(sink)
        color_sensor.start(sink)
        start = time.monotonic()
        for index, pair in enumerate(pairs):
            _check_pair(pair, index, color, depth_hw)
            rgb, depth_img = pair
            depth_hw = depth_img.shape
            if pace:
                time.sleep(max(0.0, start + index / fps - time.monotonic()))
            depth_sensor.on_video_frame(_video_frame(rs, depth_img, depth_profile, index, fps))
            color_sensor.on_video_frame(_video_frame(rs, rgb, color_profile, index, fps))
            count = index + 1
    finally:
        for sensor in (depth_sensor, color_sensor):
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError:
                pass
        del recorder  # closes the file once the writer thread has drained
    return count


def _check_frames_written(tmp: Path, target: Path, count: int) -> None:
    """Count the image messages in a .db3: the recorder drops frames silently when it falls behind."""
    with open(tmp, "rb") as f:
        if f.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
            return
    conn = sqlite3.connect(f"file:{tmp}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT topics.name, COUNT(*) FROM messages JOIN topics ON messages.topic_id = topics.id "
            "WHERE topics.name LIKE '%/image/data%' GROUP BY topics.name").fetchall()
    finally:
        conn.close()
    written = {name: n for name, n in rows}
    if len(written) != 2 or any(n != count for n in written.values()):
        raise MkeError(f"{target}: the recorder wrote {written} image messages for {count} frames per "
                       "stream (it drops frames when the disk falls behind)")


# --------------------------------------------------------------------------------------- reading

def read_recording(
    path: str | os.PathLike,
    *,
    every: int = 1,
    align_to_color: bool = True,
    real_time: bool = False,
    max_frames: int | None = None,
) -> Iterator[RecordedFrame]:
    """Play a RealSense recording (.db3 or .bag) back through the SDK, one RecordedFrame per frameset.

    Yields every `every`-th depth + colour frameset, at most `max_frames` of them. With
    `align_to_color` depth is reprojected onto the colour image (`rs.align`); with `real_time` the
    file plays at recorded speed and frames the caller is too slow for are dropped, as from a live
    camera; otherwise every frame is delivered as fast as it is read. The file and its streams are
    checked by this call, before any frame is read: a bad recording raises MkeError here.
    """
    path = Path(path)
    if not (isinstance(every, int) and every >= 1):
        raise MkeError(f"every must be a positive integer, got {every!r}")
    if max_frames is not None and not (isinstance(max_frames, int) and max_frames >= 0):
        raise MkeError(f"max_frames must be None or a non-negative integer, got {max_frames!r}")
    _check_recording_file(path)
    rs = _import_rs()
    streams = _inspect_streams(rs, path, align_to_color)
    return _play(rs, path, streams, every=every, align_to_color=align_to_color,
                 real_time=real_time, max_frames=max_frames)


def _check_recording_file(path: Path) -> None:
    if not path.exists():
        raise MkeError(f"{path}: no such RealSense recording")
    if not path.is_file():
        raise MkeError(f"{path}: expected a RealSense recording file (.db3 or .bag), found a folder")
    with open(path, "rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    if not head:
        raise MkeError(f"{path}: the file is empty; expected a RealSense recording (.db3 or .bag)")
    if head.startswith(_SQLITE_MAGIC):
        kind, suffix = "ROS2 .db3", ".db3"
    elif head.startswith(_ROSBAG1_MAGIC):
        kind, suffix = "ROS1 .bag", ".bag"
    else:
        raise MkeError(f"{path}: not a RealSense recording; expected a ROS2 .db3 (SQLite) or a ROS1 "
                       ".bag file as rs.recorder or the RealSense Viewer writes them")
    if (path.suffix == ".db3") != (suffix == ".db3"):
        raise MkeError(f"{path}: the file is a {kind} recording but librealsense picks its reader by "
                       f"suffix; rename it to {path.stem}{suffix}")


def _open(rs, path: Path, streams=()):
    pipeline = rs.pipeline()
    config = rs.config()
    config.enable_device_from_file(str(path), repeat_playback=False)
    for stream in streams:
        config.enable_stream(stream)
    try:
        profile = config.resolve(rs.pipeline_wrapper(pipeline))
    except RuntimeError as exc:
        raise MkeError(f"{path}: librealsense cannot play this recording: {exc}") from exc
    return pipeline, config, profile


@dataclass(frozen=True)
class _Streams:
    depth: Intrinsics
    color: Intrinsics
    depth_on_color_grid: bool


def _inspect_streams(rs, path: Path, align_to_color: bool) -> _Streams:
    """The depth and colour streams of the recording, or MkeError naming what it holds instead.

    Everything is read while the playback device is alive: its stream profiles crash the
    interpreter when used after it is gone.
    """
    pipeline, config, profile = _open(rs, path)
    found = [p.as_video_stream_profile() for p in profile.get_streams() if p.is_video_stream_profile()]
    by_type = {p.stream_type(): p for p in found}
    missing = [name for kind, name in ((rs.stream.depth, "depth"), (rs.stream.color, "colour"))
               if kind not in by_type]
    if missing:
        listed = ", ".join(f"{p.stream_name()} {p.width()}x{p.height()} {p.format().name}"
                           for p in found) or "no video streams"
        raise MkeError(f"{path}: expected a depth (Z16) and a colour stream, but it has no "
                       f"{' and no '.join(missing)} stream (found: {listed})")
    depth, color = by_type[rs.stream.depth], by_type[rs.stream.color]
    if depth.format() != rs.format.z16:
        raise MkeError(f"{path}: expected a Z16 depth stream, found {depth.format().name}")
    depth_intr = Intrinsics.from_rs(depth.get_intrinsics())
    color_intr = Intrinsics.from_rs(color.get_intrinsics())
    on_grid = align_to_color and _on_color_grid(path, depth, color, depth_intr, color_intr)
    del pipeline, config, profile
    return _Streams(depth_intr, color_intr, on_grid)


def _play(rs, path: Path, streams: _Streams, *, every: int, align_to_color: bool,
          real_time: bool, max_frames: int | None) -> Iterator[RecordedFrame]:
    color_intr = streams.color
    out_depth_intr = color_intr if align_to_color else streams.depth
    aligner = rs.align(rs.stream.color) if align_to_color and not streams.depth_on_color_grid else None

    pipeline, config, profile = _open(rs, path, (rs.stream.depth, rs.stream.color))
    device = profile.get_device()
    playback = device.as_playback()
    playback.set_real_time(bool(real_time))
    scale = _depth_scale(device)
    playback.pause()  # held until every sensor has started: see the module's notes
    pipeline.start(config)
    try:
        playback.resume()
        index = 0
        yielded = 0
        last_frame = time.monotonic()
        stopped = False
        while max_frames is None or yielded < max_frames:
            ok, frameset = pipeline.try_wait_for_frames(_POLL_MS)
            if not ok:
                if stopped:
                    return
                # One more poll after the stop: the last frameset may still be on its way.
                stopped = playback.current_status() == rs.playback_status.stopped
                if not stopped and not real_time and time.monotonic() - last_frame > _STALL_S:
                    raise MkeError(f"{path}: playback stalled, no frame for {_STALL_S:.0f} s")
                continue
            last_frame = time.monotonic()
            if not (frameset.get_depth_frame() and frameset.get_color_frame()):
                continue
            take = index % every == 0
            index += 1
            if not take:
                continue
            if aligner is not None:
                frameset = aligner.process(frameset)
            depth_frame, color_frame = frameset.get_depth_frame(), frameset.get_color_frame()
            yield RecordedFrame(
                rgb=_to_rgb(rs, path, color_frame),
                depth_mm=units_to_millimetres(np.asanyarray(depth_frame.get_data()),
                                         scale or depth_frame.get_units()),
                timestamp_ms=float(color_frame.get_timestamp()),
                frame_number=int(color_frame.get_frame_number()),
                color_intrinsics=color_intr,
                depth_intrinsics=out_depth_intr,
            )
            yielded += 1
    finally:
        pipeline.stop()


def _on_color_grid(path: Path, depth_stream, color_stream, depth_intr: Intrinsics,
                   color_intr: Intrinsics) -> bool:
    """True when depth already lies on the colour grid (same camera model, identity transform).

    `rs.align` would then only lose border pixels to its reprojection rounding.
    """
    try:
        ext = depth_stream.get_extrinsics_to(color_stream)
    except RuntimeError as exc:
        raise MkeError(f"{path}: has no depth→colour extrinsics, so depth cannot be aligned to colour; "
                       "read it with align_to_color=False") from exc
    rot = np.asarray(ext.rotation, dtype=np.float64).reshape(3, 3)
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3):
        raise MkeError(f"{path}: its depth→colour rotation {list(ext.rotation)} is not a rotation "
                       "(an all-zero rs.extrinsics() was recorded?); read it with align_to_color=False")
    identity = np.allclose(rot, np.eye(3), atol=1e-9) and np.allclose(ext.translation, 0.0, atol=1e-9)
    return identity and depth_intr == color_intr


def _depth_scale(device) -> float:
    """Metres per depth unit from the depth sensor; 0 when the recording does not say."""
    try:
        return float(device.first_depth_sensor().get_depth_scale())
    except RuntimeError:
        return 0.0


def _to_rgb(rs, path: Path, frame) -> np.ndarray:
    data = np.asanyarray(frame.get_data())
    fmt = frame.get_profile().format()
    if fmt == rs.format.rgb8:
        return np.array(data, copy=True)
    if fmt == rs.format.bgr8:
        return np.ascontiguousarray(data[..., ::-1])
    if fmt == rs.format.rgba8:
        return np.ascontiguousarray(data[..., :3])
    if fmt == rs.format.bgra8:
        return np.ascontiguousarray(data[..., 2::-1])
    raise MkeError(f"{path}: colour format {fmt.name} is not supported; expected RGB8, BGR8, RGBA8 "
                   "or BGRA8 (record colour as RGB8)")
