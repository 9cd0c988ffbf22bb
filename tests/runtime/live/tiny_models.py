"""Tiny ONNX models carrying a real model spec, built with the onnx package (no torch), for mke-live tests."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mke.runtime.onnx_spec import SPEC_KEY
from mke.runtime.spec import InputSpec, ModelSpec, OutputSpec

SEG_CLASSES = ["floor", "wall", "table"]


def seg_spec(h: int, w: int, depth: bool = True) -> ModelSpec:
    inputs = [InputSpec("rgb", "rgb", [1, 3, h, w], preprocess={"kind": "rgb", "size": [h, w]})]
    if depth:
        inputs.append(InputSpec("depth", "depth", [1, 1, h, w],
                                preprocess={"kind": "depth", "encoding": "metric", "size": [h, w], "max_m": 7.0,
                                            "mean": 2.5, "std": 1.2}))
    return ModelSpec(task="rgbd", kind="segmentation", classes=SEG_CLASSES, colors=[[200, 50, 50], [50, 200, 50],
                                                                                   [50, 50, 200]],
                     inputs=inputs, outputs=[OutputSpec("logits", [1, 3, h, w])], provenance={"test": True})


def write_model(path, spec: ModelSpec, nodes, initializers):
    graph_inputs = [helper.make_tensor_value_info(i.name, TensorProto.FLOAT, i.shape) for i in spec.inputs]
    out = spec.outputs[0]
    graph = helper.make_graph(nodes, "tiny", graph_inputs,
                              [helper.make_tensor_value_info(out.name, TensorProto.FLOAT, out.shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, spec.to_json()
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def seg_model(path, h: int = 48, w: int = 64, depth: bool = True):
    """rgb (+ depth) → a 1×1 convolution → 3 class logits per pixel. Class 0 wins where depth is near,
    class 1 where it is far (depth channel weights), class 2 follows the blue channel."""
    spec = seg_spec(h, w, depth)
    channels = 4 if depth else 3
    weight = np.zeros((3, channels, 1, 1), np.float32)
    weight[2, 2] = 1.0
    if depth:
        weight[0, 3], weight[1, 3] = -2.0, 2.0
    nodes = [helper.make_node("Concat", [i.name for i in spec.inputs], ["x"], axis=1)] if depth else []
    nodes.append(helper.make_node("Conv", ["x" if depth else "rgb", "w"], ["logits"]))
    return write_model(path, spec, nodes, [numpy_helper.from_array(weight, "w")])


def av_model(path, rate: int = 16000, seconds: float = 0.5, h: int = 32, w: int = 32):
    """rgb + mono audio → 2 classes: "loud" scores the audio's mean square, "red" the red channel's mean."""
    n = int(rate * seconds)
    spec = ModelSpec(task="av", kind="classification", classes=["loud", "red"], colors=[[255, 0, 0], [0, 0, 255]],
                     inputs=[InputSpec("rgb", "rgb", [1, 3, h, w], preprocess={"kind": "rgb", "size": [h, w],
                                                                              "mean": [0, 0, 0], "std": [1, 1, 1]}),
                             InputSpec("audio", "audio", [1, 1, n], layout="NCT",
                                       preprocess={"kind": "audio", "sample_rate": rate, "seconds": seconds})],
                     outputs=[OutputSpec("logits", [1, 2])])
    nodes = [helper.make_node("Mul", ["audio", "audio"], ["sq"]),
             helper.make_node("ReduceMean", ["sq", "axes_a"], ["power"], keepdims=0),       # (1,)
             helper.make_node("Mul", ["power", "gain"], ["loud"]),
             helper.make_node("ReduceMean", ["rgb", "axes_i"], ["chan"], keepdims=0),       # (1, 3)
             helper.make_node("Slice", ["chan", "s0", "s1", "s_ax"], ["red"]),               # (1, 1)
             helper.make_node("Unsqueeze", ["loud", "u_ax"], ["loud2"]),                     # (1, 1)
             helper.make_node("Concat", ["loud2", "red"], ["logits"], axis=1)]
    inits = [numpy_helper.from_array(np.array([1, 2], np.int64), "axes_a"),
             numpy_helper.from_array(np.array([2, 3], np.int64), "axes_i"),
             numpy_helper.from_array(np.array([100.0], np.float32), "gain"),
             numpy_helper.from_array(np.array([0], np.int64), "s0"),
             numpy_helper.from_array(np.array([1], np.int64), "s1"),
             numpy_helper.from_array(np.array([1], np.int64), "s_ax"),
             numpy_helper.from_array(np.array([1], np.int64), "u_ax")]
    return write_model(path, spec, nodes, inits)
