"""ONNX → TensorRT engine. What needs no TensorRT is tested everywhere — option checks, profiles, and the
strong-typing rule that the graph's own types must give the precision asked for; building and running
need TensorRT 10 or 11 and an NVIDIA GPU (the Jetson) and are skipped elsewhere, with the reason."""
import enum
import json
from pathlib import Path

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


def conv_onnx(path, batch: int | str = 1, with_spec: bool = True, quantized: bool = False, half: bool = False):
    """rgb (N, 3, 16, 16) → Conv 3×3 → Relu → logits (N, 4, 16, 16); the spec in metadata_props.
    `half`: converted to FP16 the way mke-export does (`onnx_to_fp16`: FP16 weights, FP32 inputs and outputs)."""
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
    if half:
        from mke.export.onnx_fp16 import onnx_to_fp16

        fp32 = path.with_name(f"fp32-{path.name}")
        onnx.save(proto, str(fp32))
        return onnx_to_fp16(fp32, path)
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
        build_engine(conv_onnx(tmp_path / "student.fp16.onnx", batch="N", half=True), tmp_path)


# --- strong typing: the graph holds the precision (TensorRT 11 has no FP16/INT8 flags) -------------------------

def test_float32_onnx_is_not_built_as_fp16(tmp_path):
    """A strongly typed build of a float32 graph gives an FP32 engine whatever it is called: refused, before
    TensorRT, with the file to build instead."""
    with pytest.raises(MkeError) as err:
        build_engine(conv_onnx(tmp_path / "student.onnx"), tmp_path, BuildOptions(precision="fp16"))
    message = str(err.value)
    assert message.startswith("student.onnx has no FLOAT16 tensor")
    assert "student.fp16.onnx" in message and "onnx_to_fp16" in message and "precision fp32" in message
    assert list(tmp_path.glob("*.engine")) == []


def test_fp16_onnx_is_not_built_as_fp32(tmp_path):
    with pytest.raises(MkeError, match=r"student\.fp16\.onnx computes in FLOAT16 .* build the float32 student\.onnx"):
        build_engine(conv_onnx(tmp_path / "student.fp16.onnx", half=True), tmp_path, BuildOptions(precision="fp32"))


def test_the_fp16_onnx_mke_export_writes_passes_the_precision_check(tmp_path):
    from mke.export.trt_readiness import precision_mismatch

    path = conv_onnx(tmp_path / "student.fp16.onnx", half=True)
    facts = onnx_facts(path)
    assert facts["computes_in"] == "fp16" and facts["types"].float_types == {"FLOAT", "FLOAT16"}
    assert precision_mismatch(facts["types"], "fp16", path) is None
    assert onnx_facts(conv_onnx(tmp_path / "student.onnx"))["computes_in"] == "fp32"
    assert onnx_facts(conv_onnx(tmp_path / "student.int8.onnx", quantized=True))["computes_in"] == "int8"


