"""The int8-cpu recipe on a student exported the way mke-export exports it (torch.onnx, dynamo): its
squeeze-excitation means run in uint8 in ONNX Runtime, the logits leave the graph in float, and the
TensorRT recipe's graph is left as it was."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mke.calib.cpu_rewrite import spatial_mean_to_global_pool
from mke.calib.qdq_check import summarize, tensorrt_violations
from mke.calib.quantize import (output_resizes, prepare_for_quantization, quantization_record, quantize_int8,
                                quantize_int8_cpu)
from mke.calib.samples import save_calibration, select_samples
from mke.calib.sensitivity import quantized_nodes
from scenes import smooth_frames

H, W = 48, 64


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from mke.export.onnx_export import torch_to_onnx
    from mke.runtime.spec import InputSpec, ModelSpec, OutputSpec
    from mke.train.models.segmentation import SegmentationNet

    torch.manual_seed(0)
    net = SegmentationNet({"rgb": 3, "depth": 1}, 7, encoder="tiny", decoder_width=16)
    spec = ModelSpec("rgbd", "segmentation", [f"c{i}" for i in range(7)], [[i, i, i] for i in range(7)],
                     [InputSpec("rgb", "rgb", [1, 3, H, W]), InputSpec("depth", "depth", [1, 1, H, W])],
                     [OutputSpec("logits", [1, 7, H, W])])
    folder = tmp_path_factory.mktemp("student")
    path = torch_to_onnx(net, spec, folder / "student.onnx")
    calib = save_calibration(folder / "calib.npz", select_samples(smooth_frames(16, 1), n=16, seed=0))
    return path, calib


@pytest.fixture(scope="module")
def cpu_model(student):
    path, calib = student
    return quantize_int8_cpu(path, calib, path.with_suffix(".int8-cpu.onnx"))


def ort_graph(path, tmp_path):
    """The graph ONNX Runtime's CPU provider runs after its Q/DQ fusions (before layout changes)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return onnx.load(str(tmp_path / "optimized.onnx")).graph


def mean_model(axes, keepdims=1, rank=4, opset=18):
    shape = [1, 3, 5, 6, 2][:rank]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
    inits, attrs, node_inputs = [], {"keepdims": keepdims}, ["x"]
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
        node_inputs.append("axes")
    else:
        attrs["axes"] = axes
    node = helper.make_node("ReduceMean", node_inputs, ["y"], name="squeeze", **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("axes, rank, opset", [([2, 3], 4, 18), ([-1, -2], 4, 18), ([2, 3], 4, 13), ([2, 3, 4], 5, 18)])
def test_a_mean_over_every_spatial_axis_becomes_global_average_pooling(axes, rank, opset, tmp_path):
    model = mean_model(axes, rank=rank, opset=opset)
    x = np.random.default_rng(0).standard_normal([1, 3, 5, 6, 2][:rank]).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert spatial_mean_to_global_pool(model) == ["squeeze"]
    assert [(n.op_type, n.name, list(n.input), list(n.output)) for n in model.graph.node] == \
        [("GlobalAveragePool", "squeeze", ["x"], ["y"])]
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axes, keepdims", [([1], 1), ([2], 1), ([1, 2, 3], 1), ([2, 3], 0)])
def test_other_means_are_left_alone(axes, keepdims):
    model = mean_model(axes, keepdims=keepdims)
    assert spatial_mean_to_global_pool(model) == []
    assert [n.op_type for n in model.graph.node] == ["ReduceMean"]


def test_int8_cpu_runs_the_squeeze_excitation_means_in_uint8(student, cpu_model, tmp_path):
    path, _ = student
    means = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "ReduceMean"]
    assert len(means) == 8  # two SE blocks per stage, as torch.onnx exports AdaptiveAvgPool2d(1)
    graph = ort_graph(cpu_model, tmp_path)
    ops = [n.op_type for n in graph.node]
    assert "ReduceMean" not in ops and ops.count("QLinearGlobalAveragePool") == 8
    # float left between Q/DQ: the decoder's three linear resizes and the float head before the logits
    weights = {t.name for t in graph.initializer}
    readers = {}
    for n in graph.node:
        for name in n.input:
            readers.setdefault(name, []).append(n.op_type)
    dequantized = [r for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in weights
                   for r in readers[n.output[0]]]
    assert sorted(dequantized) == ["Conv", "Resize", "Resize", "Resize"]
    assert ops.count("QuantizeLinear") == 2 + 3  # the two inputs, the three resizes' outputs


def test_int8_cpu_leaves_the_logits_upsampling_in_float(student, cpu_model):
    model = onnx.load(str(cpu_model))
    producer = {o: n for n in model.graph.node for o in n.output}
    last = producer["logits"]
    assert last.op_type == "Resize" and producer[last.input[0]].op_type != "QuantizeLinear"
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == "logits" for n in model.graph.node)
    assert quantization_record(cpu_model)["float_by_recipe"] == [last.name] == output_resizes(model.graph)
    assert quantization_record(cpu_model)["nodes_to_exclude"] == []
    assert summarize(cpu_model).activation_types == {"uint8"}


def test_int8_cpu_agrees_with_fp32(student, cpu_model):
    path, _ = student
    fp32 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(cpu_model), providers=["CPUExecutionProvider"])
    test = smooth_frames(4, 9)
    agree = [np.mean(fp32.run(None, f)[0].argmax(1) == int8.run(None, f)[0].argmax(1))
             for f in ({k: v[i:i + 1] for k, v in test.items()} for i in range(4))]
    assert np.mean(agree) > 0.9, agree


def test_the_tensorrt_recipe_keeps_the_graph_as_exported(student, tmp_path):
    path, calib = student
    out = quantize_int8(path, calib, tmp_path / "student.int8.onnx")
    model = onnx.load(str(out))
    assert sum(n.op_type == "ReduceMean" for n in model.graph.node) == 8
    assert not any(n.op_type == "GlobalAveragePool" for n in model.graph.node)
    assert tensorrt_violations(model) == [] and quantization_record(out)["float_by_recipe"] == []


def test_a_rewritten_mean_can_still_be_kept_in_float_by_its_name(student, tmp_path):
    path, calib = student
    pre = prepare_for_quantization(path, tmp_path / "pre.onnx")
    mean = next(n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "ReduceMean")
    out = quantize_int8_cpu(pre, calib, tmp_path / "partial.onnx", nodes_to_exclude=[mean])
    model = onnx.load(str(out))
    node = next(n for n in model.graph.node if n.name == mean)
    assert node.op_type == "GlobalAveragePool" and mean not in quantized_nodes(model)
    assert quantization_record(out)["nodes_to_exclude"] == [mean]
