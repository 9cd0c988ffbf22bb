"""RealSense RGB-D: a live camera (`realsense://[SERIAL]`) or a recording (`file://REC.db3`, `.bag`), one SDK for both.

Depth is aligned to colour (`rs.align`) and converted to millimetres with the scale the device
reports; colour comes as RGB8. A live camera streams the smallest colour and depth profiles that
cover the model's input size (resizing to the model happens in its preprocessing), else the D435
defaults (colour 640×480, depth 848×480, 30 FPS). Recordings play through `read_recording`, in
real time (frames the model is too slow for are dropped, as from a camera) or as fast as the
pipeline takes them.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame, Status
from mke.runtime.live.sources.base import Source
from mke.runtime.live.sources.discovery import NO_CAMERA_HINT, found_summary
from mke.runtime.live.sources.registry import SourceContext, register_source
from mke.runtime.camera import Intrinsics
from mke.runtime.depth_units import units_to_millimetres
from mke.runtime.sensors.realsense_recording import _import_rs, _to_rgb, read_recording

D435_COLOR = (640, 480)
D435_DEPTH = (848, 480)


def pick_resolution(available: list[tuple[int, int, int]], want: tuple[int, int], fps: int,
                    default: tuple[int, int], keep_aspect: bool = True) -> tuple[int, int]:
    """The smallest (width, height) at `fps` covering `want` = (width, height); with `keep_aspect`, of
    `want`'s aspect ratio where one is (a D435 offers 320×180 and 320×240 colour: a 160×120 model gets
    320×240, not a 16:9 frame its preprocessing would squash); `default` if none covers `want`."""
    covering = [(w, h) for w, h, f in available if f == fps and w >= want[0] and h >= want[1]]
    same_aspect = [(w, h) for w, h in covering if w * want[1] == h * want[0]]
    pool = same_aspect if keep_aspect and same_aspect else covering
    return min(pool, key=lambda size: size[0] * size[1]) if pool else default


class RealSenseReplay(Source):
    """A `.db3` / `.bag` recording through the SDK's playback; `loop` starts it again at its end."""

    modalities = frozenset({"rgb", "depth"})

    def __init__(self, path: str | os.PathLike, real_time: bool = True, loop: bool = False):
        self.path, self.live, self.loop = Path(path), bool(real_time), bool(loop)
        self.name = f"realsense replay {self.path}"
        self._frames = None
        self._index = 0
        self._t0: float | None = None

    def open(self) -> None:
        # read_recording checks the file and its streams before returning: a bad file fails here
        self._frames = read_recording(self.path, real_time=self.live)

    def read(self, timeout_s: float) -> tuple[Status, LiveFrame | None]:
        if self._frames is None:
            raise MkeError(f"{self.name}: read before open")
        try:
            rec = next(self._frames)
        except StopIteration:
            if not self.loop:
                return Status.END, None
            self.open()
            try:
                rec = next(self._frames)
            except StopIteration:
                return Status.END, None
        stamp = rec.timestamp_ms / 1000.0
        if self._t0 is None:
            self._t0 = stamp
        frame = LiveFrame(index=self._index, timestamp_s=stamp, arrival_s=time.monotonic(), rgb=rec.rgb,
                          depth=rec.depth_mm, intrinsics=rec.color_intrinsics)
        self._index += 1
        return Status.OK, frame

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()  # stops the SDK pipeline and releases the file
            self._frames = None

    def describe(self) -> str:
        return f"{self.name} ({'real time' if self.live else 'as fast as the model takes it'}{', looped' if self.loop else ''})"


