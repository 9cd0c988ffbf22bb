"""FP32 ONNX → INT8 ONNX, calibrated on a calibration set, in one of two recipes.

| recipe     | for                       | format | activations            | weights                    |
|------------|---------------------------|--------|------------------------|----------------------------|
| `int8`     | TensorRT (explicit quant.) | Q/DQ   | int8, symmetric (zp 0) | int8 symmetric, per channel |
| `int8-cpu` | ONNX Runtime on x86 CPUs  | Q/DQ   | uint8, asymmetric      | int8 symmetric, per channel |

TensorRT 10 deprecated (and 11 removed) its INT8 calibrators; it builds INT8 from Q/DQ nodes with
zero point 0 and per-output-channel weight scales, biases left in float. ONNX Runtime's x86 integer
kernels instead want unsigned activations (u8s8): on CPUs without VNNI the signed symmetric model
runs no faster than FP32, the unsigned one clearly faster (docs/calibration.md has the figures,
and why Q/DQ over QOperator). Both recipes go through onnxruntime.quantization.quantize_static.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Protocol

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

from mke.calib.cpu_rewrite import spatial_mean_to_global_pool
from mke.calib.qdq_check import check_cpu_int8, check_tensorrt_qdq
from mke.calib.qdq_edit import keep_in_float
from mke.calib.reader import NpzCalibrationReader, as_samples
from mke.calib.samples import load_onnx, sample_count
from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path, write_text

log = logging.getLogger(__name__)

PRE_PROCESS_KEY = "onnx.quant.pre_process"  # onnxruntime's mark on a pre-processed model
METADATA_KEY = "mke.quantization"           # what we did, as JSON, beside the model spec


@dataclass(frozen=True)
class Int8Recipe:
    name: str
    target: str
    quant_format: str            # "QDQ" or "QOperator"
    activations: str             # "int8" or "uint8"
    activation_symmetric: bool
    quantize_bias: bool          # int32 bias (ORT's QLinearConv wants it); TensorRT wants float bias
    weights: str = "int8"
    weight_symmetric: bool = True
    per_channel: bool = True
    global_pool: bool = False    # spatial ReduceMean → GlobalAveragePool, which ORT's CPU runs in uint8
    float_output_resize: bool = False  # a Resize writing a graph output stays float (no full-size Q/DQ)


RECIPES: dict[str, Int8Recipe] = {
    "int8": Int8Recipe("int8", "TensorRT explicit quantization", "QDQ", "int8", activation_symmetric=True,
                       quantize_bias=False),
    "int8-cpu": Int8Recipe("int8-cpu", "ONNX Runtime CPU (x86, no VNNI needed)", "QDQ", "uint8",
                           activation_symmetric=False, quantize_bias=True, global_pool=True,
                           float_output_resize=True),
}
CALIBRATION_METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                       "entropy": CalibrationMethod.Entropy}
_QUANT_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
CALIBRATION_CHUNK = 32  # calibration batches whose intermediate tensors are held in memory at once


class QuantizeFn(Protocol):
    """What the accuracy-budget search calls: quantize `model` on `samples` into `output`."""

    def __call__(self, model: str | os.PathLike, samples, output: str | os.PathLike, *,
                 nodes_to_exclude: Iterable[str] = (), calibration_cache: str | os.PathLike | None = None) -> Path: ...


def recipe(name: str) -> Int8Recipe:
    if name not in RECIPES:
        raise MkeError(f"INT8 recipe '{name}' is not one of {', '.join(RECIPES)}")
    return RECIPES[name]


def is_pre_processed(model: str | os.PathLike | onnx.ModelProto) -> bool:
    proto = model if isinstance(model, onnx.ModelProto) else load_onnx(model, load_external_data=False)
    return any(p.key == PRE_PROCESS_KEY for p in proto.metadata_props)


def prepare_for_quantization(model: str | os.PathLike, output: str | os.PathLike) -> Path:
    """onnxruntime's quant_pre_process: ONNX shape inference and ORT's basic graph optimizations
    (constant folding — e.g. the Shape/Slice/Concat that feed Resize sizes —, Conv+BatchNorm fusion,
    redundant nodes) so that more tensors get quantization parameters.

    Symbolic shape inference is skipped: it is meant for transformers' dynamic axes and took 9.5 s of
    the 9.7 s here on the test model, for the same graph. The model's metadata (the spec) is kept.
    """
    src = load_onnx(model, load_external_data=False)
    with atomic_path(output) as tmp:
        quant_pre_process(str(model), str(tmp), skip_symbolic_shape=True)
        out = onnx.load(str(tmp))
        merge_metadata(out, {p.key: p.value for p in src.metadata_props})
        onnx.save(out, str(tmp))
    return Path(output)


def quantize(model: str | os.PathLike, samples: Mapping[str, np.ndarray] | str | os.PathLike,
             output: str | os.PathLike, recipe_name: str = "int8", *, method: str = "minmax",
             nodes_to_exclude: Iterable[str] = (), op_types: Iterable[str] | None = None,
             calibration_cache: str | os.PathLike | None = None, percentile: float | None = None,
             reduce_range: bool = False, batch_size: int = 1) -> Path:
    """Calibrate `model` (FP32 ONNX) on `samples` (arrays or an .npz) and write the `recipe_name`
    INT8 model to `output`, atomically: a failure anywhere leaves no file at `output`.

    `method`: minmax (default), percentile (`percentile`, default 99.999) or entropy.
    `nodes_to_exclude`: node names of the pre-processed graph kept in FP32: no quantized weights, and
    float inputs (see `mke.calib.qdq_edit`), while their neighbours stay INT8.
    `calibration_cache`: a JSON file of tensor ranges, made on the first call and reused (no second
    calibration) while the model, samples and method stay the same — a `.key` file beside it
    records them, so that int8, int8-cpu and every step of the budget search calibrate once.
    `reduce_range`: 7-bit weights,
    onnxruntime's remedy for u8s8 saturation on AVX2 CPUs, should int8-cpu lose accuracy.
    The result is checked (TensorRT's Q/DQ rules for int8) before it is moved into place.
    """
    spec = recipe(recipe_name)
    if method not in CALIBRATION_METHODS:
        raise MkeError(f"calibration method '{method}' is not one of {', '.join(CALIBRATION_METHODS)}")
    excluded = sorted(set(nodes_to_exclude))
    source = load_onnx(model, load_external_data=False)
    samples = as_samples(samples, source)
    with tempfile.TemporaryDirectory(prefix="mke-quant-") as work, atomic_path(output) as tmp:
        work = Path(work)
        fp32 = Path(model)
        if not is_pre_processed(source):
            fp32 = prepare_for_quantization(model, work / "pre.onnx")
        key_source = fp32
        if spec.global_pool:
            fp32 = _with_global_pools(fp32, work / "global-pool.onnx")
        graph = load_onnx(fp32, load_external_data=False).graph
        graph_nodes = {n.name for n in graph.node}
        unknown = [n for n in excluded if n not in graph_nodes]
        if unknown:
            raise MkeError(f"nodes_to_exclude names nodes that {model} (pre-processed) does not have: "
                           f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}")
        by_recipe = output_resizes(graph) if spec.float_output_resize else []
        in_float = sorted(set(excluded) | set(by_recipe))
        extra = {"ActivationSymmetric": spec.activation_symmetric, "WeightSymmetric": spec.weight_symmetric,
                 "QuantizeBias": spec.quantize_bias}
        if method == "percentile" and percentile is not None:
            extra["CalibPercentile"] = float(percentile)
        reader = NpzCalibrationReader(samples, source, batch_size=batch_size)
        # onnxruntime keeps every calibration batch's intermediate tensors in memory before reducing
        # them (500 samples at 120×160 ran a 24 GiB machine out of memory with Entropy): reduce in chunks.
        if method == "minmax":
            extra["CalibMaxIntermediateOutputs"] = CALIBRATION_CHUNK
        else:
            extra["CalibStridedMinMax"] = max(d for d in range(1, CALIBRATION_CHUNK + 1) if len(reader) % d == 0)
        kwargs = {}
        if calibration_cache is not None:
            key = _calibration_key(key_source, samples, method, extra.get("CalibPercentile"), reader.batch_size)
            kwargs["calibration_cache_path"] = str(_checked_cache(Path(calibration_cache), key))
        quantize_static(
            str(fp32), str(work / "q.onnx"), reader,
            quant_format=QuantFormat.QDQ if spec.quant_format == "QDQ" else QuantFormat.QOperator,
            op_types_to_quantize=list(op_types) if op_types else None,
            per_channel=spec.per_channel, reduce_range=reduce_range,
            activation_type=_QUANT_TYPES[spec.activations], weight_type=_QUANT_TYPES[spec.weights],
            nodes_to_exclude=in_float, calibrate_method=CALIBRATION_METHODS[method],
            extra_options=extra, **kwargs)
        quantized = onnx.load(str(work / "q.onnx"))
        keep_in_float(quantized, in_float, load_onnx(fp32))
        _drop_unused_opsets(quantized)
        record = {"recipe": asdict(spec), "method": method, "samples": sample_count(samples),
                  "nodes_to_exclude": excluded, "float_by_recipe": by_recipe, "reduce_range": reduce_range,
                  "onnxruntime": onnxruntime.__version__}
        if percentile is not None and method == "percentile":
            record["percentile"] = percentile
        merge_metadata(quantized, {**{p.key: p.value for p in source.metadata_props},
                                    METADATA_KEY: json.dumps(record)})
        if spec.name == "int8":
            check_tensorrt_qdq(quantized, source=str(output), require_qdq=not excluded)
        else:
            check_cpu_int8(quantized, source=str(output))
        onnx.save(quantized, str(tmp))
        if calibration_cache is not None:
            write_text(_cache_key_path(Path(calibration_cache)), key)
    log.info("%s: %s INT8 (%s calibration, %d samples, %d node(s) kept in FP32)", output, spec.name, method,
             sample_count(samples), len(excluded))
    return Path(output)


def output_resizes(graph: onnx.GraphProto) -> list[str]:
    """Resize nodes that write a graph output (a segmentation head's upsampling to the input size).

    Quantized, such a Resize runs in float between a DequantizeLinear and a QuantizeLinear anyway
    (ONNX Runtime drops that pair only for nearest resizing), and the full-size logits then pay a
    QuantizeLinear and a DequantizeLinear and lose precision to 8-bit rounding. Left in float, the
    graph ends in float: on the 120×160 RGB-D student about 0.01× of FP32 faster, and the largest
    logit error against FP32 fell from 0.047 to 0.011 (docs/calibration.md).
    """
    outputs = {o.name for o in graph.output}
    return [n.name for n in graph.node if n.op_type == "Resize" and n.name and any(o in outputs for o in n.output)]


def _with_global_pools(fp32: Path, output: Path) -> Path:
    """`fp32` with spatial ReduceMeans as GlobalAveragePool (mke.calib.cpu_rewrite), or `fp32` itself
    when it has none. Tensor and node names stay, so calibration ranges and exclusions still apply."""
    proto = load_onnx(fp32)
    if not spatial_mean_to_global_pool(proto):
        return fp32
    onnx.save(proto, str(output))
    return output


def quantize_int8(model, samples, output, **kwargs) -> Path:
    """TensorRT's INT8: Q/DQ, symmetric int8 activations and per-channel weights, zero points 0."""
    return quantize(model, samples, output, "int8", **kwargs)


def quantize_int8_cpu(model, samples, output, **kwargs) -> Path:
    """ONNX Runtime CPU INT8: Q/DQ, uint8 asymmetric activations, int8 per-channel weights."""
    return quantize(model, samples, output, "int8-cpu", **kwargs)


QUANTIZERS = {"int8": quantize_int8, "int8-cpu": quantize_int8_cpu}


def quantization_record(model: str | os.PathLike | onnx.ModelProto) -> dict | None:
    """What `quantize` wrote into the model's metadata (recipe, method, excluded nodes), or None."""
    proto = model if isinstance(model, onnx.ModelProto) else load_onnx(model, load_external_data=False)
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    return None


def _calibration_key(fp32: Path, samples: Mapping[str, np.ndarray], method: str, percentile, batch: int) -> str:
    """What the cached tensor ranges depend on: the graph, the samples, the method and its settings."""
    digest = hashlib.sha256(Path(fp32).read_bytes())
    for name in sorted(samples):
        array = np.ascontiguousarray(samples[name])
        digest.update(f"{name}{array.shape}{array.dtype}".encode())
        digest.update(memoryview(array).cast("B"))
    digest.update(f"{method}|{percentile}|{batch}".encode())
    return digest.hexdigest()


def _cache_key_path(cache: Path) -> Path:
    return cache.with_name(cache.name + ".key")


def _checked_cache(cache: Path, key: str) -> Path:
    """onnxruntime reuses a range cache without asking what it was made from: ours carries a key
    file, and a cache made from another model, other samples or another method is made anew."""
    stamp = _cache_key_path(cache)
    if cache.exists() and (not stamp.is_file() or stamp.read_text(encoding="utf-8") != key):
        log.info("calibration cache %s was made from another model, samples or method: calibrating anew", cache)
        cache.unlink()
    return cache


def merge_metadata(model: onnx.ModelProto, props: Mapping[str, str]) -> None:
    """Add or replace `props` in the model's metadata_props, keeping the others (the model spec)."""
    merged = {p.key: p.value for p in model.metadata_props}
    merged.update(props)
    onnx.helper.set_model_props(model, merged)


def _drop_unused_opsets(model: onnx.ModelProto) -> None:
    """ORT's optimizer declares a dozen opset domains (training, nchwc, …) that no node uses; other
    consumers (TensorRT's parser) need not see them."""
    used = {n.domain or "" for n in model.graph.node}
    keep = [o for o in model.opset_import if (o.domain or "") in used or o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(keep)
