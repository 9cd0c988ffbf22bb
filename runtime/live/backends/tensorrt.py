"""TensorRT: MKE engine files (`.engine`, `.plan`, `.trt`) on the GPU, through `mke.runtime.tensorrt`."""
from __future__ import annotations

from pathlib import Path

from mke.runtime.live.backends.registry import register_backend
from mke.runtime.tensorrt import TrtRunner


@register_backend("tensorrt", suffixes=(".engine", ".plan", ".trt"), default=True,
                  help="TensorRT 10 with pycuda buffers; the engine's header is checked against this machine")
def _tensorrt(path: Path, threads: int) -> TrtRunner:
    return TrtRunner(path)  # `threads` is ONNX Runtime's: TensorRT runs on the GPU
