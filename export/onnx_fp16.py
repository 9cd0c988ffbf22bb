"""FP32 ONNX → FP16 ONNX, torch-free: the workstation's export and the device's build (`mke-export
student.onnx --fp16` on a Jetson without PyTorch) convert the same way."""
from __future__ import annotations

from pathlib import Path

import onnx

from mke.runtime.fileio import atomic_path


def onnx_to_fp16(src: str | Path, dst: str | Path) -> Path:
    """FP16 weights and activations with FP32 inputs and outputs (for runtimes that want FP16 ONNX)."""
    import onnxslim
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load(str(src))
    spec_props = [(p.key, p.value) for p in proto.metadata_props]
    half = convert_float_to_float16(proto, keep_io_types=True)
    half = onnxslim.slim(half)  # also sorts the Cast nodes the converter appends back into order
    del half.metadata_props[:]
    for key, value in spec_props:
        entry = half.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(half)
    with atomic_path(dst, keep_suffix=True) as tmp:
        onnx.save(half, str(tmp))
    return Path(dst)
