"""INT8 from a real exported RGB-D student: TensorRT's Q/DQ rules, ORT's CPU recipe, the accuracy
budget and crash safety, all through the real onnxruntime quantizer."""
import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from mke.calib.budget import quantize_within_budget
from mke.calib.qdq_check import check_tensorrt_qdq, summarize, tensorrt_violations
from mke.calib.quantize import (prepare_for_quantization, quantization_record, quantize_int8,
                                quantize_int8_cpu)
from mke.calib.samples import save_calibration, select_samples
from mke.calib.sensitivity import quantized_nodes, rank_nodes
from mke.runtime.errors import MkeError
from scenes import smooth_frames

SPEC = json.dumps({"task": "segmentation", "inputs": ["rgb", "depth"]})


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from mke.train.models.segmentation import SegmentationNet

    class Student(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = SegmentationNet({"rgb": 3, "depth": 1}, num_classes=7, encoder="tiny")

        def forward(self, rgb, depth):
            return self.net(rgb=rgb, depth=depth)

    folder = tmp_path_factory.mktemp("models")
    model = Student().eval()
    path = folder / "student.onnx"
    example = smooth_frames(1, 0)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter the brief asks for
        torch.onnx.export(model, (torch.from_numpy(example["rgb"]), torch.from_numpy(example["depth"])), str(path),
                          input_names=["rgb", "depth"], output_names=["logits"], opset_version=18, dynamo=False)
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {"mke.spec": SPEC})
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="module")
def calib(fp32):
    return save_calibration(fp32.parent / "calib.npz", select_samples(smooth_frames(48, 1), n=24, seed=0))


@pytest.fixture(scope="module")
def quantized(fp32, calib):
    cache = fp32.parent / "ranges.json"  # one calibration serves both recipes
    return {"int8": quantize_int8(fp32, calib, fp32.parent / "student.int8.onnx", calibration_cache=cache),
            "int8-cpu": quantize_int8_cpu(fp32, calib, fp32.parent / "student.int8-cpu.onnx", calibration_cache=cache)}


def run(path, feed):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, feed)[0]


def constants(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_int8_is_tensorrt_qdq_symmetric_with_per_channel_weights(quantized):
    model = onnx.load(str(quantized["int8"]))
    consts = constants(model)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert sum(n.op_type == "QuantizeLinear" for n in qdq) > 20
    for node in qdq:
        zero_point = consts[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    producer = {n.output[0]: n for n in model.graph.node}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:
        dq = producer[conv.input[1]]
        weight, scale = consts[dq.input[0]], consts[dq.input[1]]
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        assert weight.dtype == np.int8 and axis == 0 and scale.shape == (weight.shape[0],), conv.name
        if len(conv.input) > 2:
            assert conv.input[2] in consts and consts[conv.input[2]].dtype == np.float32  # TensorRT: float bias
    assert tensorrt_violations(model) == []
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)


def test_int8_cpu_has_unsigned_activations_and_signed_per_channel_weights(quantized):
    s = summarize(quantized["int8-cpu"])
    assert s.activation_types == {"uint8"} and "int8" in s.weight_types
    assert s.per_channel_weights >= 40 and s.per_tensor_weights == 0
    with pytest.raises(MkeError, match="zero point type UINT8"):
        check_tensorrt_qdq(quantized["int8-cpu"], source="student.int8-cpu.onnx")


def test_tensorrt_check_catches_per_tensor_weights(quantized, tmp_path):
    model = onnx.load(str(quantized["int8"]))
    consts = {t.name: t for t in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    dq = next(n for n in model.graph.node if n.output[0] == conv.input[1])
    scale = consts[dq.input[1]]
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale).max(keepdims=True)[:1].reshape(()), scale.name))
    problems = tensorrt_violations(model)
    assert any("one scale" in p and conv.name in p for p in problems)


