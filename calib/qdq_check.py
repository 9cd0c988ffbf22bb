"""What an INT8 ONNX graph holds, and whether it follows TensorRT's rules for explicit quantization.

TensorRT builds INT8 from QuantizeLinear/DequantizeLinear pairs it can fuse into its kernels:
zero points must be 0 and int8 (symmetric), scales constant and positive, weights quantized per
output channel (axis 0 of a Conv kernel, axis 1 of a ConvTranspose kernel), and every node in the
standard ONNX domain. A graph that breaks a rule either fails to parse or silently runs in FP32.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx

from mke.calib.qdq_edit import constant_values
from mke.calib.samples import load_onnx
from mke.runtime.errors import MkeError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# weight input index → the axis that holds output channels, per consumer op
WEIGHT_CHANNEL_AXIS = {"Conv": 0, "ConvTranspose": 1}


@dataclass
class QuantSummary:
    quantize_nodes: int = 0
    dequantize_nodes: int = 0
    activation_types: set[str] = field(default_factory=set)   # dtypes of QuantizeLinear outputs
    weight_types: set[str] = field(default_factory=set)       # dtypes of constant DequantizeLinear inputs
    per_channel_weights: int = 0
    per_tensor_weights: int = 0
    qlinear_ops: Counter = field(default_factory=Counter)     # QOperator-format nodes (QLinearConv …)
    float_nodes: list[str] = field(default_factory=list)      # compute nodes none of whose inputs is dequantized


def _as_proto(model) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else load_onnx(model)


def summarize(model) -> QuantSummary:
    """Counts and types of the quantization in `model` (a path or ModelProto)."""
    graph = _as_proto(model).graph
    consts = constant_values(graph)
    s = QuantSummary()
    dq_outputs = set()
    for node in graph.node:
        if node.op_type == "QuantizeLinear":
            s.quantize_nodes += 1
            zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            s.activation_types.add(str(zp.dtype) if zp is not None else "uint8")
        elif node.op_type == "DequantizeLinear":
            s.dequantize_nodes += 1
            dq_outputs.add(node.output[0])
            if node.input[0] in consts:
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
    """Every place where `model` breaks TensorRT's explicit-quantization rules (empty: it follows them)."""
    graph = _as_proto(model).graph
    consts = constant_values(graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    problems = []
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"node {node.name} ({node.op_type}) is in domain '{node.domain}', which TensorRT does not run")
        if node.op_type not in QDQ_OPS:
            continue
        where = f"{node.op_type} {node.name}"
        zp_name = node.input[2] if len(node.input) > 2 else ""
        if not zp_name:
            problems.append(f"{where} has no zero point (it would default to uint8)")
        elif zp_name not in consts:
            problems.append(f"{where}: zero point {zp_name} is not a constant")
        else:
            zp = consts[zp_name]
            if zp.dtype != np.int8:
                problems.append(f"{where}: zero point is {zp.dtype}, TensorRT wants int8")
            if np.any(zp != 0):
                problems.append(f"{where}: zero point is not 0 (asymmetric)")
        scale = consts.get(node.input[1])
        if scale is None:
            problems.append(f"{where}: scale {node.input[1]} is not a constant")
        elif not np.all(scale > 0):
            problems.append(f"{where}: scale has values ≤ 0")
        if node.op_type == "QuantizeLinear":
            bad = [c.name for c in consumers.get(node.output[0], []) if c.op_type != "DequantizeLinear"]
            if bad:
                problems.append(f"{where} feeds {', '.join(bad)} directly; TensorRT wants each Q followed by a DQ")
            continue
        if node.input[0] not in consts:
            continue
        weight = consts[node.input[0]]
        for user in consumers.get(node.output[0], []):
            axis_want = WEIGHT_CHANNEL_AXIS.get(user.op_type)
            if axis_want is None or list(user.input).index(node.output[0]) != 1:
                continue
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            axis = axis % weight.ndim if weight.ndim else 0
            channels = weight.shape[axis_want] if weight.ndim > axis_want else 1
            if scale is None:
                continue
            if scale.size == 1 and channels > 1:
                problems.append(f"{where}: weights of {user.op_type} {user.name} have one scale; TensorRT wants one "
                                f"per output channel ({channels})")
            elif scale.size > 1 and (axis != axis_want or scale.size != channels):
                problems.append(f"{where}: weight scales of {user.op_type} {user.name} run along axis {axis} "
                                f"({scale.size}); the output channels are axis {axis_want} ({channels})")
    return problems


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
