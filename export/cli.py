"""`mke-export`: a trained run → ONNX (FP32, FP16), INT8 Q/DQ, TensorRT engines, each verified."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mke-export",
        description="Export the teacher and fused student of a run to ONNX and FP16 / INT8 TensorRT engines, "
                    "calibrated on the run's unlabeled multimodal samples and verified against PyTorch.")
    p.add_argument("run", type=Path, help="a run folder written by mke-train, e.g. runs/rgbd")
    p.add_argument("--out", type=Path, help="output folder (default: exports/<run name>)")
    p.add_argument("--fp16", action="store_true", help="also build FP16 artifacts")
    p.add_argument("--int8", action="store_true", help="also calibrate and build INT8 artifacts")
    return p


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("mke-export: not built yet: ONNX export, INT8 calibration and TensorRT engines come with issue #4",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