def test_tensorrt_check_catches_broken_pairs_and_scales(quantized, tmp_path):
    model = onnx.load(str(quantized["int8"]))
    consts = {t.name: t for t in model.graph.initializer}
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    scale = consts[q.input[1]]
    scale.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(scale), scale.name))
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
    reader = next(n for n in model.graph.node if dq.output[0] in n.input)
    reader.input[list(reader.input).index(dq.output[0])] = q.output[0]  # int8 straight into the next layer
    path = tmp_path / "broken.int8.onnx"
    onnx.save(model, str(path))
    problems = tensorrt_violations(path)
    assert any(p.startswith(f"QuantizeLinear {q.name}: scale has values ≤ 0") for p in problems)
    assert any(p.startswith(f"QuantizeLinear {q.name}: its output feeds {reader.op_type}") for p in problems)
    with pytest.raises(MkeError, match=r"broken\.int8\.onnx does not follow TensorRT's explicit-quantization rules"):
        check_tensorrt_qdq(path, source=str(path))


def test_quantizer_and_readiness_report_apply_the_same_qdq_rules(quantized):
    from mke.export.trt_readiness import check_onnx

    for path in quantized.values():
        report = [f"{f.op_type} {f.node}: {f.message}" for f in check_onnx(path).errors if f.rule == "qdq"]
        ours = [p for p in tensorrt_violations(path) if "the int8 recipe wants" not in p]
        assert sorted(ours) == sorted(report)
    assert report  # int8-cpu breaks them: uint8 activations, int32 biases


def test_both_recipes_run_in_onnxruntime_and_agree_with_fp32(fp32, quantized):
    frames = smooth_frames(6, 7)  # not the calibration samples
    for name, path in quantized.items():
        agree = []
        for i in range(6):
            feed = {k: v[i:i + 1] for k, v in frames.items()}
            agree.append(np.mean(run(fp32, feed).argmax(1) == run(path, feed).argmax(1)))
        assert np.mean(agree) > 0.9, (name, agree)


def test_quantized_models_keep_the_spec_and_record_how(quantized):
    for name, path in quantized.items():
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert props["mke.spec"] == SPEC
        record = quantization_record(path)
        assert record["recipe"]["name"] == name and record["method"] == "minmax" and record["samples"] == 24


