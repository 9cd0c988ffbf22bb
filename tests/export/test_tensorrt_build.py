"""ONNX → TensorRT engine. What needs no TensorRT is tested everywhere; building and running need
TensorRT 10 and an NVIDIA GPU (the Jetson) and are skipped elsewhere, with the reason."""
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="engines are built from ONNX files (extra: export)")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mke.export.tensorrt_build import (NOT_INSTALLED, SPEC_KEY, BuildOptions, build_engine,  # noqa: E402
                                       compare_outputs, default_model_name, gpu_info, onnx_facts, profile_shapes)
from mke.runtime.engine_file import check_engine_compatible, engine_spec, read_engine  # noqa: E402
from mke.runtime.errors import MkeError  # noqa: E402
from mke.runtime.spec import InputSpec, ModelSpec, OutputSpec  # noqa: E402


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def spec_for(batch: int | str = 1) -> ModelSpec:
    b = batch if isinstance(batch, int) else -1
    return ModelSpec(task="rgbd", kind="segmentation", classes=["a", "b", "c", "d"], colors=[[0, 0, 0]] * 4,
                     inputs=[InputSpec("rgb", "rgb", [b, 3, 16, 16])], outputs=[OutputSpec("logits", [b, 4, 16, 16])])


def conv_onnx(path, batch: int | str = 1, with_spec: bool = True, quantized: bool = False):
    """rgb (N, 3, 16, 16) → Conv 3×3 → Relu → logits (N, 4, 16, 16); the spec in metadata_props."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["rgb_in", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["logits"], name="relu")]
    if quantized:
        inits += [numpy_helper.from_array(np.float32(0.02), "s"), numpy_helper.from_array(np.int8(0), "z")]
        nodes[:0] = [helper.make_node("QuantizeLinear", ["rgb", "s", "z"], ["rgb_q"], name="q"),
                     helper.make_node("DequantizeLinear", ["rgb_q", "s", "z"], ["rgb_in"], name="dq")]
    else:
        nodes.insert(0, helper.make_node("Identity", ["rgb"], ["rgb_in"], name="id"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("rgb", TensorProto.FLOAT, [batch, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4, 16, 16])],
                              initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if with_spec:
        entry = proto.metadata_props.add()
        entry.key, entry.value = SPEC_KEY, spec_for(batch).to_json()
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


# --- no TensorRT needed ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "bf16"}, "precision must be one of"),
    ({"batch": (4, 2, 8)}, "min <= opt <= max"),
    ({"batch": (0, 1, 1)}, "each >= 1"),
    ({"workspace_mib": 1}, "at least 16"),
    ({"dla_core": 0, "precision": "fp32"}, "DLA runs FP16 or INT8 only"),
    ({"dla_core": 0, "batch": (1, 2, 4)}, "DLA does not support dynamic shapes"),
    ({"exclude_lean_runtime": True}, "version-compatible"),
])
def test_build_options_are_checked_before_any_gpu_work(kwargs, message):
    with pytest.raises(MkeError, match=message):
        BuildOptions(**kwargs)


def test_build_options_defaults_are_a_plain_fp16_gpu_build():
    options = BuildOptions()
    assert (options.precision, options.dla_core, options.version_compatible) == ("fp16", None, False)
    BuildOptions(precision="int8", dla_core=1, batch=(2, 2, 2), version_compatible=True, exclude_lean_runtime=True)


def test_profile_shapes_cover_a_dynamic_batch_only():
    assert profile_shapes({"rgb": [1, 3, 16, 16]}, None) == {}
    assert profile_shapes({"rgb": [-1, 3, 16, 16], "depth": [1, 1, 16, 16]}, (1, 2, 8)) == \
        {"rgb": ((1, 3, 16, 16), (2, 3, 16, 16), (8, 3, 16, 16))}
    with pytest.raises(MkeError, match=r"dynamic batch .* pass batch=\(min, opt, max\)"):
        profile_shapes({"rgb": [-1, 3, 16, 16]}, None)
    with pytest.raises(MkeError, match="dynamic dimensions .* beyond the batch"):
        profile_shapes({"rgb": [1, 3, -1, -1]}, (1, 1, 1))


def test_onnx_facts_read_the_embedded_spec_inputs_and_quantization(tmp_path):
    facts = onnx_facts(conv_onnx(tmp_path / "student.onnx", batch="N"))
    assert ModelSpec.from_json(facts["spec"]) == spec_for("N")
    assert facts["inputs"] == {"rgb": [-1, 3, 16, 16]} and facts["qdq"] is False
    assert len(facts["sha256"]) == 64
    assert onnx_facts(conv_onnx(tmp_path / "student.int8.onnx", quantized=True))["qdq"] is True


def test_engine_takes_its_model_name_from_the_onnx_file_without_precision(tmp_path):
    assert default_model_name(tmp_path / "student.int8.onnx") == "student"
    assert default_model_name(tmp_path / "teacher.onnx") == "teacher"


def test_int8_needs_an_explicitly_quantized_onnx(tmp_path):
    with pytest.raises(MkeError, match=r"INT8 needs an explicitly quantized ONNX .*`mke-export <run> --int8`"):
        build_engine(conv_onnx(tmp_path / "student.onnx"), tmp_path, BuildOptions(precision="int8"))


def test_quantized_onnx_is_built_as_int8(tmp_path):
    with pytest.raises(MkeError, match="explicitly quantized .* precision int8"):
        build_engine(conv_onnx(tmp_path / "student.int8.onnx", quantized=True), tmp_path, BuildOptions())


def test_onnx_without_spec_is_refused(tmp_path):
    with pytest.raises(MkeError, match="carries no MKE model spec"):
        build_engine(conv_onnx(tmp_path / "bare.onnx", with_spec=False), tmp_path)


def test_dynamic_batch_without_profile_is_refused_before_tensorrt(tmp_path):
    with pytest.raises(MkeError, match="optimization profile"):
        build_engine(conv_onnx(tmp_path / "student.onnx", batch="N"), tmp_path)


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here; this pins the message for machines "
                                                  "without it")
def test_without_tensorrt_the_error_is_one_line_saying_where_to_build(tmp_path):
    with pytest.raises(MkeError) as err:
        build_engine(conv_onnx(tmp_path / "student.onnx"), tmp_path)
    message = str(err.value)
    assert message == NOT_INSTALLED and "\n" not in message
    assert message.startswith("TensorRT is not installed here: ONNX files were written; "
                              "build engines on the Jetson with")
    assert list(tmp_path.glob("*.engine")) == []


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_runner_without_tensorrt_says_so(tmp_path):
    from mke.export.tensorrt_build import engine_runner
    from mke.runtime.tensorrt import NOT_INSTALLED as RUNTIME_NOT_INSTALLED, TrtRunner

    engine = tmp_path / "student.fp16.trt10.3.0.orin.engine"
    with pytest.raises(MkeError) as err:
        with engine_runner(engine):
            pass
    assert str(err.value) == NOT_INSTALLED  # the workstation's message: where engines get built
    with pytest.raises(MkeError) as err:
        with TrtRunner(engine):
            pass
    assert str(err.value) == RUNTIME_NOT_INSTALLED and "--backend onnxruntime" in str(err.value)  # the robot's


def test_export_runs_engines_with_the_one_runtime_runner(tmp_path):
    from mke.export.tensorrt_build import engine_runner
    from mke.runtime.tensorrt import TrtRunner

    runner = engine_runner(tmp_path / "student.fp16.trt10.3.0.orin.engine")  # made, not activated: no TensorRT yet
    assert type(runner) is TrtRunner and not runner.is_active


def test_gpu_info_without_a_gpu_is_an_mke_error():
    try:
        name, cc = gpu_info()
    except MkeError as err:
        assert "no CUDA GPU is visible" in str(err)
    else:
        assert name and cc.count(".") == 1


def test_compare_outputs_reports_errors_and_class_agreement():
    rng = np.random.default_rng(0)
    ref = {"logits": rng.normal(size=(1, 4, 8, 8)).astype(np.float32)}
    same = compare_outputs({"logits": ref["logits"].copy()}, ref)
    assert same["logits"] == {"max_abs": 0.0, "max_rel": 0.0, "within_tolerance": True, "argmax_agreement": 1.0}
    noisy = compare_outputs({"logits": ref["logits"] + 0.5}, ref, atol=1e-2, rtol=1e-2)["logits"]
    assert noisy["within_tolerance"] is False and noisy["max_abs"] == pytest.approx(0.5)
    assert noisy["argmax_agreement"] == 1.0  # a constant shift keeps every pixel's class
    with pytest.raises(MkeError, match="shape"):
        compare_outputs({"logits": ref["logits"][:, :2]}, ref)
    with pytest.raises(MkeError, match="missing"):
        compare_outputs({}, ref)


# --- TensorRT and a GPU ----------------------------------------------------------------------------------------

@pytest.fixture
def trt():
    module = pytest.importorskip("tensorrt", reason="TensorRT is not installed here; it ships with JetPack 6 on "
                                                    "the Jetson, where these tests run")
    try:
        gpu_info()
    except MkeError as err:
        pytest.skip(f"TensorRT is installed but no GPU is usable: {err}")
    return module


def test_fp16_engine_carries_spec_and_machine(trt, tmp_path):
    onnx_path = conv_onnx(tmp_path / "student.onnx")
    engine = build_engine(onnx_path, tmp_path, BuildOptions(precision="fp16"))
    name, cc = gpu_info()
    assert engine.name.startswith(f"student.fp16.trt{trt.__version__[:4]}")
    header, plan = read_engine(engine)
    assert engine_spec(header) == spec_for(1)
    assert (header["precision"], header["gpu"], header["compute_capability"]) == ("fp16", name, cc)
    assert header["onnx_sha256"] == onnx_facts(onnx_path)["sha256"] and len(plan) == header["plan_bytes"]
    check_engine_compatible(header, trt.__version__, name, cc)
    assert list(tmp_path.glob("timing.*.cache")), "the timing cache is saved for the next build"


def test_fp32_engine_matches_onnx_runtime(trt, tmp_path):
    from mke.export.tensorrt_build import verify_engine

    onnx_path = conv_onnx(tmp_path / "student.onnx")
    engine = build_engine(onnx_path, tmp_path, BuildOptions(precision="fp32"))
    feeds = {"rgb": np.random.default_rng(1).random((1, 3, 16, 16), np.float32)}
    report = verify_engine(engine, onnx_path, feeds, atol=1e-3, rtol=1e-3)
    assert report["logits"]["within_tolerance"], report


def test_dynamic_batch_engine_runs_every_batch_in_its_profile(trt, tmp_path):
    from mke.export.tensorrt_build import engine_runner

    onnx_path = conv_onnx(tmp_path / "student.onnx", batch="N")
    engine = build_engine(onnx_path, tmp_path, BuildOptions(precision="fp16", batch=(1, 2, 4)))
    assert read_engine(engine)[0]["profile"] == {"rgb": [[1, 3, 16, 16], [2, 3, 16, 16], [4, 3, 16, 16]]}
    with engine_runner(engine) as runner:
        assert runner.input_metadata() == {"rgb": (np.dtype(np.float32), (None, 3, 16, 16))}
        for n in (1, 3, 4):
            out = runner.infer({"rgb": np.zeros((n, 3, 16, 16), np.float32)})
            assert out["logits"].shape == (n, 4, 16, 16)
        with pytest.raises(MkeError, match="outside the engine's profile"):
            runner.infer({"rgb": np.zeros((5, 3, 16, 16), np.float32)})
        with pytest.raises(MkeError, match=r"input 'rgb' is float64, the model takes float32 \(\?, 3, 16, 16\)"):
            runner.infer({"rgb": np.zeros((1, 3, 16, 16), np.float64)})


def test_int8_qdq_engine_builds_without_a_calibrator(trt, tmp_path):
    from mke.export.tensorrt_build import verify_engine

    onnx_path = conv_onnx(tmp_path / "student.int8.onnx", quantized=True)
    engine = build_engine(onnx_path, tmp_path, BuildOptions(precision="int8"))
    assert ".int8." in engine.name and json.loads(json.dumps(read_engine(engine)[0]))["precision"] == "int8"
    feeds = {"rgb": np.random.default_rng(2).random((1, 3, 16, 16), np.float32)}
    report = verify_engine(engine, onnx_path, feeds, atol=0.1, rtol=0.1)
    assert report["logits"]["argmax_agreement"] > 0.9, report


def test_dla_build_where_the_gpu_has_dla(trt, tmp_path):
    if trt.Builder(trt.Logger(trt.Logger.ERROR)).num_DLA_cores == 0:
        pytest.skip("this GPU has no DLA (DLA is on Jetson AGX/NX Orin and Xavier)")
    engine = build_engine(conv_onnx(tmp_path / "student.onnx"), tmp_path, BuildOptions(precision="fp16", dla_core=0))
    assert engine.name.endswith(".dla0.engine") and read_engine(engine)[0]["dla_core"] == 0