class RealSenseCamera(Source):
    """A live RealSense camera; `record` saves the raw streams as the SDK's `.db3`, renamed into place at close."""

    modalities = frozenset({"rgb", "depth"})
    live = True

    def __init__(self, serial: str | None = None, want_size: tuple[int, int] = D435_COLOR, fps: int = 30,
                 record: str | os.PathLike | None = None):
        self.serial, self.want_size, self.fps = serial, want_size, int(fps)
        self.record = Path(record) if record else None
        self.name = f"realsense camera{f' {serial}' if serial else ''}"
        self._pipeline = self._align = None
        self._scale = 0.001
        self._intrinsics: Intrinsics | None = None
        self._record_tmp: Path | None = None
        self._index = 0

    def _device(self, rs):
        devices = list(rs.context().query_devices())
        if not devices:
            raise MkeError(f"no RealSense camera found ({found_summary()}); {NO_CAMERA_HINT}")
        if self.serial is None:
            return devices[0]
        for dev in devices:
            if dev.get_info(rs.camera_info.serial_number) == self.serial:
                return dev
        raise MkeError(f"no RealSense camera with serial {self.serial} ({found_summary()}); pick one of those "
                       f"serials with --input realsense://SERIAL (or --serial), or {NO_CAMERA_HINT}")

    def _profiles(self, rs, device) -> tuple[tuple[int, int], tuple[int, int]]:
        colour, depth = [], []
        for sensor in device.query_sensors():
            for p in sensor.get_stream_profiles():
                if not p.is_video_stream_profile():
                    continue
                v = p.as_video_stream_profile()
                entry = (v.width(), v.height(), v.fps())
                if p.stream_type() == rs.stream.color and p.format() == rs.format.rgb8:
                    colour.append(entry)
                elif p.stream_type() == rs.stream.depth and p.format() == rs.format.z16:
                    depth.append(entry)
        c = pick_resolution(colour, self.want_size, self.fps, D435_COLOR)
        # depth at the colour height: rs.align reprojects it onto the colour grid anyway
        d = pick_resolution(depth, (1, c[1]), self.fps, D435_DEPTH, keep_aspect=False)
        return c, d

    def open(self) -> None:
        rs = _import_rs()
        device = self._device(rs)
        serial = device.get_info(rs.camera_info.serial_number)
        (cw, ch), (dw, dh) = self._profiles(rs, device)
        config = rs.config()
        config.enable_device(serial)
        config.enable_stream(rs.stream.color, cw, ch, rs.format.rgb8, self.fps)
        config.enable_stream(rs.stream.depth, dw, dh, rs.format.z16, self.fps)
        if self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            self._record_tmp = self.record.with_name(f".{self.record.name}.part.db3")
            config.enable_record_to_file(str(self._record_tmp))
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(config)
        except RuntimeError as exc:
            raise MkeError(f"RealSense {serial} would not start colour {cw}x{ch} + depth {dw}x{dh} at {self.fps} FPS: "
                           f"{exc}") from None
        self._scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
        self._intrinsics = Intrinsics.from_rs(profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics())
        self._pipeline, self._align, self._rs = pipeline, rs.align(rs.stream.color), rs
        self.name = f"realsense camera {serial} (colour {cw}x{ch}, depth {dw}x{dh} @ {self.fps})"

    def read(self, timeout_s: float) -> tuple[Status, LiveFrame | None]:
        try:
            ok, frames = self._pipeline.try_wait_for_frames(int(timeout_s * 1000))
            if not ok:
                return Status.TIMEOUT, None
            frames = self._align.process(frames)
            depth, colour = frames.get_depth_frame(), frames.get_color_frame()
            if not (depth and colour):
                return Status.TIMEOUT, None
            import numpy as np

            frame = LiveFrame(index=self._index, timestamp_s=time.monotonic(), arrival_s=time.monotonic(),
                              rgb=_to_rgb(self._rs, Path(self.name), colour),
                              depth=units_to_millimetres(np.asanyarray(depth.get_data()), self._scale),
                              intrinsics=self._intrinsics)
        except RuntimeError:  # the SDK's way of saying the device went away
            return Status.ERROR, None
        self._index += 1
        return Status.OK, frame

    def close(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass
            self._pipeline = None
        if self._record_tmp is not None and self._record_tmp.is_file():
            os.replace(self._record_tmp, self.record)  # the SDK closed the file when the pipeline stopped
            self._record_tmp = None


@dataclass(frozen=True)
class CameraOptions:
    serial: str | None = None       # the camera's serial number (the URI's address); None: the first camera
    fps: int = 30
    record: Path | None = None      # also save the raw streams to this .db3

    def __post_init__(self):
        if self.fps <= 0:
            raise MkeError(f"fps must be positive, got {self.fps}")


@dataclass(frozen=True)
class ReplayOptions:
    path: Path                      # the recording (the URI's address)
    loop: bool = False              # start again at its end


@register_source("realsense", options=CameraOptions, target="serial", modalities={"rgb", "depth"},
                 form="realsense://[SERIAL]",
                 summary="a live RealSense camera, depth aligned to colour (pyrealsense2)")
def open_camera(options: CameraOptions, context: SourceContext) -> RealSenseCamera:
    return RealSenseCamera(serial=options.serial, want_size=context.image_size, fps=options.fps,
                           record=options.record)


@register_source(options=ReplayOptions, target="path", suffixes=(".db3", ".bag"), modalities={"rgb", "depth"},
                 form="file://REC.db3 (.bag; or the bare path)",
                 summary="a RealSense recording played through the SDK")
def open_replay(options: ReplayOptions, context: SourceContext) -> RealSenseReplay:
    return RealSenseReplay(options.path, real_time=context.real_time, loop=options.loop)
