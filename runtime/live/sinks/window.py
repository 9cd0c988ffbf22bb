"""The overlay in a desktop window; closing it or pressing q / Esc stops the run."""
from __future__ import annotations

import os

from mke.runtime.errors import MkeError
from mke.runtime.live.pipeline import StopRequested

TITLE = "mke-live"


def check_display() -> None:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise MkeError("no display to open a window on (DISPLAY is not set): add --headless, and --save out.mp4 "
                       "or --jsonl predictions.jsonl to keep the results")


class WindowSink:
    def __init__(self, overlay):
        check_display()
        self.overlay = overlay
        self._shown = False

    def write(self, frame, prediction, timing, stats) -> None:
        import cv2

        status = f"{timing.latency_ms:.0f} ms latency  {timing.model_ms:.1f} ms model  frame {frame.index}"
        cv2.imshow(TITLE, self.overlay.render(frame, prediction, status))
        self._shown = True
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(TITLE, cv2.WND_PROP_VISIBLE) < 1:
            raise StopRequested("window closed")

    def close(self) -> None:
        if self._shown:
            import cv2

            cv2.destroyWindow(TITLE)

    def abort(self) -> None:
        self.close()
