"""The picture a person watches: segmentation colours with a legend, or top-k with bars, plus an
audio level meter and the stats line. Pure numpy + OpenCV drawing on a BGR copy of the frame."""
from __future__ import annotations

import cv2
import numpy as np

from mke.runtime.live.audio.signal import level_db
from mke.runtime.live.frame import LiveFrame
from mke.runtime.live.predictions import Prediction
from mke.runtime.spec import ModelSpec

FONT = cv2.FONT_HERSHEY_SIMPLEX
MARGIN = 4   # pixels between the frame's edge and a text block
PAD = 2      # pixels of dark backing around a text


def text_scale(height: int) -> float:
    """The font scale for a frame `height` pixels tall: text about 4 % of the height (9 px at 240,
    19 px at 480), never below what Hershey's simplex font stays legible at."""
    return max(0.3, height / 650)


def text_box(text: str, scale: float) -> tuple[int, int, int]:
    """(width, height above the baseline, depth below it) of `text` in pixels, drawn at `scale`."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 1)
    return width, height, baseline


def fit_scale(text: str, scale: float, width: int) -> float:
    """`scale`, or less, so that `text` fits in `width` pixels (down to 0.3, below which it is cut)."""
    text_width = text_box(text, scale)[0]
    return scale if text_width <= width else max(0.3, scale * width / text_width)


def _backing(image: np.ndarray, corner: tuple[int, int], opposite: tuple[int, int]) -> None:
    """Darken a rectangle to 35 % of its brightness, so white text reads on any colour beneath."""
    (x0, y0), (x1, y1) = corner, opposite
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(image.shape[1], x1), min(image.shape[0], y1)
    if x1 > x0 and y1 > y0:
        image[y0:y1, x0:x1] = (image[y0:y1, x0:x1] * 0.35).astype(np.uint8)


def _label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """White `text` on a dark backing, its baseline's left end at `origin`; cut at the frame's edge."""
    x, y = origin
    room = image.shape[1] - MARGIN - x
    while text and text_box(text, scale)[0] > room:
        text = text[:-1]
    width, height, base = text_box(text, scale)
    _backing(image, (x - PAD, y - height - PAD), (x + width + PAD, y + base + PAD))
    cv2.putText(image, text, (x, y), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


class Overlay:
    def __init__(self, spec: ModelSpec, alpha: float = 0.5):
        self.spec, self.alpha = spec, float(alpha)
        self._lut = np.zeros((256, 3), np.uint8)
        colors = np.asarray(spec.colors, np.uint8).reshape(-1, 3)[:256]
        self._lut[:len(colors)] = colors[:, ::-1]  # RGB → BGR

    def render(self, frame: LiveFrame, prediction: Prediction, status: str = "") -> np.ndarray:
        if frame.rgb is not None:
            image = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)
        else:
            image = np.zeros((240, 320, 3), np.uint8)
        h, w = image.shape[:2]
        if prediction.kind == "segmentation" and prediction.labels is not None:
            mask = self._lut[prediction.labels]
            if mask.shape[:2] != (h, w):
                mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
            image = cv2.addWeighted(mask, self.alpha, image, 1.0 - self.alpha, 0.0)
            self._legend(image, prediction)
        else:
            self._top_k(image, prediction)
        if frame.audio is not None:
            self._meter(image, level_db(frame.audio), frame.audio_underrun)
        if status:
            scale = fit_scale(status, text_scale(h), w - 2 * MARGIN)
            _label(image, status, (MARGIN, h - MARGIN - PAD - text_box("Ag", scale)[2]), scale)
        return image

    def _legend(self, image: np.ndarray, prediction: Prediction) -> None:
        """A swatch and "name share%" per class present, one row each, on a dark backing."""
        scale = text_scale(image.shape[0])
        _, text_h, base = text_box("Ag", scale)
        row = text_h + base + 2 * PAD + 2          # a row: the text's box plus its backing's padding
        swatch = text_h + base                      # a square as tall as the text
        shown = [(name, share) for name, share in prediction.shares.items() if share >= 0.005]
        shown = shown[:max(1, (image.shape[0] - 2 * MARGIN) // row)]  # as many rows as the frame holds
        for k, (name, share) in enumerate(shown):
            top = MARGIN + k * row
            colour = tuple(int(c) for c in self._lut[self.spec.classes.index(name)])
            _backing(image, (MARGIN, top), (MARGIN + 2 * PAD + swatch, top + row - 2))
            cv2.rectangle(image, (MARGIN + PAD, top + PAD), (MARGIN + PAD + swatch, top + PAD + swatch), colour, -1)
            _label(image, f"{name} {share * 100:.0f}%", (MARGIN + 3 * PAD + swatch, top + PAD + text_h), scale)

    def _top_k(self, image: np.ndarray, prediction: Prediction) -> None:
        """A bar as long as each class's probability, "name p" on it, one row each."""
        scale = text_scale(image.shape[0])
        _, text_h, base = text_box("Ag", scale)
        row = text_h + base + 2 * PAD + 2
        if not prediction.top and prediction.scores is not None:   # multilabel: every class under its threshold
            _backing(image, (MARGIN, MARGIN), (MARGIN + 2 * PAD + text_box("none over threshold", scale)[0], MARGIN + row - 2))
            _label(image, "none over threshold", (MARGIN + PAD, MARGIN + PAD + text_h), scale)
        for k, (name, p) in enumerate(prediction.top):
            top = MARGIN + k * row
            width = int(p * image.shape[1] * 0.4)
            cv2.rectangle(image, (MARGIN, top), (MARGIN + width, top + row - 2), (60, 180, 60), -1)
            _label(image, f"{name} {p:.2f}", (MARGIN + PAD, top + PAD + text_h), scale)

    @staticmethod
    def _meter(image: np.ndarray, db: float, underrun: bool) -> None:
        """A vertical bar on the right: −60 dBFS (empty) to 0 dBFS (full); red when audio went missing."""
        h, w = image.shape[:2]
        top, bottom, x = int(h * 0.1), int(h * 0.9), w - 18
        cv2.rectangle(image, (x, top), (x + 10, bottom), (40, 40, 40), -1)
        fill = int((bottom - top) * min(1.0, max(0.0, (db + 60.0) / 60.0)))
        cv2.rectangle(image, (x, bottom - fill), (x + 10, bottom), (0, 0, 220) if underrun else (0, 200, 255), -1)