def graph_with(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(proto)
    return proto


@pytest.mark.parametrize("where", ["initializer", "cast", "input"])
def test_float16_is_found_in_weights_casts_and_declared_values(where):
    from mke.export.trt_readiness import graph_types

    x16, x32 = (helper.make_tensor_value_info("x", t, [1, 4]) for t in (TensorProto.FLOAT16, TensorProto.FLOAT))
    y16, y32 = (helper.make_tensor_value_info("y", t, [1, 4]) for t in (TensorProto.FLOAT16, TensorProto.FLOAT))
    if where == "initializer":
        proto = graph_with([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [x16], [y16],
                           [numpy_helper.from_array(np.ones(4, np.float16), "w")])
    elif where == "cast":
        proto = graph_with([helper.make_node("Cast", ["x"], ["h"], name="to_half", to=TensorProto.FLOAT16),
                            helper.make_node("Cast", ["h"], ["y"], name="back", to=TensorProto.FLOAT)], [x32], [y32])
    else:
        proto = graph_with([helper.make_node("Relu", ["x"], ["y"], name="relu")], [x16], [y16])
    types = graph_types(proto)
    assert types.computes_in == "fp16" and "FLOAT16" in types.float_types and types.half_at
    if where == "cast":
        assert types.half_at == "Cast 'to_half' (FLOAT16)"


def test_network_flags_take_the_strongly_typed_bit_from_each_releases_enum():
    """STRONGLY_TYPED is 1 in TensorRT 10.3's NvInfer.h and 0 (deprecated, ignored) in 11.1's, where 1 means
    PREFER_JIT_PYTHON_PLUGINS: the values of the two headers, not a stand-in for TensorRT's behaviour."""
    from types import SimpleNamespace

    from mke.export.tensorrt_build import network_flags

    trt10 = SimpleNamespace(NetworkDefinitionCreationFlag=enum.IntEnum("Flag", {"EXPLICIT_BATCH": 0,
                                                                                "STRONGLY_TYPED": 1}))
    trt11 = SimpleNamespace(NetworkDefinitionCreationFlag=enum.IntEnum("Flag", {
        "STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2}))
    assert network_flags(trt10) == 0b10
    assert network_flags(trt11) == 0b01
    assert network_flags(SimpleNamespace(NetworkDefinitionCreationFlag=enum.IntEnum("Flag", {"X": 3}))) == 0


# BuilderFlag members in the Python bindings (python/src/infer/pyCore.cpp of NVIDIA/TensorRT) of both releases.
BUILDER_FLAGS_10_3 = set("""
FP16 BF16 INT8 DEBUG GPU_FALLBACK REFIT DISABLE_TIMING_CACHE TF32 SPARSE_WEIGHTS SAFETY_SCOPE OBEY_PRECISION_CONSTRAINTS
PREFER_PRECISION_CONSTRAINTS DIRECT_IO REJECT_EMPTY_ALGORITHMS VERSION_COMPATIBLE EXCLUDE_LEAN_RUNTIME FP8
ERROR_ON_TIMING_CACHE_MISS DISABLE_COMPILATION_CACHE WEIGHTLESS STRIP_PLAN REFIT_IDENTICAL WEIGHT_STREAMING INT4
REFIT_INDIVIDUAL
""".split())
BUILDER_FLAGS_11_1 = set("""
DEBUG GPU_FALLBACK REFIT DISABLE_TIMING_CACHE EDITABLE_TIMING_CACHE TF32 SPARSE_WEIGHTS SAFETY_SCOPE DIRECT_IO
VERSION_COMPATIBLE EXCLUDE_LEAN_RUNTIME ERROR_ON_TIMING_CACHE_MISS DISABLE_COMPILATION_CACHE STRIP_PLAN REFIT_IDENTICAL
WEIGHT_STREAMING REFIT_INDIVIDUAL STRICT_NANS MONITOR_MEMORY DISTRIBUTIVE_INDEPENDENCE
""".split())


@pytest.mark.parametrize("options", [
    BuildOptions(precision="fp32"), BuildOptions(precision="fp16"), BuildOptions(precision="int8"),
    BuildOptions(precision="fp16", dla_core=0), BuildOptions(precision="int8", dla_core=1, gpu_fallback=False),
    BuildOptions(version_compatible=True, exclude_lean_runtime=True),
], ids=lambda o: f"{o.precision}-dla{o.dla_core}-vc{int(o.version_compatible)}")
def test_builds_set_no_precision_flag_and_only_flags_both_releases_have(options):
    from mke.export.tensorrt_build import builder_flags

    flags = builder_flags(options)
    assert set(flags) <= BUILDER_FLAGS_10_3 & BUILDER_FLAGS_11_1
    assert not set(flags) & {"FP16", "INT8", "BF16", "FP8", "INT4", "OBEY_PRECISION_CONSTRAINTS",
                             "PREFER_PRECISION_CONSTRAINTS"}
    assert ("GPU_FALLBACK" in flags) == (options.dla_core is not None and options.gpu_fallback)
    assert ("EXCLUDE_LEAN_RUNTIME" in flags) == options.exclude_lean_runtime


@pytest.mark.parametrize("version, accepted", [("10.3.0", True), ("10.16.1.4", True), ("11.4.0.7", True),
                                               ("9.3.0", False), ("8.6.1", False), ("12.0.0", False)])
def test_tensorrt_10_and_11_are_accepted_others_refused(version, accepted):
    from mke.runtime.tensorrt import check_tensorrt_version

    if accepted:
        check_tensorrt_version(version)
    else:
        with pytest.raises(MkeError, match=rf"TensorRT 10\.x or 11\.x and this machine has TensorRT {version}"):
            check_tensorrt_version(version)


def test_export_builds_the_fp16_engine_from_the_fp16_onnx(tmp_path, monkeypatch):
    """mke-export's engine step hands build_engine the `onnx-fp16` artifact, not the float32 `onnx`
    (build_engine is replaced by a recorder: what is tested is the choice of file)."""
    from types import SimpleNamespace

    import mke.export.tensorrt_build as tensorrt_build
    from mke.export.exporter import FORMATS, Artifact, Options, tensorrt_engines

    built = []

    class Stop(Exception):
        pass

    def record(onnx_path, out_dir, options, **kwargs):
        built.append((Path(onnx_path).name, options.precision))
        raise Stop

    monkeypatch.setattr(tensorrt_build, "import_tensorrt", lambda: None)
    monkeypatch.setattr(tensorrt_build, "build_engine", record)
    arts = [Artifact("student", FORMATS["onnx"], tmp_path / "student.onnx"),
            Artifact("student", FORMATS["onnx-fp16"], tmp_path / "student.fp16.onnx")]
    with pytest.raises(Stop):
        tensorrt_engines(SimpleNamespace(name="student", spec=None), None, arts, Options(out=tmp_path, fp16=True),
                         print, None)
    assert built == [("student.fp16.onnx", "fp16")]


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here; this pins the message for machines "
                                                  "without it")
def test_without_tensorrt_the_error_is_one_line_saying_where_to_build(tmp_path):
    with pytest.raises(MkeError) as err:
        build_engine(conv_onnx(tmp_path / "student.fp16.onnx", half=True), tmp_path)
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
    onnx_path = conv_onnx(tmp_path / "student.fp16.onnx", half=True)
    engine = build_engine(onnx_path, tmp_path, BuildOptions(precision="fp16"))
    name, cc = gpu_info()
    assert engine.name.startswith(f"student.fp16.trt{trt.__version__[:4]}")
    header, plan = read_engine(engine)
    assert engine_spec(header) == spec_for(1)
    assert (header["precision"], header["gpu"], header["compute_capability"]) == ("fp16", name, cc)
    assert header["strongly_typed"] is True
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

    onnx_path = conv_onnx(tmp_path / "student.fp16.onnx", batch="N", half=True)
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
    engine = build_engine(conv_onnx(tmp_path / "student.fp16.onnx", half=True), tmp_path,
                          BuildOptions(precision="fp16", dla_core=0))
    assert engine.name.endswith(".dla0.engine") and read_engine(engine)[0]["dla_core"] == 0


def test_networks_are_strongly_typed_and_fp16_engines_run_in_fp16(trt, tmp_path):
    from mke.export.tensorrt_build import _parse_onnx, verify_engine
    from mke.runtime.tensorrt import capturing_logger

    onnx_path = conv_onnx(tmp_path / "student.fp16.onnx", half=True)
    _builder, network, _parser = _parse_onnx(trt, capturing_logger(trt), onnx_path)
    if trt.__version__.startswith("10."):  # on 11 the flag is ignored: every network is strongly typed
        assert network.get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert network.get_input(0).dtype == trt.float32  # onnx_to_fp16 keeps FP32 inputs and outputs
    engine = build_engine(onnx_path, tmp_path, BuildOptions(precision="fp16"))
    feeds = {"rgb": np.random.default_rng(3).random((1, 3, 16, 16), np.float32)}
    report = verify_engine(engine, onnx_path, feeds, atol=2e-2, rtol=2e-2)
    assert report["logits"]["within_tolerance"], report
