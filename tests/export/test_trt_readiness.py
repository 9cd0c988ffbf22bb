"""TensorRT-readiness without a GPU: real ONNX files, exported from our model or built with onnx.helper."""
import json
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the readiness check reads ONNX with the onnx package (extra: export)")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mke.export.trt_readiness import (OPSET_MAX, OPSET_MIN, SUPPORTED_OPS, UNSUPPORTED_OPS,  # noqa: E402
                                      check_model, check_onnx)
from mke.runtime.errors import MkeError  # noqa: E402


@pytest.fixture(scope="module")
def segmentation_onnx(tmp_path_factory):
    """Our RGB-D student (tiny encoder) exported the way TorchScript export writes it, at 48×64."""
    torch = pytest.importorskip("torch", reason="exporting the model needs torch (extra: train)")
    from mke.train.models.segmentation import SegmentationNet

    class Positional(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, rgb, depth):
            return self.model(rgb=rgb, depth=depth)

    torch.manual_seed(0)
    model = Positional(SegmentationNet({"rgb": 3, "depth": 1}, 7, "tiny")).eval()
    path = tmp_path_factory.mktemp("onnx") / "student.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter announces its retirement
        torch.onnx.export(model, (torch.zeros(1, 3, 48, 64), torch.zeros(1, 1, 48, 64)), str(path),
                          input_names=["rgb", "depth"], output_names=["logits"], opset_version=18, dynamo=False)
    return path


def test_segmentation_student_is_ready_for_tensorrt(segmentation_onnx):
    report = check_onnx(segmentation_onnx)
    assert report.ok and report.errors == [] and report.warnings == []
    assert report.opset == 18
    assert report.computes_in == "fp32" and report.precision is None and report.trt11_blockers == []


def test_segmentation_student_lists_its_dla_fallbacks(segmentation_onnx):
    report = check_onnx(segmentation_onnx, dla=True)
    assert report.ok
    fallbacks = report.dla_fallbacks
    assert {f.op_type for f in fallbacks} == {"GlobalAveragePool", "Resize"}
    assert sum(f.op_type == "GlobalAveragePool" for f in fallbacks) == 8  # SE blocks: 2 per stage, 4 stages
    assert sum(f.op_type == "Resize" for f in fallbacks) == 4  # bilinear, to a size taken from the skip connection
    assert all(f.level == "warning" and f.node for f in fallbacks)
    resize = next(f for f in fallbacks if f.op_type == "Resize")
    assert "scales" in resize.message
    assert "/model/fusions.0/se_rgb/fc/fc.0/GlobalAveragePool" in {f.node for f in fallbacks}


def test_report_renders_as_markdown_and_json(segmentation_onnx):
    report = check_onnx(segmentation_onnx, dla=True)
    text = report.to_markdown()
    assert text.startswith("# TensorRT readiness: student.onnx")
    assert "ready for TensorRT 10 and 11" in text
    assert "| warning | dla-fallback | /model/decoder/Resize | Resize |" in text
    assert "strongly typed it builds as fp32" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["ready_for_tensorrt_11"] is True
    assert data["counts"]["warning"] == 12 + 1  # the 12 layer fallbacks, and the FP32 graph itself (dla-precision)
    assert data["sources"]["dla"].startswith("NVIDIA/TensorRT include/NvInfer.h")
    assert "tensorrt-10x-to-11x" in data["sources"]["tensorrt11"]


