"""OpenCV cameras and videos: a V4L2 device (`v4l2://0`, `v4l2:///dev/video0`, or the bare `0` /
`/dev/video0`), a Jetson CSI camera (`csi://0`, through OpenCV's GStreamer backend), a stream
(`rtsp://…`, `http://…`) or a video file (`file://clip.mp4` or the bare path). Files play at their own
frame rate (`real_time`) or as fast as the pipeline takes them; devices and streams are always live."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame, Status
from mke.runtime.live.sources.base import Source
from mke.runtime.live.sources.discovery import NO_CAMERA_HINT, found_summary
from mke.runtime.live.sources.registry import SourceContext, register_source

# containers OpenCV's FFmpeg reads; a file:// or bare path with one of these suffixes is a video
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                  ".flv", ".wmv", ".ogv", ".3gp", ".gif", ".mjpeg", ".mjpg", ".h264", ".h265", ".hevc", ".y4m")


def _import_cv2():
    try:
        import cv2
    except ImportError:
        raise MkeError("OpenCV is not installed: pip install opencv-python (or mke-edge[runtime]); "
                       "a Linux desktop also needs libgl1") from None
    return cv2


def has_gstreamer(cv2) -> bool:
    """Whether this OpenCV was built with its GStreamer backend (`cv2.getBuildInformation()` says)."""
    found = re.search(r"GStreamer:\s*(\S+)", cv2.getBuildInformation())
    return bool(found) and found.group(1).upper() == "YES"


def csi_pipeline(sensor_id: int, capture: tuple[int, int], fps: int, size: tuple[int, int], flip: int = 0) -> str:
    """The GStreamer pipeline for a Jetson CSI camera: the sensor mode `capture` = (width, height) at `fps`
    into NVMM memory, scaled to `size` = the model's (width, height) by nvvidconv (on the Jetson's VIC, not
    the CPU), BGR for OpenCV's appsink, which keeps only the newest frame."""
    (cw, ch), (w, h) = capture, size
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM), width={cw}, height={ch}, "
            f"framerate={fps}/1 ! nvvidconv flip-method={flip} ! video/x-raw, width={w}, height={h}, format=BGRx ! "
            "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1")


class OpenCVCamera(Source):
    """`kind`: "device" (an index or a /dev path), "stream" (a URL), "file" (a video) or "gstreamer" (a
    pipeline string, `name` saying what it is)."""

    modalities = frozenset({"rgb"})

    def __init__(self, target: int | str, kind: str = "device", real_time: bool = True, name: str | None = None):
        self.kind, self.target = kind, target
        self.live = kind != "file" or bool(real_time)
        self.name = name or f"{'video file' if kind == 'file' else 'camera'} {target}"
        self._cap = None
        self._index = 0
        self._start: float | None = None
        self._fps = 0.0

    def open(self) -> None:
        cv2 = _import_cv2()
        if self.kind == "file" and not Path(self.target).is_file():
            raise MkeError(f"video file {self.target} does not exist")
        if self.kind == "gstreamer":
            if not has_gstreamer(cv2):
                raise MkeError(f"{self.name} needs OpenCV with GStreamer, and this OpenCV ({cv2.__version__}) has none "
                               "(cv2.getBuildInformation(): 'GStreamer: NO'; pip's opencv-python is built without "
                               "it). On a Jetson use JetPack's OpenCV (apt install python3-opencv, without "
                               "opencv-python in the environment), or read the camera as v4l2:///dev/video0")
            cap = cv2.VideoCapture(self.target, cv2.CAP_GSTREAMER)
        else:
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            if self.kind == "file":
                raise MkeError(f"{self.target}: OpenCV cannot read this video (expected a file its FFmpeg reads: "
                               ".mp4, .avi, .mkv …)")
            if self.kind == "gstreamer":
                raise MkeError(f"cannot open {self.name} through GStreamer ({self.target}); check that "
                               "nvargus-daemon runs and the camera answers `gst-launch-1.0 nvarguscamerasrc "
                               "num-buffers=1 ! fakesink`")
            raise MkeError(f"cannot open camera {self.target} ({found_summary()}); {NO_CAMERA_HINT}")
        self._cap, self._cv2 = cap, cv2
        self._fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._start = None

    def read(self, timeout_s: float) -> tuple[Status, LiveFrame | None]:
        ok, bgr = self._cap.read()
        now = time.monotonic()
        if not ok or bgr is None:
            return (Status.END, None) if self.kind == "file" else (Status.ERROR, None)
        if self.kind == "file":
            media = float(self._cap.get(self._cv2.CAP_PROP_POS_MSEC)) / 1000.0
            if media <= 0 and self._fps > 0:
                media = self._index / self._fps
            if self.live:  # play at the file's own pace
                if self._start is None:
                    self._start = now - media
                time.sleep(max(0.0, self._start + media - now))
                now = time.monotonic()
            stamp = media
        else:
            stamp = now
        rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
        frame = LiveFrame(index=self._index, timestamp_s=stamp, arrival_s=now, rgb=rgb)
        self._index += 1
        return Status.OK, frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    @property
    def fps(self) -> float:
        return self._fps


