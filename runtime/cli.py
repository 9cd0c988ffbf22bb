"""`mke-live`: stream a sensor (RealSense RGB-D, camera + microphone, a recording) into the student."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mke-live",
        description="Run an exported MKE student live on a robot: RealSense RGB-D, camera + microphone, a "
                    "recording or the built-in simulator, with an overlay window or headless outputs.")
    p.add_argument("model", type=Path, nargs="?", help="an exported model (.onnx or TensorRT .engine)")
    p.add_argument("--sensor", choices=["realsense", "camera", "files", "sim"], help="the live source")
    p.add_argument("--headless", action="store_true", help="no window")
    return p


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("mke-live: not built yet: sources, inference backends and sinks come with issue #5", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
