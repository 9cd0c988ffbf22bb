"""What a source hands the pipeline: one frame, and a status that tells OK, TIMEOUT, END, DROPPED and
ERROR apart."""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from mke.runtime.camera import Intrinsics


class Status(enum.Enum):
    OK = "ok"            # a frame came
    TIMEOUT = "timeout"  # nothing within the timeout; try again
    END = "end"          # the recording or file is over
    DROPPED = "dropped"  # a frame was lost before it reached us (counted; the stream goes on)
    ERROR = "error"      # the device failed; the pipeline retries by reopening it


@dataclass
class LiveFrame:
    """One capture. Arrays are in the runtime's raw conventions (`mke.runtime.preprocess`).

    `rgb`: uint8 (H, W, 3), RGB order. `depth`: uint16 millimetres with 0 = invalid, aligned to `rgb`
    (some sources, and fault injection, give float32 metres with NaN = invalid instead).
    `intrinsics`: the colour camera's, in pixels of `rgb`. `up`: gravity's opposite in camera axes, when known.
    `timestamp_s`: the source's clock (media time for files and recordings, the host's monotonic
    clock for live devices); `arrival_s`: the host's monotonic clock when the frame was captured,
    which latencies are measured from. `audio`: float32 (channels, samples) at the model's rate,
    the window that ends at this frame; `audio_underrun`: part of that window never arrived.
    `extras`: raw fields of sources beyond these ({name: array}), for the modalities that read them.
    """

    index: int
    timestamp_s: float
    arrival_s: float
    rgb: np.ndarray | None = dataclasses.field(default=None, repr=False)
    depth: np.ndarray | None = dataclasses.field(default=None, repr=False)
    intrinsics: Intrinsics | None = None
    up: np.ndarray | None = dataclasses.field(default=None, repr=False)
    audio: np.ndarray | None = dataclasses.field(default=None, repr=False)
    audio_underrun: bool = False
    extras: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def field(self, name: str) -> Any:
        """A raw field by name: one of the attributes above, else what a source put in `extras` (None if neither)."""
        if name in _ATTRIBUTES:
            return getattr(self, name)
        return self.extras.get(name)


_ATTRIBUTES = frozenset(f.name for f in dataclasses.fields(LiveFrame)) - {"extras"}
