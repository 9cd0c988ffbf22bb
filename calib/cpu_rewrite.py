"""Graph rewrites that let ONNX Runtime's CPU provider keep more of an `int8-cpu` model in uint8.

ONNX Runtime turns a Q/DQ group into an integer kernel only for the ops it has one for. Two ops of
the ESANet-style students fall through and cost a DequantizeLinear before and a QuantizeLinear after
them, every frame:

- `ReduceMean` over all spatial axes (how torch exports `AdaptiveAvgPool2d(1)`, the squeeze in
  every squeeze-excitation block) has no quantized kernel; the same operation spelled
  `GlobalAveragePool` becomes com.microsoft's QLinearGlobalAveragePool. `spatial_mean_to_global_pool`
  renames it before quantization (same node name, so exclusion lists and rankings still apply).
- linear `Resize` (the decoder's bilinear upsampling) also stays in float between a DequantizeLinear
  and a QuantizeLinear: ONNX Runtime drops that pair only around a nearest Resize. Running the
  Resize on the uint8 tensor instead (exact up to rounding: linear weights are convex) was measured
  and is *slower* — ONNX Runtime's uint8 Resize took 0.69 ms where float Resize plus its Q/DQ took
  0.54 ms on the 120×160 RGB-D student —, so that rewrite is not made (docs/calibration.md).

Driven by op types and graph structure only, and not used for the TensorRT recipe, whose graph
TensorRT reads as it is.
"""
from __future__ import annotations

import onnx
from onnx import helper

from mke.calib.qdq_edit import constant_values


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference only helps here: without ranks nothing is rewritten
        inferred = model
    ranks = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            ranks[value.name] = len(value.type.tensor_type.shape.dim)
    return ranks


def spatial_mean_to_global_pool(model: onnx.ModelProto) -> list[str]:
    """Replace every ReduceMean over all spatial axes of an N×C×… tensor, keeping dims, by
    GlobalAveragePool (same name, input and output). Returns the names of the nodes replaced."""
    graph = model.graph
    consts = constant_values(graph)
    ranks = _ranks(model)
    replaced = []
    for index, node in enumerate(graph.node):
        if node.op_type != "ReduceMean" or node.domain not in ("", "ai.onnx") or not _attr(node, "keepdims", 1):
            continue
        rank = ranks.get(node.input[0])
        if rank is None or rank < 3:
            continue
        axes = _attr(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            if node.input[1] not in consts:
                continue  # axes computed at run time
            axes = consts[node.input[1]].reshape(-1).tolist()
        if axes is None:
            continue  # all axes (or none, with noop_with_empty_axes): not a spatial mean
        if sorted(int(a) % rank for a in axes) != list(range(2, rank)):
            continue
        graph.node[index].CopyFrom(helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output),
                                                    name=node.name))
        replaced.append(node.name)
    return replaced
