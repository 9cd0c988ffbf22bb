"""A new live source is one file: this one defines and registers `pattern://` (RGB-D test frames made with
numpy) and mke-live runs on it, with nothing else edited."""
import json
import time
from dataclasses import dataclass

import numpy as np
import pytest

from mke.runtime.cli import main
from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame, Status
from mke.runtime.live.sources import Source, SourceContext, register_source

NEAR_MM, FAR_MM = 500, 5000   # the tiny model calls near depth "floor" and far depth "wall"


class PatternSource(Source):
    """`frames` frames at the model's size: the left `near` share of the picture near, the rest far."""

    modalities = frozenset({"rgb", "depth"})
    live = False

    def __init__(self, frames: int, near: float, size: tuple[int, int]):
        self.frames, self.near, self.size = frames, near, size
        self.name = f"pattern of {frames} frames"
        self._index = 0

    def open(self) -> None:
        self._index = 0

    def read(self, timeout_s: float):
        if self._index >= self.frames:
            return Status.END, None
        w, h = self.size
        depth = np.full((h, w), FAR_MM, np.uint16)
        depth[:, : round(w * self.near)] = NEAR_MM
        frame = LiveFrame(index=self._index, timestamp_s=self._index / 30, arrival_s=time.monotonic(),
                          rgb=np.zeros((h, w, 3), np.uint8), depth=depth)
        self._index += 1
        return Status.OK, frame

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class PatternOptions:
    frames: int = 5
    near: float = 0.5      # the share of columns that are near

    def __post_init__(self):
        if not 0 <= self.near <= 1:
            raise MkeError(f"near is a share in 0..1, got {self.near}")


@register_source("pattern", options=PatternOptions, modalities={"rgb", "depth"}, form="pattern://",
                 summary="numpy test frames, near on the left")
def open_pattern(options: PatternOptions, context: SourceContext) -> PatternSource:
    return PatternSource(options.frames, options.near, context.image_size)


def test_mke_live_runs_on_a_source_registered_in_one_file(rgbd_onnx, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    assert main([str(rgbd_onnx), "--input", "pattern://?frames=7&near=0.25", "--headless", "--stats-every", "0",
                 "--jsonl", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(7))
    for r in lines:   # the frames reached the model at its size (64 × 48): a quarter near, the rest far
        assert r["classes"]["floor"] == pytest.approx(0.25) and r["classes"]["wall"] == pytest.approx(0.75)
    err = capsys.readouterr().err
    assert "source: pattern of 7 frames" in err and "end of stream after 7 frames" in err


def test_its_options_are_checked_and_listed(rgbd_onnx, capsys):
    assert main([str(rgbd_onnx), "--input", "pattern://?frame=3", "--headless"]) == 2
    assert "unknown option 'frame' (did you mean 'frames'?)" in capsys.readouterr().err
    assert main([str(rgbd_onnx), "--input", "pattern://?near=2", "--headless"]) == 2
    assert "pattern://?near=2: near is a share in 0..1, got 2.0" in capsys.readouterr().err
    assert main(["--list-inputs"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "pattern://" in x)
    assert "depth, rgb" in line and "numpy test frames" in line and "[?frames=5&near=0.5]" in line


def test_a_model_the_source_cannot_feed_is_refused_before_it_starts(av_onnx, capsys):
    assert main([str(av_onnx), "--input", "pattern://", "--headless"]) == 2
    assert "but pattern of 5 frames gives only depth, rgb" in capsys.readouterr().err
