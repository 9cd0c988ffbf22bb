"""An ONNX graph indexed for rule checks: producers, consumers, constants, shapes and attributes.

One index serves every check that reads a graph node by node — TensorRT's explicit-quantization
rules (`mke.calib.qdq_check`) and the TensorRT/DLA readiness report (`mke.export.trt_readiness`).
Nodes of subgraphs (If, Loop, Scan bodies) are indexed too; `in_subgraph` tells them apart.
Torch-free: it needs only onnx and numpy.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


class GraphIndex:
    """`model` (an onnx.ModelProto) with what rule checks ask of it, computed once."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:  # shape inference is a help here, not a requirement
            inferred = model
        self.ranks: dict[str, int] = {}
        self.shapes: dict[str, list[int]] = {}
        for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
                dims = value.type.tensor_type.shape.dim
                self.ranks[value.name] = len(dims)
                self.shapes[value.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
        self.initializers = {}
        self.nodes, self.producer, self.consumers = [], {}, {}
        self._labels: dict[int, str] = {}
        self._depth: dict[int, int] = {}
        self.graph_outputs = {o.name for o in model.graph.output}
        self._collect(model.graph, depth=0)
        self._static: dict[str, bool] = {}

    def _collect(self, graph, depth: int) -> None:
        for init in graph.initializer:
            self.initializers[init.name] = init
        for node in graph.node:
            self.nodes.append(node)
            self._labels[id(node)] = node.name or f"<{node.op_type} → {node.output[0] if node.output else '?'}>"
            self._depth[id(node)] = depth
            for out in node.output:
                if out:
                    self.producer[out] = node
            for i, name in enumerate(node.input):
                if name:
                    self.consumers.setdefault(name, []).append((node, i))
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    self._collect(attr.g, depth + 1)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for sub in attr.graphs:
                        self._collect(sub, depth + 1)

    def label(self, node) -> str:
        return self._labels[id(node)]

    def in_subgraph(self, node) -> bool:
        return self._depth[id(node)] > 0

    def attr(self, node, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                value = onnx.helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def input(self, node, index: int) -> str | None:
        return node.input[index] if len(node.input) > index and node.input[index] else None

    def is_constant(self, name: str | None) -> bool:
        if name is None:
            return False
        if name in self.initializers:
            return True
        node = self.producer.get(name)
        return node is not None and node.op_type == "Constant"

    def const(self, name: str | None):
        """The value of an initializer or Constant output, else None."""
        if name is None:
            return None
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is None or node.op_type != "Constant":
            return None
        for a in node.attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
            if a.name in ("value_float", "value_int", "value_floats", "value_ints"):
                return np.asarray(onnx.helper.get_attribute_value(a))
        return None

    def const_type(self, name: str | None) -> int | None:
        """onnx.TensorProto data type of a constant, else None."""
        if name in self.initializers:
            return self.initializers[name].data_type
        node = self.producer.get(name) if name else None
        if node is not None and node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return a.t.data_type
        return None

    def is_static(self, name: str) -> bool:
        """Known at build time: a constant, a shape, or computed only from those (shape arithmetic)."""
        if name in self._static:
            return self._static[name]
        self._static[name] = False  # guards against cycles through Loop bodies
        node = self.producer.get(name)
        if self.is_constant(name):
            result = True
        elif node is None:
            result = False
        elif node.op_type in ("Shape", "Size"):
            result = True
        else:
            inputs = [i for i in node.input if i]
            result = bool(inputs) and all(self.is_static(i) for i in inputs)
        self._static[name] = result
        return result

    def weight_source(self, name: str | None) -> str | None:
        """The initializer behind a tensor, looking through DequantizeLinear/QuantizeLinear/Identity."""
        seen = 0
        while name is not None and seen < 4:
            if self.is_constant(name):
                return name
            node = self.producer.get(name)
            if node is None or node.op_type not in ("DequantizeLinear", "QuantizeLinear", "Identity"):
                return None
            name, seen = self.input(node, 0), seen + 1
        return None