def test_tensorrt_style_int8_qdq_passes_and_onnxruntime_default_fails(segmentation_onnx, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Samples(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.it = iter([{"rgb": rng.random((1, 3, 48, 64), np.float32),
                             "depth": rng.random((1, 1, 48, 64), np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.it, None)

    symmetric = tmp_path / "student.int8.onnx"
    quantize_static(str(segmentation_onnx), str(symmetric), Samples(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    report = check_onnx(symmetric)
    assert report.ok, report.to_markdown()
    assert any(f.rule == "qdq" and "build with precision int8" in f.message for f in report.findings)

    unsigned = tmp_path / "student.uint8.onnx"
    quantize_static(str(segmentation_onnx), str(unsigned), Samples(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8)
    report = check_onnx(unsigned)
    assert not report.ok
    messages = " ".join(f.message for f in report.errors)
    assert "UINT8" in messages and "INT32 dequantization" in messages


# --- crafted graphs --------------------------------------------------------------------------------------------

def model(nodes, inputs, outputs, initializers=(), opset=18, value_info=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers), value_info=list(value_info))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def tensor(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


X = tensor("x", [1, 4, 8, 8])
Y = tensor("y", [1, 4, 8, 8])


def save(tmp_path, proto, name="m.onnx"):
    onnx.checker.check_model(proto)
    path = tmp_path / name
    onnx.save(proto, str(path))
    return path


def findings_for(report, node):
    return [f for f in report.findings if f.node == node]


def test_unsupported_operator_is_an_error_with_the_node_name(tmp_path):
    proto = model([helper.make_node("Unique", ["x"], ["y"], name="dedupe")], [tensor("x", [5])], [tensor("y", [-1])])
    report = check_onnx(save(tmp_path, proto))
    [finding] = findings_for(report, "dedupe")
    assert (finding.level, finding.rule, finding.op_type) == ("error", "unsupported-op", "Unique")
    assert "not supported by TensorRT 10" in finding.message
    assert not report.ok


def test_custom_domain_operator_needs_a_plugin(tmp_path):
    node = helper.make_node("FusedConv", ["x"], ["y"], name="fused", domain="com.microsoft")
    proto = model([node], [X], [Y])
    proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    [finding] = findings_for(check_model(proto), "fused")
    assert finding.level == "error" and "plugin" in finding.message


def test_op_from_a_later_tensorrt_release(tmp_path):
    node = helper.make_node("HannWindow", ["n"], ["w"], name="window")
    proto = model([node], [tensor("n", [], TensorProto.INT64)], [tensor("w", [-1])])
    [finding] = findings_for(check_model(proto), "window")
    assert finding.level == "error" and "TensorRT 10.4" in finding.message


def test_if_is_flagged_as_data_dependent_control_flow(tmp_path):
    then_graph = helper.make_graph([helper.make_node("Relu", ["x"], ["then_out"], name="then_relu")], "then", [],
                                   [tensor("then_out", [1, 4, 8, 8])])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["else_out"], name="else_neg")], "else", [],
                                   [tensor("else_out", [1, 4, 8, 8])])
    branch = helper.make_node("If", ["cond"], ["y"], name="pick_branch", then_branch=then_graph, else_branch=else_graph)
    proto = model([branch], [X, tensor("cond", [], TensorProto.BOOL)], [Y])
    report = check_onnx(save(tmp_path, proto), dla=True)
    [finding] = [f for f in findings_for(report, "pick_branch") if f.rule == "control-flow"]
    assert (finding.level, finding.op_type) == ("warning", "If")
    assert "never DLA" in finding.message
    assert [f.node for f in report.dla_fallbacks] == ["pick_branch"]  # its branches go with it
    assert report.ok  # TensorRT builds it, as a conditional layer


def test_if_branches_with_the_same_output_name_are_an_error():
    out = tensor("out", [1, 4, 8, 8])
    then_graph = helper.make_graph([helper.make_node("Relu", ["x"], ["out"])], "then", [], [out])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["out"])], "else", [], [out])
    branch = helper.make_node("If", ["cond"], ["y"], name="same_names", then_branch=then_graph, else_branch=else_graph)
    report = check_model(model([branch], [X, tensor("cond", [], TensorProto.BOOL)], [Y]))
    assert any(f.level == "error" and "name their outputs differently" in f.message
               for f in findings_for(report, "same_names"))


def qdq_model(zero_point, zp_type, scale=np.float32(0.05), axis=None, with_dq=True):
    inits = [numpy_helper.from_array(np.asarray(scale, np.float32), "scale"),
             helper.make_tensor("zp", zp_type, np.shape(zero_point), np.ravel(zero_point).tolist())]
    kwargs = {"axis": axis} if axis is not None else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["xq"], name="q_in", **kwargs)]
    if with_dq:
        nodes.append(helper.make_node("DequantizeLinear", ["xq", "scale", "zp"], ["y"], name="dq_in", **kwargs))
        return model(nodes, [X], [Y], inits)
    return model(nodes, [X], [tensor("xq", [1, 4, 8, 8], zp_type)], inits)


def test_asymmetric_uint8_quantize_linear_is_an_error(tmp_path):
    report = check_onnx(save(tmp_path, qdq_model(128, TensorProto.UINT8)))
    messages = [f.message for f in findings_for(report, "q_in") if f.level == "error"]
    assert any("UINT8" in m and "signed INT8" in m for m in messages)
    assert any("asymmetric" in m and "zero point [128]" in m for m in messages)
    assert findings_for(report, "q_in")[0].op_type == "QuantizeLinear"


