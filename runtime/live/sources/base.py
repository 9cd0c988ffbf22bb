"""The one source interface: open, read(timeout) → (Status, frame), close; a context manager."""
from __future__ import annotations

from abc import ABC, abstractmethod

from mke.runtime.live.frame import LiveFrame, Status


class Source(ABC):
    """A stream of LiveFrames.

    `modalities` says what every frame carries ("rgb", "depth", "audio"). A `live` source is paced by
    a device (camera, real-time playback): when the model is slower, the pipeline keeps only the
    newest frame and counts the rest as dropped. A source that is not live (a recording read as fast
    as possible) waits for the pipeline instead, so every frame is processed.
    """

    name: str = "source"
    modalities: frozenset[str] = frozenset()
    live: bool = True

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self, timeout_s: float) -> tuple[Status, LiveFrame | None]: ...

    @abstractmethod
    def close(self) -> None: ...

    def reopen(self) -> None:
        """After an ERROR: close and open again (a camera that was unplugged and plugged back)."""
        self.close()
        self.open()

    def describe(self) -> str:
        return self.name

    def __enter__(self) -> "Source":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
