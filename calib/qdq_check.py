"""What an INT8 ONNX graph holds, and whether it follows TensorRT's rules for explicit quantization.

TensorRT builds INT8 from QuantizeLinear/DequantizeLinear pairs it can fuse into its kernels:
zero points must be 0 and signed (symmetric), scales constant and positive, per-channel scales only
for weights and along their output channels (axis 0 of a Conv kernel, axis 1 of a ConvTranspose
kernel), and every node in the standard ONNX domain. A graph that breaks a rule either fails to
parse or silently runs in FP32.

The rules live here once (`qdq_node_problems`): `quantize_int8` refuses a graph that breaks them,
and mke-export's TensorRT readiness report (`mke.export.trt_readiness`) lists them as findings.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx

from mke.calib.graph_index import GraphIndex
from mke.calib.qdq_edit import constant_values
from mke.calib.samples import load_onnx
from mke.runtime.errors import MkeError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
QUANT_TYPES_OK = {3: "INT8", 17: "FLOAT8E4M3FN", 22: "INT4"}  # onnx.TensorProto data types TensorRT quantizes to
TYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 21: "UINT4", 22: "INT4"}


@dataclass
class QuantSummary:
    quantize_nodes: int = 0
    dequantize_nodes: int = 0
    activation_types: set[str] = field(default_factory=set)   # dtypes of QuantizeLinear outputs
    weight_types: set[str] = field(default_factory=set)       # dtypes of dequantized weights and biases
    constant_types: set[str] = field(default_factory=set)     # dtypes of other dequantized constants (an
                                                              # Add's table: quantized as activations)
    per_channel_weights: int = 0
    per_tensor_weights: int = 0
    qlinear_ops: Counter = field(default_factory=Counter)     # QOperator-format nodes (QLinearConv …)
    float_nodes: list[str] = field(default_factory=list)      # compute nodes none of whose inputs is dequantized


def _as_proto(model) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else load_onnx(model)


WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")   # the ops whose constant operands are weights


def summarize(model) -> QuantSummary:
    """Counts and types of the quantization in `model` (a path or ModelProto). A dequantized constant is
    a weight (or an int32 bias) where it feeds a Conv, ConvTranspose, Gemm or MatMul; elsewhere (a
    positional table added to a sequence, a LayerNorm scale) onnxruntime quantizes it like the
    activations it meets, so it is counted apart."""
    graph = _as_proto(model).graph
    consts = constant_values(graph)
    s = QuantSummary()
    dq_outputs = set()
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    for node in graph.node:
        if node.op_type == "QuantizeLinear":
            s.quantize_nodes += 1
            zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            s.activation_types.add(str(zp.dtype) if zp is not None else "uint8")
        elif node.op_type == "DequantizeLinear":
            s.dequantize_nodes += 1
            dq_outputs.add(node.output[0])
            if node.input[0] in consts:
                if not consumers.get(node.output[0], set()) & set(WEIGHT_OPS):
                    s.constant_types.add(str(consts[node.input[0]].dtype))
                    continue
                s.weight_types.add(str(consts[node.input[0]].dtype))
                if consts[node.input[0]].dtype == np.int32:  # a bias
                    continue
                scale = consts.get(node.input[1])
                if scale is not None and scale.size > 1:
                    s.per_channel_weights += 1
                else:
                    s.per_tensor_weights += 1
        elif node.op_type.startswith("QLinear") or node.op_type in ("ConvInteger", "MatMulInteger"):
            s.qlinear_ops[node.op_type] += 1
    for node in graph.node:
        if node.op_type not in QDQ_OPS + ("Constant",) and not node.op_type.startswith("QLinear") \
                and not any(i in dq_outputs for i in node.input):
            s.float_nodes.append(node.name)
    return s


def tensorrt_violations(model) -> list[str]:
    """Every place where `model` breaks TensorRT's explicit-quantization rules (`qdq_node_problems`),
    uses a non-standard domain, or quantizes a convolution's weights with one scale where the `int8` recipe
    promises one per output channel; empty: it follows them."""
    graph = GraphIndex(_as_proto(model))
    problems = []
    for node in graph.nodes:
        where = f"{node.op_type} {graph.label(node)}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"node {graph.label(node)} ({node.op_type}) is in domain '{node.domain}', which TensorRT "
                            f"does not run")
        if node.op_type in QDQ_OPS:
            problems += [f"{where}: {message}" for level, message in qdq_node_problems(node, graph) if level == "error"]
            if node.op_type == "DequantizeLinear":
                problems += _per_tensor_weights(node, graph)
    return problems


def _per_tensor_weights(dq: onnx.NodeProto, graph: GraphIndex) -> list[str]:
    """TensorRT accepts one scale for a convolution's weights; the int8 recipe promises one per output
    channel (onnxruntime quantizes Conv/ConvTranspose weights per channel; Gemm/MatMul may stay per tensor)."""
    weight = graph.const(graph.input(dq, 0))
    scale = graph.const(graph.input(dq, 1))
    axis = weight_axis(dq, graph)
    if weight is None or scale is None or axis is None or scale.size != 1 or weight.ndim <= axis[0] \
            or not axis[1].startswith(("Conv ", "ConvTranspose ")):
        return []
    channels = weight.shape[axis[0]]
    if channels <= 1:
        return []
    return [f"DequantizeLinear {graph.label(dq)}: weights of {axis[1]} have one scale; the int8 recipe wants one "
            f"per output channel ({channels})"]


def check_tensorrt_qdq(model, source: str = "model", require_qdq: bool = True) -> QuantSummary:
    """Raise an MkeError listing the broken rules; return the summary when the graph follows them."""
    problems = tensorrt_violations(model)
    s = summarize(model)
    if require_qdq and s.quantize_nodes == 0:
        problems.insert(0, "no QuantizeLinear/DequantizeLinear nodes: nothing is quantized")
    if s.qlinear_ops:
        problems.append(f"QOperator nodes {dict(s.qlinear_ops)}: TensorRT wants Q/DQ format")
    if problems:
        shown = "; ".join(problems[:6]) + (f"; … {len(problems) - 6} more" if len(problems) > 6 else "")
        raise MkeError(f"{source} does not follow TensorRT's explicit-quantization rules: {shown}")
    return s


def check_cpu_int8(model, source: str = "model") -> QuantSummary:
    """The int8-cpu recipe's promise: unsigned activations, signed weights."""
    s = summarize(model)
    if s.activation_types - {"uint8"}:
        raise MkeError(f"{source}: activations are quantized to {sorted(s.activation_types)}; "
                       f"ONNX Runtime's fast x86 kernels want uint8 activations")
    if s.weight_types - {"int8", "int32"}:
        raise MkeError(f"{source}: weights are {sorted(s.weight_types)}, expected int8 (and int32 biases)")
    return s


