"""The overlay a person watches stays legible at the robot's small frame sizes: the legend's text
beside, not on, its swatches; the status line inside the frame; text sized to the frame."""
from __future__ import annotations

import numpy as np
import pytest

from mke.runtime.live.frame import LiveFrame
from mke.runtime.live.predictions import Prediction
from mke.runtime.live.sinks.overlay import MARGIN, PAD, Overlay, text_box, text_scale
from mke.runtime.spec import InputSpec, ModelSpec, OutputSpec

CLASSES = ["floor", "wall", "table", "chair", "sofa", "cabinet", "bed"]
COLORS = [[140, 110, 80], [180, 200, 230], [200, 60, 60], [40, 160, 40], [150, 100, 200], [220, 40, 40],
          [230, 200, 80]]


def _render(h: int, w: int, status: str) -> tuple[np.ndarray, Overlay, list[str]]:
    spec = ModelSpec(task="rgbd", kind="segmentation", classes=CLASSES, colors=COLORS,
                     inputs=[InputSpec("rgb", [1, 3, 120, 160], {"kind": "rgb"})],
                     outputs=[OutputSpec("logits", [1, len(CLASSES), 120, 160])])
    labels = (np.arange(120 * 160).reshape(120, 160) % 7).astype(np.uint8)  # every class present
    shares = {name: (7 - i) / 28 for i, name in enumerate(CLASSES)}
    frame = LiveFrame(index=123, timestamp_s=0.0, arrival_s=0.0, rgb=np.full((h, w, 3), 128, np.uint8))
    overlay = Overlay(spec, alpha=0.5)
    return overlay.render(frame, Prediction("segmentation", labels=labels, shares=shares), status), overlay, \
        list(shares)


def _white(image: np.ndarray) -> np.ndarray:
    return (image >= 200).all(axis=2)  # only text is this bright: the frame is grey, the colours half over it


@pytest.mark.parametrize("h, w", [(240, 320), (480, 640), (120, 160)])
def test_legend_text_sits_beside_its_swatch_on_a_backing(h, w):
    image, overlay, shown = _render(h, w, "")
    _, text_h, base = text_box("Ag", text_scale(h))
    row, swatch = text_h + base + 2 * PAD + 2, text_h + base
    rows = min(len(shown), (h - 2 * MARGIN) // row)
    assert rows >= 3
    white = _white(image)
    for k, name in enumerate(shown[:rows]):
        top = MARGIN + k * row
        x0, y0 = MARGIN + PAD, top + PAD
        square = image[y0:y0 + swatch, x0:x0 + swatch]
        expected = overlay._lut[CLASSES.index(name)]
        assert (square == expected).all(), f"text or backing drawn over the {name} swatch"
        band = white[top:top + row - 2]
        assert band.any(), f"no text in {name}'s row"
        assert np.nonzero(band)[1].min() > x0 + swatch, f"{name}'s text runs into its swatch"
    assert not white[MARGIN + rows * row:].any()  # nothing below the last row (no status here)


@pytest.mark.parametrize("h, w", [(240, 320), (480, 640)])
def test_the_status_line_fits_the_frame(h, w):
    status = "14 ms latency  2.5 ms model  frame 123 of a status line longer than a small frame is wide"
    image, _, _ = _render(h, w, status)
    white = _white(image)
    bottom = white[h - MARGIN - 3 * text_box("Ag", text_scale(h))[1]:]
    assert bottom.any()
    assert np.nonzero(bottom)[1].max() < w - MARGIN  # cut or shrunk to the frame, never past it


def test_text_is_sized_to_the_frame():
    small, large = (text_box("Ag", text_scale(h))[1] for h in (240, 480))
    assert 7 <= small <= 12 and 1.6 <= large / small <= 2.4


def test_a_multilabel_overlay_lists_the_events_over_threshold_or_says_there_are_none():
    spec = ModelSpec(task="events", kind="multilabel", classes=["dog", "siren"], colors=[[0, 0, 0]] * 2,
                     inputs=[InputSpec("audio", [1, 1, 64, 101], {"kind": "log_mel"})], outputs=[OutputSpec("logits", [1, 2])])
    frame = LiveFrame(index=0, timestamp_s=0.0, arrival_s=0.0, rgb=np.full((240, 320, 3), 128, np.uint8))
    overlay = Overlay(spec, alpha=0.5)
    scores = np.array([0.9, 0.2], np.float32)
    one = overlay.render(frame, Prediction("multilabel", top=[("dog", 0.9)], scores=scores, classes=("dog", "siren")))
    none = overlay.render(frame, Prediction("multilabel", top=[], scores=scores * 0.1, classes=("dog", "siren")))
    _, text_h, base = text_box("Ag", text_scale(240))
    band = slice(MARGIN, MARGIN + text_h + base + 2 * PAD)        # the first row
    assert (one[band, :, 1] > 170).any()                          # the green bar of "dog 0.90"
    assert _white(none[band]).sum() > 20                          # "none over threshold" in white
    assert not _white(none[band.stop + 2:]).any()                 # and nothing below it
