"""Inference backends, chosen by the model file's suffix unless `--backend` says otherwise."""
from __future__ import annotations

from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.live.backends.base import Runner

BACKENDS = ("onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt")
SUFFIXES = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".trt": "tensorrt"}


def backend_for(path: Path, forced: str | None = None) -> str:
    if forced is not None:
        if forced not in BACKENDS:
            raise MkeError(f"--backend must be one of {', '.join(BACKENDS)}, got {forced!r}")
        wants = "tensorrt" if forced == "tensorrt" else "onnxruntime"
        if path.suffix in SUFFIXES and SUFFIXES[path.suffix] != wants:
            raise MkeError(f"--backend {forced} cannot run {path.name}: a {path.suffix} file is for "
                           f"{SUFFIXES[path.suffix]}")
        return forced
    if path.suffix not in SUFFIXES:
        raise MkeError(f"{path}: cannot tell the backend from the suffix {path.suffix or '(none)'}; expected "
                       f"{', '.join(SUFFIXES)} or --backend {{{', '.join(BACKENDS)}}}")
    return SUFFIXES[path.suffix]


def open_runner(path: str | Path, backend: str | None = None, threads: int = 0) -> Runner:
    """The runner for `path`; its `spec` comes from the file itself."""
    path = Path(path)
    if not path.is_file():
        raise MkeError(f"model file {path} does not exist")
    name = backend_for(path, backend)
    if name == "tensorrt":
        from mke.runtime.live.backends.tensorrt import TrtRunner

        return TrtRunner(path)
    from mke.runtime.live.backends.ort import OrtRunner

    return OrtRunner(path, device={"onnxruntime": "auto", "onnxruntime-cpu": "cpu",
                                   "onnxruntime-cuda": "cuda"}[name], threads=threads)
