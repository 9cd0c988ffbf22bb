"""Which quantized nodes hurt most: a ranking from one FP32 run and one Q/DQ run, no metric needed.

For every node that reads dequantized tensors, compare the FP32 graph and the Q/DQ graph on a few
calibration samples: the relative error of the node's output, minus the largest relative error
already present on its float inputs before they were quantized. What is left is the error the node
itself adds — its input and weight quantization — which is exactly what keeping it in FP32
(`nodes_to_exclude`) takes away. Both graphs run unoptimized, so the Q/DQ graph computes the
simulated ("fake") quantization the integer kernels approximate.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import onnx

from mke.calib.qdq_edit import activation_fn, folded_activations
from mke.calib.reader import NpzCalibrationReader, as_samples
from mke.calib.samples import load_onnx
from mke.runtime.errors import MkeError
from mke.runtime.onnxrt import ort_session

_SKIP = ("QuantizeLinear", "DequantizeLinear", "Constant")


@dataclass(frozen=True)
class NodeSensitivity:
    name: str
    op_type: str
    score: float          # output error minus input error: what this node's quantization adds
    output_error: float   # ‖q − f‖² / ‖f‖² of its output over the probe samples
    input_error: float    # the same, largest over its float inputs before quantization


def quantized_nodes(model: onnx.ModelProto) -> dict[str, tuple[list[str], list[str]]]:
    """{node name: (float source tensors of its inputs, its outputs)} for every node that reads a
    dequantized tensor; a source is the tensor a QuantizeLinear quantized, or the input itself."""
    graph = model.graph
    constants = {t.name for t in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    producer = {out: node for node in graph.node for out in node.output}
    nodes = {}
    for node in graph.node:
        if node.op_type in _SKIP:
            continue
        sources, quantized = [], False
        for name in node.input:
            if not name or name in constants:
                continue
            dq = producer.get(name)
            if dq is not None and dq.op_type == "DequantizeLinear":
                quantized = True
                if dq.input[0] in constants:
                    continue  # a weight or bias: its error is the node's own
                q = producer.get(dq.input[0])
                if q is not None and q.op_type == "QuantizeLinear":
                    sources.append(q.input[0])
            else:
                sources.append(name)
        if quantized:
            nodes[node.name] = (sources, list(node.output))
    return nodes


def _fp32_names(quant: onnx.ModelProto, fp32_tensors: set[str]) -> dict[str, str]:
    """Quantized-graph tensor → its FP32 counterpart. Names match, except where the quantizer renamed
    a graph output to put a Q/DQ pair behind it (`logits` → `logits_QuantizeLinear_Input`)."""
    alias = {t: t for n in quant.graph.node for t in n.output if t in fp32_tensors}
    alias.update({i.name: i.name for i in quant.graph.input})
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in quant.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in quant.graph.node:
        for t in node.output:
            if t in alias:
                continue
            for q in consumers.get(t, []):
                if q.op_type != "QuantizeLinear":
                    continue
                for dq in consumers.get(q.output[0], []):
                    if dq.op_type == "DequantizeLinear" and dq.output[0] in fp32_tensors:
                        alias[t] = dq.output[0]
    return alias


def _run_with_outputs(model: onnx.ModelProto, names: list[str], batches: list[dict]) -> dict[str, list[np.ndarray]]:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in model.graph.output}
    for name in names:
        if name not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort_session(model.SerializeToString(), optimize=False,
                       name=f"graph '{model.graph.name}' (probed tensors as outputs)")
    values: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feed in batches:
        for name, value in zip(names, sess.run(names, feed)):
            values[name].append(np.asarray(value, np.float64))
    return values


def rank_nodes(fp32_model: str | os.PathLike, quantized_model: str | os.PathLike,
               samples: Mapping[str, np.ndarray] | str | os.PathLike, max_samples: int = 8) -> list[NodeSensitivity]:
    """Quantized nodes, most sensitive first. Both models must come from the same (pre-processed)
    graph, so that node and tensor names match — as `quantize` keeps them."""
    fp32 = load_onnx(fp32_model)
    quant = load_onnx(quantized_model)
    nodes = quantized_nodes(quant)
    if not nodes:
        raise MkeError(f"{quantized_model}: no node reads a DequantizeLinear output; ranking needs a Q/DQ model")
    fp32_tensors = {o for n in fp32.graph.node for o in n.output} | {i.name for i in fp32.graph.input}
    graph_inputs = {i.name for i in fp32.graph.input}
    alias = _fp32_names(quant, fp32_tensors)
    wanted = {t for srcs, outs in nodes.values() for t in srcs + outs}
    missing = sorted(t for t in wanted if t not in alias)
    if missing:
        raise MkeError(f"{quantized_model} was not quantized from {fp32_model}: tensors {', '.join(missing[:3])} "
                       f"are not in the FP32 graph (quantize the pre-processed model)")
    reader = NpzCalibrationReader(as_samples(samples, fp32), fp32, limit=max_samples)
    batches = list(reader.batches())
    wanted -= graph_inputs
    ref = _run_with_outputs(fp32, sorted({alias[t] for t in wanted}), batches)
    got = _run_with_outputs(quant, sorted(wanted), batches)
    folded = {t: activation_fn(node, fp32) for t, node in folded_activations(fp32, quant).items()}

    def rel_error(name: str) -> float:
        if name in graph_inputs:
            return 0.0
        fix = folded.get(name, lambda x: x)
        num = sum(float(np.sum((fix(q) - f) ** 2)) for q, f in zip(got[name], ref[alias[name]]))
        den = sum(float(np.sum(f ** 2)) + 1e-8 * f.size for f in ref[alias[name]])
        return num / den

    op_types = {n.name: n.op_type for n in quant.graph.node}
    ranked = []
    for name, (sources, outputs) in nodes.items():
        out_err = max(rel_error(t) for t in outputs)
        in_err = max((rel_error(t) for t in sources), default=0.0)
        ranked.append(NodeSensitivity(name, op_types[name], out_err - in_err, out_err, in_err))
    ranked.sort(key=lambda s: s.score, reverse=True)
    return ranked
