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
            scale = max(0.35, h / 1200)
            cv2.putText(image, status, (6, h - 8), FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, status, (6, h - 8), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
        return image

    def _legend(self, image: np.ndarray, prediction: Prediction) -> None:
        scale = max(0.35, image.shape[0] / 1100)
        row = int(22 * scale / 0.45)
        shown = [(name, share) for name, share in prediction.shares.items() if share >= 0.005][:12]
        for k, (name, share) in enumerate(shown):
            y = 6 + k * row
            colour = tuple(int(c) for c in self._lut[self.spec.classes.index(name)])
            cv2.rectangle(image, (6, y), (6 + row - 4, y + row - 4), colour, -1)
            text = f"{name} {share * 100:.0f}%"
            cv2.putText(image, text, (10 + row, y + row - 8), FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, text, (10 + row, y + row - 8), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)

    def _top_k(self, image: np.ndarray, prediction: Prediction) -> None:
        scale = max(0.4, image.shape[0] / 900)
        row = int(26 * scale / 0.5)
        for k, (name, p) in enumerate(prediction.top):
            y = 8 + k * row
            width = int(p * image.shape[1] * 0.4)
            cv2.rectangle(image, (6, y), (6 + width, y + row - 6), (60, 180, 60), -1)
            text = f"{name} {p:.2f}"
            cv2.putText(image, text, (10, y + row - 10), FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, text, (10, y + row - 10), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)

    @staticmethod
    def _meter(image: np.ndarray, db: float, underrun: bool) -> None:
        """A vertical bar on the right: −60 dBFS (empty) to 0 dBFS (full); red when audio went missing."""
        h, w = image.shape[:2]
        top, bottom, x = int(h * 0.1), int(h * 0.9), w - 18
        cv2.rectangle(image, (x, top), (x + 10, bottom), (40, 40, 40), -1)
        fill = int((bottom - top) * min(1.0, max(0.0, (db + 60.0) / 60.0)))
        cv2.rectangle(image, (x, bottom - fill), (x + 10, bottom), (0, 0, 220) if underrun else (0, 200, 255), -1)