def qdq_node_problems(node: onnx.NodeProto, graph: GraphIndex):
    """(level, message) for each way a QuantizeLinear/DequantizeLinear `node` breaks TensorRT's rules
    (TensorRT 10.3 NvInfer.h, IQuantizeLayer/IDequantizeLayer): signed INT8 (or FP8/INT4) with zero
    point 0, build-time constant scales, per-channel scales only for weights and along their output
    channels, every QuantizeLinear followed by a DequantizeLinear. Level "error": the parser or
    builder refuses it. Used by quantize_int8 and by the readiness report alike."""
    op, x, scale_name, zp_name = node.op_type, graph.input(node, 0), graph.input(node, 1), graph.input(node, 2)
    # zero point: symmetric, signed
    if op == "DequantizeLinear" and graph.const_type(x) == 2:
        yield "error", "UINT8 weights: TensorRT dequantizes signed INT8 (or FP8/INT4) only; quantize weights as QInt8"
    if zp_name is None:
        zp_type = graph.attr(node, "output_dtype", 0) or (2 if op == "QuantizeLinear" else None)
        if zp_type == 2:
            yield "error", ("QuantizeLinear without a zero point quantizes to UINT8; TensorRT needs signed INT8 "
                            "with zero point 0 (symmetric)")
    elif not graph.is_constant(zp_name):
        yield "error", f"zero point '{zp_name}' must be a constant"
    else:
        zp_type, zp = graph.const_type(zp_name), graph.const(zp_name)
        if zp_type == 6 and op == "DequantizeLinear":
            yield "error", ("INT32 dequantization (a quantized bias, onnxruntime's default): TensorRT dequantizes "
                            "INT8, FP8 or INT4 only — quantize with extra_options QuantizeBias=False")
        elif zp_type not in QUANT_TYPES_OK:
            yield "error", (f"zero point type {TYPE_NAMES.get(zp_type, zp_type)}: TensorRT quantizes to signed INT8 "
                            f"(or FP8/INT4) only — quantize with QInt8 activations and weights (ActivationSymmetric, "
                            f"WeightSymmetric)")
        if zp is not None and np.any(zp.astype(np.float64) != 0):
            yield "error", (f"asymmetric quantization (zero point {np.unique(zp)[:4].tolist()}): TensorRT supports "
                            f"only symmetric quantization, zero point 0")
    # scale: a build-time constant; per-channel only for weights, on the output-channel axis
    scale = graph.const(scale_name)
    if scale is None:
        yield "error", f"scale '{scale_name}' must be a build-time constant"
        return
    if not np.all(scale > 0):
        yield "error", "scale has values ≤ 0; TensorRT's scales are positive"
    if scale.size <= 1:
        pass
    elif graph.weight_source(x) is None:
        yield "error", (f"per-channel scale ({scale.size} values) on an activation: TensorRT quantizes activations "
                        f"per tensor only (one scale)")
    elif op == "DequantizeLinear":
        expected = weight_axis(node, graph)
        weight = graph.const(graph.weight_source(x))
        rank = weight.ndim if weight is not None else graph.ranks.get(x, 4)
        axis = graph.attr(node, "axis", 1)
        axis = axis + rank if axis < 0 else axis
        if expected is not None and axis != expected[0]:
            yield "error", (f"per-channel weights quantized along axis {axis}; TensorRT needs the output-channel "
                            f"axis {expected[0]} for the weights of {expected[1]}")
        elif weight is not None and axis < weight.ndim and weight.shape[axis] != scale.size:
            yield "error", f"{scale.size} scales for {weight.shape[axis]} channels along axis {axis}"
    # pairs: Q → DQ, DQ ← Q or weights
    if op == "QuantizeLinear":
        out = node.output[0]
        bad = [c for c, _ in graph.consumers.get(out, []) if c.op_type != "DequantizeLinear"]
        if bad:
            yield "error", (f"its output feeds {', '.join(f'{c.op_type} {graph.label(c)!r}' for c in bad[:3])}: "
                            f"TensorRT needs every QuantizeLinear followed by a DequantizeLinear")
        if out in graph.graph_outputs:
            yield "error", "its INT8 output is a graph output: end the graph with DequantizeLinear"
        q_axis = graph.attr(node, "axis", 1)
        for c, _ in graph.consumers.get(out, []):
            if c.op_type == "DequantizeLinear" and scale.size > 1 and graph.attr(c, "axis", 1) != q_axis:
                yield "error", f"its axis {q_axis} differs from the axis of DequantizeLinear {graph.label(c)!r}"
    else:
        producer = graph.producer.get(x) if x else None
        if not graph.is_constant(x) and (producer is None or producer.op_type != "QuantizeLinear"):
            source = f"{producer.op_type} {graph.label(producer)!r}" if producer else "a graph input"
            yield "error", (f"its input '{x}' comes from {source}, not from a QuantizeLinear or weights: "
                            f"Q/DQ must come in pairs")


def weight_axis(dq: onnx.NodeProto, graph: GraphIndex) -> tuple[int, str] | None:
    """(axis, layer) the per-channel scales of these weights must use, from the layer that consumes them."""
    for consumer, index in graph.consumers.get(dq.output[0], []):
        label = f"{consumer.op_type} {graph.label(consumer)!r}"
        if consumer.op_type == "Conv" and index == 1:
            return 0, label
        if consumer.op_type == "ConvTranspose" and index == 1:
            return 1, label
        if consumer.op_type == "Gemm" and index == 1:
            return (0 if graph.attr(consumer, "transB", 0) else 1), label
        if consumer.op_type == "MatMul" and index == 1:
            rank = graph.ranks.get(dq.output[0], 2)
            return rank - 1, label
    return None
