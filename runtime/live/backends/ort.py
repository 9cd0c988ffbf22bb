"""ONNX Runtime: CUDA when this onnxruntime has it (onnxruntime-gpu), else the CPU."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.live.backends.base import Runner
from mke.runtime.onnx_spec import spec_from_session
from mke.runtime.timing import ort_session_options

DEVICES = ("auto", "cuda", "cpu")


class OrtRunner(Runner):
    def __init__(self, path: str | Path, device: str = "auto", threads: int = 0):
        import onnxruntime as ort

        path = Path(path)
        if device not in DEVICES:
            raise MkeError(f"ONNX Runtime device must be one of {', '.join(DEVICES)}, got {device!r}")
        available = ort.get_available_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in available:
            raise MkeError(f"--backend onnxruntime-cuda: this onnxruntime ({ort.__version__}) has no CUDA provider "
                           f"(it has {', '.join(available)}); install onnxruntime-gpu (pip extra mke-edge[gpu])")
        use_cuda = device != "cpu" and "CUDAExecutionProvider" in available
        providers = (["CUDAExecutionProvider"] if use_cuda else []) + ["CPUExecutionProvider"]
        if not path.is_file():
            raise MkeError(f"model file {path} does not exist")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=ort_session_options(threads),
                                                providers=providers)
        except Exception as exc:  # onnxruntime's own exception types
            raise MkeError(f"{path} is not a readable ONNX model ({exc.__class__.__name__}: {str(exc)[:200]})") from None
        self.spec = spec_from_session(self.session, path)
        self.output_names = [o.name for o in self.session.get_outputs()]
        provider = self.session.get_providers()[0]
        threads_text = f", {threads} thread{'s' if threads != 1 else ''}" if threads else ""
        self.description = f"onnxruntime {ort.__version__} ({provider}{threads_text})"

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, dict(feeds))))
