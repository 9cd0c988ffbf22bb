"""Inference backends, chosen by the model file's suffix unless `--backend` says otherwise.

Each backend is one module of this package that registers itself (`registry.register_backend`):
`ort` (onnxruntime, onnxruntime-cpu, onnxruntime-cuda for .onnx) and `tensorrt` (.engine, .plan,
.trt). Every runner keeps the contract of `base.Runner`.
"""
from __future__ import annotations

from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.live.backends.base import Runner, TensorMeta
from mke.runtime.live.backends.registry import Backend, backend_for, backend_names, backends, register_backend

__all__ = ["Backend", "Runner", "TensorMeta", "backend_for", "backend_names", "backends", "open_runner",
           "register_backend"]


def open_runner(path: str | Path, backend: str | None = None, threads: int = 0) -> Runner:
    """The active runner for `path` (its `spec` comes from the file itself); close() it, or use it as
    a context manager."""
    path = Path(path)
    if not path.is_file():
        raise MkeError(f"model file {path} does not exist")
    return backend_for(path, backend).factory(path, threads).activate()