def test_asymmetric_int8_is_an_error_symmetric_int8_is_fine():
    assert any("asymmetric" in f.message for f in check_model(qdq_model(-3, TensorProto.INT8)).errors)
    assert check_model(qdq_model(0, TensorProto.INT8)).ok


def test_quantize_linear_without_a_dequantize_is_an_error():
    report = check_model(qdq_model(0, TensorProto.INT8, with_dq=False))
    assert any("graph output" in f.message for f in findings_for(report, "q_in"))


def test_per_channel_scales_on_activations_are_an_error():
    report = check_model(qdq_model(np.zeros(4, np.int8), TensorProto.INT8, scale=np.full(4, 0.1), axis=1))
    assert any("activation" in f.message and "per tensor" in f.message for f in findings_for(report, "q_in"))


def conv_with_quantized_weights(axis):
    weights = np.ones((8, 4, 3, 3), np.int8)
    inits = [numpy_helper.from_array(weights, "w_q"), numpy_helper.from_array(np.full(8 if axis == 0 else 4, 0.01,
                                                                                        np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(8 if axis == 0 else 4, np.int8), "w_zp"),
             numpy_helper.from_array(np.float32(0.05), "a_scale"), numpy_helper.from_array(np.int8(0), "a_zp")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "a_scale", "a_zp"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "a_scale", "a_zp"], ["xd"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], name="dq_w", axis=axis),
             helper.make_node("Conv", ["xd", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    return model(nodes, [X], [tensor("y", [1, 8, 8, 8])], inits)


def test_per_channel_weights_on_the_output_channel_axis_pass():
    report = check_model(conv_with_quantized_weights(axis=0))
    assert report.ok, report.to_markdown()


def test_per_channel_weights_on_the_wrong_axis_are_an_error():
    report = check_model(conv_with_quantized_weights(axis=1))
    [finding] = [f for f in findings_for(report, "dq_w") if f.level == "error"]
    assert "axis 1" in finding.message and "output-channel axis 0" in finding.message and "conv" in finding.message


def test_dequantize_without_quantize_is_an_error():
    nodes = [helper.make_node("DequantizeLinear", ["xi", "scale"], ["y"], name="lonely_dq")]
    proto = model(nodes, [tensor("xi", [1, 4, 8, 8], TensorProto.INT8)], [Y],
                  [numpy_helper.from_array(np.float32(0.1), "scale")])
    assert any("pairs" in f.message for f in findings_for(check_model(proto), "lonely_dq"))


@pytest.mark.parametrize("opset, word", [(OPSET_MAX + 1, "newer"), (OPSET_MIN - 1, "older")])
def test_opset_outside_tensorrt_10s_range(tmp_path, opset, word):
    proto = model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [X], [Y], opset=opset)
    report = check_onnx(save(tmp_path, proto))
    [finding] = [f for f in report.findings if f.rule == "opset"]
    assert finding.level == "error" and f"opset {opset} is {word}" in finding.message
    assert f"{OPSET_MIN} to {OPSET_MAX}" in finding.message


def test_computed_reduce_axes_are_an_error():
    nodes = [helper.make_node("Shape", ["x"], ["shape"], name="shape"),
             helper.make_node("Slice", ["shape", "one", "two"], ["axes"], name="pick_axis"),
             helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean")]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([2], np.int64), "two")]
    report = check_model(model(nodes, [X], [tensor("y", None)], inits))
    [finding] = findings_for(report, "mean")
    assert finding.level == "error" and "`axes` input must be an initializer" in finding.message


def test_resize_modes_tensorrt_does_not_document():
    roi, scales = numpy_helper.from_array(np.zeros(0, np.float32), "roi"), \
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="up", mode="linear",
                            coordinate_transformation_mode="half_pixel_symmetric")
    report = check_model(model([node], [X], [tensor("y", [1, 4, 16, 16])], [roi, scales], opset=19))
    assert any(f.level == "error" and "half_pixel_symmetric" in f.message for f in findings_for(report, "up"))


def test_dynamic_batch_needs_a_profile():
    proto = model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [tensor("x", ["N", 4, 8, 8])],
                  [tensor("y", ["N", 4, 8, 8])])
    [warning] = [f for f in check_model(proto).findings if f.rule == "dynamic-shape"]
    assert warning.level == "warning" and "batch=(min, opt, max)" in warning.message
    assert warning.message.startswith("input 'x' (?, 4, 8, 8) has a dynamic batch")
    [note] = [f for f in check_model(proto, batch=(1, 2, 4)).findings if f.rule == "dynamic-shape"]
    assert note.level == "info"
    assert any(f.rule == "dla-fallback" and "static" in f.message
               for f in check_model(proto, dla=True, batch=(1, 2, 4)).findings)
    assert not any(f.rule == "dla-fallback" for f in check_model(proto, dla=True, batch=(2, 2, 2)).findings)


