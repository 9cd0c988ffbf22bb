"""The one way this project opens an ONNX Runtime session (live runner, spec reading, export, calibration).

One place sets the options that make timings fair on a shared robot CPU (no spinning thread pools,
sequential execution, quiet logging), picks the execution providers for a device, and turns
onnxruntime's own exceptions for a file it cannot read into one MkeError that names the file.
onnxruntime is imported when a session is made, not when this module is.
"""
from __future__ import annotations

import os
from pathlib import Path

from mke.runtime.errors import MkeError

DEVICES = ("cpu", "cuda", "auto")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def session_options(threads: int = 0, spinning: bool = False, optimize: bool = True):
    """ONNX Runtime options for fair timing: `threads` intra-op threads (0 = its default) and no
    spinning — idle pools that spin steal the cores from the session being timed next (2-thread
    medians went from 2.8 ms to 15–23 ms at 120×160 here with spinning on). `optimize=False` runs the
    graph as written (no fusion), e.g. to read the simulated quantization of a Q/DQ graph."""
    import onnxruntime as ort

    if threads < 0:
        raise MkeError(f"threads must be 0 (ONNX Runtime's choice) or more, got {threads}")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return opts


def providers_for(device: str) -> list[str]:
    """Execution providers for "cpu", "cuda" (an MkeError where this onnxruntime has no CUDA) or "auto"
    (CUDA when this onnxruntime has it — the onnxruntime-gpu wheel — else the CPU)."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise MkeError(f"ONNX Runtime device must be one of {', '.join(DEVICES)}, got {device!r}")
    available = ort.get_available_providers()
    if device == "cuda" and CUDA not in available:
        raise MkeError(f"ONNX Runtime on CUDA (--backend onnxruntime-cuda): this onnxruntime ({ort.__version__}) "
                       f"has no CUDA provider (it has {', '.join(available)}); install onnxruntime-gpu (pip extra "
                       f"mke-edge[gpu]) or run on the CPU")
    return ([CUDA] if device != "cpu" and CUDA in available else []) + [CPU]


def ort_session(model: str | os.PathLike | bytes, threads: int = 0, device: str = "cpu", *, spinning: bool = False,
                optimize: bool = True, name: str | None = None):
    """An onnxruntime.InferenceSession for `model` (a path, or the serialized model's bytes) with
    `session_options(threads, spinning, optimize)` on `device`; an MkeError naming the model (`name`,
    default its path) when the file is missing or not an ONNX model onnxruntime can load."""
    import onnxruntime as ort

    if isinstance(model, (bytes, bytearray)):
        label, source = name or "the in-memory ONNX model", bytes(model)
    else:
        path = Path(model)
        label, source = name or str(path), str(path)
        if not path.is_file():
            raise MkeError(f"model file {path} does not exist")
    options = session_options(threads, spinning, optimize)
    providers = providers_for(device)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise MkeError(f"{label} is not a readable ONNX model ({exc.__class__.__name__}: {str(exc)[:200]})") from None
