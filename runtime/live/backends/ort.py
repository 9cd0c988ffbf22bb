"""ONNX Runtime: CUDA when this onnxruntime has it (onnxruntime-gpu), else the CPU."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from mke.runtime.live.backends.base import Runner, TensorMeta
from mke.runtime.live.backends.registry import register_backend
from mke.runtime.onnx_spec import spec_from_session
from mke.runtime.onnxrt import ort_session, providers_for

# onnxruntime's element type names → numpy; a type missing here is not checked by Runner.infer
ORT_DTYPES = {f"tensor({t})": np.dtype(n) for t, n in (
    ("float", "float32"), ("float16", "float16"), ("double", "float64"), ("int8", "int8"), ("uint8", "uint8"),
    ("int16", "int16"), ("uint16", "uint16"), ("int32", "int32"), ("uint32", "uint32"), ("int64", "int64"),
    ("uint64", "uint64"), ("bool", "bool"))}


class OrtRunner(Runner):
    """`device` "auto" (CUDA when available), "cuda" or "cpu"; `threads` intra-op CPU threads (0: its choice)."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int = 0):
        self.path, self.device, self.threads = Path(path), device, threads
        self.name = self.path.name
        providers_for(device)  # a device this onnxruntime lacks fails here, before any loading
        self.session = None

    def _activate_impl(self) -> None:
        import onnxruntime as ort

        self.session = ort_session(self.path, self.threads, self.device)
        self.spec = spec_from_session(self.session, self.path)
        self.output_names = [o.name for o in self.session.get_outputs()]
        provider = self.session.get_providers()[0]
        threads_text = f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
        self.description = f"onnxruntime {ort.__version__} ({provider}{threads_text})"

    def _input_metadata_impl(self) -> dict[str, TensorMeta]:
        """onnxruntime reports an input of unknown rank as shape [] (like a scalar): left unchecked."""
        return {i.name: TensorMeta(ORT_DTYPES.get(i.type), tuple(d if isinstance(d, int) and d >= 0 else None
                                                                 for d in i.shape) if i.shape else None)
                for i in self.session.get_inputs()}

    def _infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, dict(feeds))))

    def _deactivate_impl(self) -> None:
        self.session = None


@register_backend("onnxruntime", suffixes=(".onnx",), default=True, help="CUDA when available, else the CPU")
def _onnxruntime(path: Path, threads: int) -> OrtRunner:
    return OrtRunner(path, "auto", threads)


@register_backend("onnxruntime-cpu", suffixes=(".onnx",), help="the CPU only")
def _onnxruntime_cpu(path: Path, threads: int) -> OrtRunner:
    return OrtRunner(path, "cpu", threads)


@register_backend("onnxruntime-cuda", suffixes=(".onnx",), help="CUDA (onnxruntime-gpu), or an error")
def _onnxruntime_cuda(path: Path, threads: int) -> OrtRunner:
    return OrtRunner(path, "cuda", threads)