def test_dla_rules_for_single_layers():
    scales2 = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s2")
    scales8 = numpy_helper.from_array(np.array([1, 1, 8, 8], np.float32), "s8")
    roi = numpy_helper.from_array(np.zeros(0, np.float32), "roi")
    w3 = numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "w3")
    two = numpy_helper.from_array(np.float32(2), "two")
    nodes = [
        helper.make_node("Conv", ["x", "w3"], ["c"], name="conv3x3", pads=[1, 1, 1, 1]),
        helper.make_node("Div", ["c", "two"], ["d"], name="halve"),
        helper.make_node("AveragePool", ["d"], ["p"], name="pool16", kernel_shape=[16, 16]),
        helper.make_node("MaxPool", ["x"], ["m"], name="pool3", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["x", "roi", "s2"], ["r1"], name="nearest_x2", mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Resize", ["x", "roi", "s2"], ["r2"], name="bilinear_x2", mode="linear",
                         coordinate_transformation_mode="pytorch_half_pixel"),
        helper.make_node("Resize", ["x", "roi", "s8"], ["r3"], name="bilinear_x8", mode="linear",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("Resize", ["x", "roi", "s2"], ["r4"], name="bilinear_corners", mode="linear",
                         coordinate_transformation_mode="align_corners"),
        helper.make_node("Concat", ["x", "x"], ["cat"], name="concat_channels", axis=1),
        helper.make_node("Concat", ["x", "x"], ["catw"], name="concat_width", axis=3),
        helper.make_node("Exp", ["x"], ["e"], name="exp"),
    ]
    outputs = [tensor(n, None) for n in ("p", "m", "r1", "r2", "r3", "r4", "cat", "catw", "e")]
    report = check_model(model(nodes, [X], outputs, [scales2, scales8, roi, w3, two]), dla=True)
    assert report.ok, report.to_markdown()
    flagged = {f.node: f.message for f in report.dla_fallbacks}
    assert set(flagged) == {"halve", "pool16", "bilinear_x8", "bilinear_corners", "concat_width", "exp"}
    assert "sum, sub, product, max and min" in flagged["halve"]
    assert "8×8" in flagged["pool16"]
    assert "[1, 4]" in flagged["bilinear_x8"]
    assert "half_pixel" in flagged["bilinear_corners"]
    assert "channel axis" in flagged["concat_width"]
    assert "only Abs" in flagged["exp"]


def test_dla_checks_are_off_unless_asked():
    node = helper.make_node("Div", ["x", "x"], ["y"], name="div")
    assert check_model(model([node], [X], [Y])).dla_fallbacks == []


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(MkeError, match="does not exist"):
        check_onnx(tmp_path / "missing.onnx")
    (tmp_path / "noise.onnx").write_bytes(b"\x08\x07 certainly not protobuf \xff\xfe" * 10)
    with pytest.raises(MkeError, match="is not a readable ONNX model"):
        check_onnx(tmp_path / "noise.onnx")


def test_operator_table_is_the_onnx_tensorrt_matrix():
    assert {"Conv", "Resize", "If", "Loop", "NonMaxSuppression", "QuantizeLinear"} <= SUPPORTED_OPS
    assert {"Unique", "QLinearConv", "ConvInteger", "DynamicQuantizeLinear"} <= UNSUPPORTED_OPS
    assert not SUPPORTED_OPS & UNSUPPORTED_OPS
    assert len(SUPPORTED_OPS) == 150 and len(UNSUPPORTED_OPS) == 46


# --- strong typing and TensorRT 11 ---------------------------------------------------------------------------

def test_float32_student_on_dla_says_dla_needs_the_fp16_or_int8_graph(segmentation_onnx):
    [warning] = [f for f in check_onnx(segmentation_onnx, dla=True).findings if f.rule == "dla-precision"]
    assert warning.level == "warning" and "DLA runs FP16 and INT8 only" in warning.message
    assert "student.fp16.onnx or student.int8.onnx" in warning.message


def test_fp16_student_from_onnx_to_fp16_is_ready_as_fp16(segmentation_onnx, tmp_path):
    from mke.export.onnx_fp16 import onnx_to_fp16

    half = onnx_to_fp16(segmentation_onnx, tmp_path / "student.fp16.onnx")
    report = check_onnx(half, dla=True)
    assert report.ok, report.to_markdown()
    assert (report.precision, report.computes_in) == ("fp16", "fp16")  # the name says fp16, the types agree
    assert not [f for f in report.findings if f.rule == "dla-precision"]
    assert {f.op_type for f in report.dla_fallbacks} >= {"GlobalAveragePool", "Resize"}


def test_float32_graph_named_fp16_is_an_error(segmentation_onnx, tmp_path):
    """What TensorRT 11 would not refuse but silently build as FP32: the build refuses it, so the check does."""
    mislabeled = tmp_path / "student.fp16.onnx"
    mislabeled.write_bytes(segmentation_onnx.read_bytes())
    report = check_onnx(mislabeled)
    [error] = [f for f in report.errors if f.rule == "strong-typing"]
    assert error.message.startswith("student.fp16.onnx has no FLOAT16 tensor") and "onnx_to_fp16" in error.message
    assert check_onnx(mislabeled, precision=None).ok  # asked for nothing, it is a fine FP32 graph


def test_int8_without_qdq_is_implicit_quantization_and_an_error(segmentation_onnx):
    report = check_onnx(segmentation_onnx, precision="int8")
    [error] = [f for f in report.errors if f.rule == "strong-typing"]
    assert "no longer calibrates" in error.message and "removed them and BuilderFlag.INT8" in error.message


def test_precision_must_be_one_mke_builds():
    with pytest.raises(MkeError, match="precision must be one of fp32, fp16, int8"):
        check_model(model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [X], [Y]), precision="bf16")