def test_excluded_nodes_stay_in_fp32_and_unknown_names_are_refused(fp32, calib, tmp_path):
    pre = prepare_for_quantization(fp32, tmp_path / "pre.onnx")
    conv = next(n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv")
    out = quantize_int8(pre, calib, tmp_path / "partial.onnx", nodes_to_exclude=[conv])
    assert conv not in quantized_nodes(onnx.load(str(out)))
    assert conv in summarize(out).float_nodes
    assert quantization_record(out)["nodes_to_exclude"] == [conv]
    with pytest.raises(MkeError, match="does not have: no/such/Conv"):
        quantize_int8(pre, calib, tmp_path / "bad.onnx", nodes_to_exclude=["no/such/Conv"])
    assert not (tmp_path / "bad.onnx").exists()


def test_calibration_data_for_another_input_size_is_refused(fp32, tmp_path):
    wrong = save_calibration(tmp_path / "wrong.npz", select_samples(
        {"rgb": np.zeros((4, 3, 24, 32), np.float32), "depth": np.zeros((4, 1, 24, 32), np.float32)}, n=4))
    with pytest.raises(MkeError, match=r"wrong\.npz: input 'rgb' has samples of shape \(3, 24, 32\)"):
        quantize_int8(fp32, wrong, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


class ExplodingArray(np.ndarray):
    """Calibration samples whose reader fails at the third batch, as a bad disk or a bug would."""

    reads = 0

    def __getitem__(self, item):
        if isinstance(item, slice):
            type(self).reads += 1
            if type(self).reads > 4:
                raise RuntimeError("calibration reader failed")
        return super().__getitem__(item)


def test_a_crash_mid_quantization_leaves_the_target_untouched(fp32, calib, tmp_path):
    samples = dict(np.load(calib))
    samples["rgb"] = samples["rgb"].view(ExplodingArray)
    target = tmp_path / "student.int8.onnx"
    with pytest.raises(RuntimeError, match="calibration reader failed"):
        quantize_int8(fp32, samples, target)
    assert not target.exists()
    target.write_bytes(b"previous artifact")
    ExplodingArray.reads = 0
    with pytest.raises(RuntimeError):
        quantize_int8_cpu(fp32, samples, target)
    assert target.read_bytes() == b"previous artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.int8.onnx"]  # no temp files either


def test_ranking_puts_each_quantized_node_once_most_sensitive_first(fp32, calib, quantized, tmp_path):
    pre = prepare_for_quantization(fp32, tmp_path / "pre.onnx")
    ranking = rank_nodes(pre, quantized["int8"], calib, max_samples=4)
    names = [r.name for r in ranking]
    assert len(names) == len(set(names)) == len(quantized_nodes(onnx.load(str(quantized["int8"]))))
    assert [r.score for r in ranking] == sorted((r.score for r in ranking), reverse=True)
    assert ranking[0].output_error > 0


def penalise(node):
    """A metric that only drops while `node` runs quantized: 100 in FP32, 95 otherwise."""
    def evaluate(path):
        return 95.0 if node in quantized_nodes(onnx.load(path)) else 100.0
    return evaluate


def test_budget_keeps_the_fewest_sensitive_nodes_in_fp32_that_meet_it(fp32, calib, quantized, tmp_path):
    pre = prepare_for_quantization(fp32, tmp_path / "pre.onnx")
    ranking = rank_nodes(pre, quantized["int8"], calib)
    culprit = ranking[2].name
    out = tmp_path / "budget.int8.onnx"
    result = quantize_within_budget(fp32, calib, quantize_int8, penalise(culprit), out, budget=0.0)
    assert result.within_budget and result.metric == 100.0 and result.fp32_metric == 100.0
    assert result.excluded == [r.name for r in ranking[:3]]  # the shortest prefix of the ranking with it
    assert [k for k, _ in result.history] == [0, 1, 2, 4, 3]  # grow 1, 2, 4; bisect back to 3; stop
    assert result.evaluations == 6
    assert result.path == out and check_tensorrt_qdq(out, require_qdq=False)
    assert culprit not in quantized_nodes(onnx.load(str(out)))
    record = quantization_record(out)
    assert record["nodes_to_exclude"] == sorted(result.excluded) and record["metric"] == 100.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["budget.int8.onnx", "pre.onnx"]


def test_budget_already_met_excludes_nothing(fp32, calib, tmp_path):
    result = quantize_within_budget(fp32, calib, quantize_int8_cpu, lambda path: 50.0, tmp_path / "m.onnx")
    assert result.within_budget and result.excluded == [] and result.evaluations == 2
    assert summarize(result.path).activation_types == {"uint8"}


def test_unreachable_budget_returns_the_best_model_and_says_so(fp32, calib, tmp_path):
    calls = []

    def evaluate(path):
        calls.append(path)
        return 100.0 if len(calls) == 1 else 90.0 + len(calls)  # FP32, then slowly better, never enough
    result = quantize_within_budget(fp32, calib, quantize_int8, evaluate, tmp_path / "m.onnx", budget=1.0,
                                    max_excluded=2)
    assert not result.within_budget and len(result.excluded) == 2 and result.metric == 94.0
    assert result.history == [(0, 92.0), (1, 93.0), (2, 94.0)] and result.path.exists()


def test_a_failing_metric_mid_search_leaves_nothing_behind(fp32, calib, tmp_path):
    def evaluate(path):
        if "int8-1" in path:
            raise RuntimeError("evaluation crashed")
        return 100.0 if path == str(fp32) else 0.0
    with pytest.raises(RuntimeError, match="evaluation crashed"):
        quantize_within_budget(fp32, calib, quantize_int8, evaluate, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_calibration_methods_give_working_models(fp32, calib, tmp_path, method):
    out = quantize_int8_cpu(fp32, calib, tmp_path / f"{method}.onnx", method=method)
    assert quantization_record(out)["method"] == method
    feed = {k: v[:1] for k, v in smooth_frames(1, 9).items()}
    assert np.mean(run(fp32, feed).argmax(1) == run(out, feed).argmax(1)) > 0.9


def test_calibration_cache_is_reused_only_for_the_same_model_samples_and_method(fp32, calib, tmp_path):
    cache = tmp_path / "ranges.json"
    first = quantize_int8(fp32, calib, tmp_path / "a.onnx", calibration_cache=cache)
    made = cache.stat().st_mtime_ns
    again = quantize_int8(fp32, calib, tmp_path / "b.onnx", calibration_cache=cache)
    assert cache.stat().st_mtime_ns == made  # reused, not calibrated again
    assert first.read_bytes() == again.read_bytes()
    other = save_calibration(tmp_path / "other.npz", select_samples(smooth_frames(48, 5), n=24))
    quantize_int8(fp32, other, tmp_path / "c.onnx", calibration_cache=cache)
    assert cache.stat().st_mtime_ns != made  # other samples: new ranges
    scales = [{t.name: numpy_helper.to_array(t) for t in onnx.load(str(p)).graph.initializer}["rgb_scale"]
              for p in (first, tmp_path / "c.onnx")]
    assert scales[0] != scales[1]


def test_budget_refuses_a_negative_budget_and_a_metric_that_is_not_a_number(fp32, calib, tmp_path):
    with pytest.raises(MkeError, match="≥ 0"):
        quantize_within_budget(fp32, calib, quantize_int8, lambda path: 1.0, tmp_path / "m.onnx", budget=-1)
    with pytest.raises(MkeError, match="returned nan"):
        quantize_within_budget(fp32, calib, quantize_int8, lambda path: float("nan"), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_budget_searches_of_both_recipes_share_one_calibration(fp32, calib, tmp_path):
    cache = tmp_path / "work" / "ranges.json"
    cache.parent.mkdir()
    quantize_within_budget(fp32, calib, quantize_int8, lambda path: 50.0, tmp_path / "m.int8.onnx",
                           calibration_cache=cache)
    made = cache.stat().st_mtime_ns  # kept beyond the search, for the next recipe
    quantize_within_budget(fp32, calib, quantize_int8_cpu, lambda path: 50.0, tmp_path / "m.int8-cpu.onnx",
                           calibration_cache=cache)
    assert cache.stat().st_mtime_ns == made  # the CPU recipe read the TensorRT recipe's ranges
    fresh = quantize_within_budget(fp32, calib, quantize_int8_cpu, lambda path: 50.0, tmp_path / "alone.onnx")
    assert (tmp_path / "m.int8-cpu.onnx").read_bytes() == fresh.path.read_bytes()  # the same model as calibrating alone


def test_a_constant_added_to_a_sequence_is_not_a_weight_for_the_cpu_recipe(tmp_path):
    """onnxruntime quantizes a constant operand of an Add (the DMD student's positional table) like the
    activations it meets — uint8 in the int8-cpu recipe: counted apart from the signed weights, so the
    recipe's check passes (it refused the DMD student before)."""
    torch = pytest.importorskip("torch")

    class Sequence(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.project = torch.nn.Linear(6, 8)
            self.register_buffer("positions", torch.randn(5, 8))
            self.head = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.head(torch.relu(self.project(x) + self.positions).amax(dim=1))

    path = tmp_path / "seq.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(Sequence().eval(), (torch.randn(1, 5, 6),), str(path), input_names=["x"],
                          output_names=["logits"], opset_version=18, dynamo=False)
    samples = save_calibration(tmp_path / "calib.npz", {"x": np.random.default_rng(0).normal(size=(16, 5, 6))
                                                        .astype(np.float32)})
    out = quantize_int8_cpu(path, samples, tmp_path / "seq.int8-cpu.onnx")
    s = summarize(out)
    assert s.constant_types == {"uint8"} and s.weight_types <= {"int8", "int32"} and "int8" in s.weight_types
