"""File sinks: the annotated video (`--save out.mp4`) and the predictions (`--jsonl predictions.jsonl`)."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path
from mke.runtime.live.audio.signal import level_db


class _AtomicFile:
    """Written under a temporary name; close() renames it into place, abort() deletes it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._stack = contextlib.ExitStack()
        self.tmp = self._stack.enter_context(atomic_path(self.path, keep_suffix=True))

    def _finish(self) -> None:
        self._stack.close()

    def abort(self) -> None:
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


class VideoSink(_AtomicFile):
    """MPEG-4 video of the overlay at `fps`, or at the rate the first two frames' timestamps imply."""

    def __init__(self, path: str | Path, overlay, fps: float | None = None):
        if Path(path).suffix.lower() not in (".mp4", ".avi", ".mkv"):
            raise MkeError(f"--save {path}: expected a video file name ending in .mp4, .avi or .mkv")
        super().__init__(path)
        self.overlay, self.fps = overlay, fps
        self._writer = None
        self._pending = None
        self.frames = 0

    def _open(self, image, fps: float) -> None:
        import cv2

        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() != ".avi" else "MJPG"))
        h, w = image.shape[:2]
        self._writer = cv2.VideoWriter(str(self.tmp), fourcc, float(fps), (w, h))
        if not self._writer.isOpened():
            raise MkeError(f"--save {self.path}: OpenCV cannot write this video format here")
        self._size = (w, h)

    def write(self, frame, prediction, timing, stats) -> None:
        image = self.overlay.render(frame, prediction, f"{timing.latency_ms:.0f} ms  frame {frame.index}")
        if self._writer is None:
            if self.fps is None and self._pending is None:
                self._pending = (image, frame.timestamp_s)
                return
            fps = self.fps
            if fps is None:
                dt = frame.timestamp_s - self._pending[1]
                fps = min(120.0, max(1.0, 1.0 / dt)) if dt > 0 else 30.0
            self._open(image, fps)
            if self._pending is not None:
                self._writer.write(self._pending[0])
                self.frames += 1
                self._pending = None
        if image.shape[1::-1] != self._size:
            import cv2

            image = cv2.resize(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is None and self._pending is not None:
            self._open(self._pending[0], self.fps or 30.0)
            self._writer.write(self._pending[0])
            self.frames += 1
        if self._writer is None:
            self.abort()   # no frame ever came: no empty video left behind
            return
        self._writer.release()
        self._finish()


class JsonlSink(_AtomicFile):
    """One JSON object per result: frame number, timestamp, latency, the prediction, audio level."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._file = open(self.tmp, "w", encoding="utf-8")
        self.lines = 0

    def write(self, frame, prediction, timing, stats) -> None:
        record = {"frame": frame.index, "t": round(frame.timestamp_s, 4), "latency_ms": round(timing.latency_ms, 2),
                  "model_ms": round(timing.model_ms, 3), **prediction.to_json()}
        if frame.audio is not None:
            record["audio_db"] = round(level_db(frame.audio), 1)
            record["audio_underrun"] = bool(frame.audio_underrun)
        self._file.write(json.dumps(record) + "\n")
        self.lines += 1

    def close(self) -> None:
        self._file.close()
        self._finish()

    def abort(self) -> None:
        self._file.close()
        super().abort()