@pytest.mark.parametrize("domain, op", [("", "CropAndResize"), ("trt.plugins", "Normalize_TRT"),
                                        ("trt.plugins", "LReLU_TRT")])
def test_nodes_served_by_plugins_tensorrt_11_removed_are_flagged(domain, op):
    node = helper.make_node(op, ["x"], ["y"], name="plugin_node", domain=domain)
    proto = model([node], [X], [Y])
    if domain:
        proto.opset_import.append(helper.make_opsetid(domain, 1))
    report = check_model(proto)
    [warning] = [f for f in findings_for(report, "plugin_node") if f.rule == "trt11"]
    assert warning.level == "warning" and "TensorRT 11.0 removed" in warning.message and op in warning.message
    assert report.trt11_blockers == [warning]
    assert report.to_dict()["ready_for_tensorrt_11"] is False


def test_the_standard_split_operator_is_not_the_removed_split_plugin():
    node = helper.make_node("Split", ["x"], ["a", "b"], name="halves", axis=1, num_outputs=2)
    report = check_model(model([node], [X], [tensor("a", [1, 2, 8, 8]), tensor("b", [1, 2, 8, 8])]))
    assert report.trt11_blockers == [] and report.ok
    assert "ready for TensorRT 10 and 11" in report.to_markdown()


def mixed_qdq(x_type, scale_type):
    """QuantizeLinear with differing input and scale types, which ONNX allows from opset 23."""
    np_type = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16}
    inits = [numpy_helper.from_array(np.asarray(0.05, np_type[scale_type]), "scale"),
             numpy_helper.from_array(np.int8(0), "zp")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "scale", "zp"], ["y"], name="dq_in")]
    proto = model(nodes, [tensor("x", [1, 4, 8, 8], x_type)], [tensor("y", [1, 4, 8, 8], scale_type)], inits, opset=23)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def test_quantize_input_and_scale_types_must_match_when_strongly_typed():
    [half_input] = [f for f in findings_for(check_model(mixed_qdq(TensorProto.FLOAT16, TensorProto.FLOAT)), "q_in")
                    if f.rule == "strong-typing"]
    assert half_input.level == "error" and "strongly typed TensorRT 10" in half_input.message
    assert "TensorRT 11 accepts a FLOAT scale" in half_input.message
    [half_scale] = [f for f in findings_for(check_model(mixed_qdq(TensorProto.FLOAT, TensorProto.FLOAT16)), "q_in")
                    if f.rule == "strong-typing"]
    assert half_scale.level == "error" and "10.3 and 11.1 alike" in half_scale.message
    assert not [f for f in check_model(mixed_qdq(TensorProto.FLOAT, TensorProto.FLOAT)).findings
                if f.rule == "strong-typing" and f.level == "error"]
