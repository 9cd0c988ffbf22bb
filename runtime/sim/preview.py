"""Pictures for people: depth and labels as colour images (uint8 RGB), side by side with the RGB."""
from __future__ import annotations

import numpy as np

from mke.runtime.sim.classes import CLASS_COLORS


def depth_colors(depth_mm: np.ndarray, max_mm: int = 8000) -> np.ndarray:
    """Near is warm, far is cool (a turbo-like ramp); invalid (0) pixels are black."""
    t = np.clip(depth_mm.astype(np.float32) / max_mm, 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4 * t - 1.0), 0, 1)
    g = np.clip(1.5 - np.abs(4 * t - 2.0), 0, 1)
    b = np.clip(1.5 - np.abs(4 * t - 3.0), 0, 1)
    rgb = (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)
    rgb[depth_mm == 0] = 0
    return rgb


def label_colors(labels: np.ndarray) -> np.ndarray:
    """CLASS_COLORS per pixel; ids without a colour (void) are black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:len(CLASS_COLORS)] = CLASS_COLORS
    return lut[labels]


def side_by_side(frame) -> np.ndarray:
    """rgb | depth | labels of one Frame, as one (H, 3W, 3) uint8 image."""
    return np.concatenate([frame.rgb, depth_colors(frame.depth), label_colors(frame.labels)], axis=1)
