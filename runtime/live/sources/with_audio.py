"""A video source with audio beside it: each frame gets the audio window that ends at its timestamp."""
from __future__ import annotations

from mke.runtime.live.frame import LiveFrame, Status
from mke.runtime.live.sources.base import Source


class WithAudio(Source):
    """`audio` is a Microphone (host clock: the window ends when the frame arrived) or a WavAudio
    (media clock: the window ends at the frame's media time, the first frame being time 0)."""

    def __init__(self, video: Source, audio, seconds: float):
        self.video, self.audio, self.seconds = video, audio, float(seconds)
        self.modalities = video.modalities | {"audio"}
        self.live = video.live
        self._t0: float | None = None
        self.inject_missing_s = 0.0   # set by fault injection for the next frame

    @property
    def name(self) -> str:
        return f"{self.video.name} + {self.audio.name}"

    def describe(self) -> str:
        return f"{self.video.describe()} + {self.audio.name}"

    def open(self) -> None:
        self.audio.open()
        try:
            self.video.open()
        except BaseException:
            self.audio.close()
            raise

    def read(self, timeout_s: float) -> tuple[Status, LiveFrame | None]:
        status, frame = self.video.read(timeout_s)
        if status is not Status.OK:
            return status, frame
        if not self.audio.alive:
            return Status.ERROR, None
        if self.audio.clock == "host":
            end = frame.arrival_s
        else:
            if self._t0 is None:
                self._t0 = frame.timestamp_s
            end = frame.timestamp_s - self._t0
        frame.audio, frame.audio_underrun = self.audio.window(end, self.seconds, self.inject_missing_s)
        self.inject_missing_s = 0.0
        return status, frame

    def reopen(self) -> None:
        self.video.reopen()
        if not self.audio.alive:
            self.audio.close()
            self.audio.open()

    def close(self) -> None:
        try:
            self.video.close()
        finally:
            self.audio.close()