# ------------------------------------------------------------------------------------------ registrations
@dataclass(frozen=True)
class DeviceOptions:
    device: str = "0"     # an index ("0") or a device path ("/dev/video0"): the URI's address


@dataclass(frozen=True)
class CsiOptions:
    sensor_id: int = 0    # the URI's address
    width: int = 1280     # the sensor mode captured (scaled to the model's size by nvvidconv)
    height: int = 720
    fps: int = 30
    flip: int = 0         # nvvidconv flip-method: 0 none, 2 rotate 180°, 4 horizontal, 6 vertical …

    def __post_init__(self):
        if min(self.width, self.height, self.fps) <= 0 or self.sensor_id < 0:
            raise MkeError(f"sensor_id must be 0 or more and width, height, fps positive, got {self}")
        if not 0 <= self.flip <= 7:
            raise MkeError(f"flip is nvvidconv's flip-method 0..7, got {self.flip}")


@dataclass(frozen=True)
class UrlOptions:
    url: str


@dataclass(frozen=True)
class FileOptions:
    path: Path


def _is_device(text: str) -> bool:
    return text.isdigit() or text.startswith("/dev/video")


@register_source("v4l2", options=DeviceOptions, target="device", bare=_is_device, modalities={"rgb"},
                 form="v4l2:///dev/video0 (v4l2://0; or 0)", summary="a V4L2 camera (USB webcam) through OpenCV")
def open_device(options: DeviceOptions, context: SourceContext) -> OpenCVCamera:
    device = options.device
    return OpenCVCamera(int(device) if device.isdigit() else device, "device")


@register_source("csi", options=CsiOptions, target="sensor_id", modalities={"rgb"}, form="csi://0",
                 summary="a Jetson CSI camera (nvarguscamerasrc through OpenCV's GStreamer), scaled to the model")
def open_csi(options: CsiOptions, context: SourceContext) -> OpenCVCamera:
    pipeline = csi_pipeline(options.sensor_id, (options.width, options.height), options.fps, context.image_size,
                            options.flip)
    width, height = context.image_size
    return OpenCVCamera(pipeline, "gstreamer", name=f"CSI camera {options.sensor_id} ({options.width}x{options.height} "
                                                    f"@ {options.fps} → {width}x{height})")


@register_source("rtsp", "rtsps", "http", "https", options=UrlOptions, target="url", whole_uri=True,
                 modalities={"rgb"}, form="rtsp://HOST/PATH (http://…)",
                 summary="a network stream through OpenCV's FFmpeg")
def open_stream(options: UrlOptions, context: SourceContext) -> OpenCVCamera:
    return OpenCVCamera(options.url, "stream")


@register_source(options=FileOptions, target="path", suffixes=VIDEO_SUFFIXES, modalities={"rgb"},
                 form="file://CLIP.mp4 (.avi, .mkv …; or the bare path)",
                 summary="a video file through OpenCV's FFmpeg, at its own frame rate")
def open_video(options: FileOptions, context: SourceContext) -> OpenCVCamera:
    return OpenCVCamera(str(options.path), "file", real_time=context.real_time)
