"""Edits on a quantized Q/DQ graph that onnxruntime's quantizer does not make itself.

onnxruntime's `nodes_to_exclude` only stops a node from *asking* for quantization: a tensor that a
neighbour quantizes is rewired to its DequantizeLinear output for every consumer, the excluded node
included. Excluding a Relu between two quantized Convs then changes nothing, and an excluded Conv
still reads int8-rounded activations. `keep_in_float` gives excluded nodes their float inputs back,
so that "kept in FP32" means what it says — for TensorRT too, which takes its precisions from
where the Q/DQ pairs sit.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper


def constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return consts


def folded_activations(fp32: onnx.ModelProto, quant: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """{tensor: the FP32 Relu/Clip node} for tensors whose activation the quantizer folded away.

    With asymmetric activations onnxruntime removes a Relu (or Clip) after a quantized node: the
    QuantizeLinear's range clips instead, and the producer writes the activation's output name
    holding values from before the clipping.
    """
    fp32_producer = {o: n for n in fp32.graph.node for o in n.output}
    folded = {}
    for node in quant.graph.node:
        for out in node.output:
            original = fp32_producer.get(out)
            if original is not None and original.op_type != node.op_type and original.op_type in ("Relu", "Clip"):
                folded[out] = original
    return folded


def activation_fn(node: onnx.NodeProto, fp32: onnx.ModelProto) -> Callable[[np.ndarray], np.ndarray]:
    """numpy version of a folded Relu/Clip node."""
    if node.op_type == "Relu":
        return lambda x: np.maximum(x, 0.0)
    consts = constant_values(fp32.graph)
    bounds = [consts.get(name) if name else None for name in list(node.input[1:3]) + [""] * (3 - len(node.input))]
    lo = float(bounds[0]) if bounds[0] is not None else -np.inf
    hi = float(bounds[1]) if bounds[1] is not None else np.inf
    return lambda x: np.clip(x, lo, hi)


def keep_in_float(quant: onnx.ModelProto, nodes: Iterable[str], fp32: onnx.ModelProto) -> None:
    """Rewire the activation inputs of `nodes` from DequantizeLinear outputs to the float tensors
    before quantization (re-applying a folded Relu/Clip), then drop Q/DQ nodes nobody reads."""
    nodes = set(nodes)
    if not nodes:
        return
    graph = quant.graph
    consts = {t.name for t in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    producer = {o: n for n in graph.node for o in n.output}
    folded = folded_activations(fp32, quant)
    restored: dict[str, str] = {}
    new_nodes = []
    for node in graph.node:
        if node.name not in nodes:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in consts:
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue
            source = q.input[0]
            if source in folded:
                if source not in restored:
                    act = folded[source]
                    restored[source] = f"{source}_float"
                    new_nodes.append(helper.make_node(act.op_type, [source] + list(act.input[1:]), [restored[source]],
                                                      name=f"{act.name}_float"))
                    new_nodes[-1].attribute.extend(act.attribute)
                    for extra in act.input[1:]:
                        _copy_constant(fp32, quant, extra)
                source = restored[source]
            node.input[i] = source
    if new_nodes:
        _insert_after_producers(graph, new_nodes)
    drop_unused_qdq(quant)


def _copy_constant(src: onnx.ModelProto, dst: onnx.ModelProto, name: str) -> None:
    if not name or any(t.name == name for t in dst.graph.initializer) \
            or any(name in n.output for n in dst.graph.node):
        return
    for t in src.graph.initializer:
        if t.name == name:
            dst.graph.initializer.append(t)
            return
    for n in src.graph.node:
        if n.op_type == "Constant" and name in n.output:
            dst.graph.node.insert(0, n)
            return


def _insert_after_producers(graph: onnx.GraphProto, new_nodes: list[onnx.NodeProto]) -> None:
    """Keep the node list topologically sorted: each new node right after its input's producer."""
    for new in new_nodes:
        index = next((i for i, n in enumerate(graph.node) if new.input[0] in n.output), -1)
        graph.node.insert(index + 1, new)


def drop_unused_qdq(model: onnx.ModelProto) -> None:
    """Remove QuantizeLinear/DequantizeLinear nodes whose outputs nothing reads, and their constants."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input} | outputs
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
