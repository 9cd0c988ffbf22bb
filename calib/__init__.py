"""INT8 calibration: FP32 ONNX + unlabeled multimodal samples → INT8 ONNX for TensorRT and for CPUs.

    samples.py     the calibration set: seeded selection, the .npz keyed by input name, checks
    reader.py      the set as onnxruntime's CalibrationDataReader
    quantize.py    the `int8` (TensorRT Q/DQ) and `int8-cpu` (ONNX Runtime) recipes
    qdq_check.py   TensorRT's explicit-quantization rules (also behind the readiness report)
    graph_index.py an ONNX graph indexed for rule checks
    cpu_rewrite.py graph rewrites that keep more of int8-cpu in uint8 on ONNX Runtime
    qdq_edit.py    excluded nodes really kept in float
    sensitivity.py which quantized nodes add the most error
    budget.py      INT8 within an accuracy budget, sensitive nodes kept in FP32
    benchmark.py   side-by-side ONNX Runtime CPU latency

Needs onnx and onnxruntime (`pip install mke-edge[export]`); no torch. docs/calibration.md has
the choices and the measurements behind them.
"""
try:
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
except ImportError as exc:  # the runtime-only install has neither
    from mke.runtime.errors import MkeError

    raise MkeError(f"INT8 calibration needs onnx and onnxruntime ({exc}); install them with "
                   f"pip install 'mke-edge[export]'") from None
