"""An OpenCV camera or video: a device index (`0`), a device path (`/dev/video0`), a stream URL
(`rtsp://…`, `http://…`) or a video file. Files play at their own frame rate (`real_time`) or as
fast as the pipeline takes them; devices and streams are always live."""
from __future__ import annotations

import re
import time
from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame, Status
from mke.runtime.live.sources.base import Source
from mke.runtime.live.sources.discovery import NO_CAMERA_HINT, found_summary

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def _import_cv2():
    try:
        import cv2
    except ImportError:
        raise MkeError("OpenCV is not installed: pip install opencv-python (or mke-edge[runtime]); "
                       "a Linux desktop also needs libgl1") from None
    return cv2


def parse_camera(uri: str) -> tuple[str, int | str]:
    """("device", 0) for "0" / "v4l2:///dev/video0" / "/dev/video0"; ("stream", url); ("file", path)."""
    text = str(uri).strip()
    if text.startswith("file://"):
        return "file", text[len("file://"):]
    if text.startswith("v4l2://"):
        text = text[len("v4l2://"):]
    if text.isdigit():
        return "device", int(text)
    if text.startswith("/dev/"):
        return "device", text
    if _URL.match(text):
        return "stream", text
    return "file", text


class OpenCVCamera(Source):
    modalities = frozenset({"rgb"})

    def __init__(self, uri: str, real_time: bool = True):
        self.kind, self.target = parse_camera(uri)
        self.live = self.kind != "file" or bool(real_time)
        self.name = f"{'video file' if self.kind == 'file' else 'camera'} {self.target}"
        self._cap = None
        self._index = 0
        self._start: float | None = None
        self._fps = 0.0

    def open(self) -> None:
        cv2 = _import_cv2()
        if self.kind == "file" and not Path(self.target).is_file():
            raise MkeError(f"video file {self.target} does not exist")
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            if self.kind == "file":
                raise MkeError(f"{self.target}: OpenCV cannot read this video (expected a file its FFmpeg reads: "
                               ".mp4, .avi, .mkv …)")
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
