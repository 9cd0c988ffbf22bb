"""One ONNX Runtime session factory (`mke.runtime.onnxrt`): its options, devices and messages, and
that every side of the product opens its sessions through it."""
import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

onnx = pytest.importorskip("onnx", reason="the test models are written with the onnx package")
from onnx import TensorProto, helper  # noqa: E402

from mke.runtime.errors import MkeError  # noqa: E402
from mke.runtime.onnxrt import ort_session, providers_for, session_options  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def double_model(path=None):
    """x (1, 4) → y = x + x."""
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "double",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 9
    if path is None:
        return proto.SerializeToString()
    onnx.save(proto, str(path))
    return path


def test_a_session_runs_with_the_threads_asked_for_and_no_spinning(tmp_path):
    session = ort_session(double_model(tmp_path / "m.onnx"), threads=2)
    opts = session.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL and opts.log_severity_level == 3
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session.get_providers() == ["CPUExecutionProvider"]
    x = np.arange(4, dtype=np.float32)[None]
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], 2 * x)


def test_options_for_timing_and_for_reading_a_graph_as_written():
    assert session_options().intra_op_num_threads == 0  # ONNX Runtime's own choice
    assert session_options(spinning=True).get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert session_options(optimize=False).graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with pytest.raises(MkeError, match="threads must be 0 .* or more, got -1"):
        session_options(-1)


def test_a_model_in_memory_is_named_in_its_error():
    assert ort_session(double_model()).get_inputs()[0].name == "x"
    with pytest.raises(MkeError, match=r"^probe graph is not a readable ONNX model \("):
        ort_session(b"not a model", name="probe graph")


def test_missing_and_unreadable_files_are_one_readable_error(tmp_path):
    with pytest.raises(MkeError, match=r"^model file .*absent\.onnx does not exist$"):
        ort_session(tmp_path / "absent.onnx")
    (tmp_path / "noise.onnx").write_bytes(b"\x08\x07 certainly not protobuf \xff\xfe" * 10)
    with pytest.raises(MkeError) as err:
        ort_session(tmp_path / "noise.onnx")
    message = str(err.value)
    assert re.match(r".*noise\.onnx is not a readable ONNX model \(\w+: ", message) and "\n" not in message


def test_devices():
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert providers_for("auto") == (["CUDAExecutionProvider"] if has_cuda else []) + ["CPUExecutionProvider"]
    with pytest.raises(MkeError, match="device must be one of cpu, cuda, auto, got 'gpu'"):
        providers_for("gpu")
    if not has_cuda:
        with pytest.raises(MkeError, match=r"has no CUDA provider \(it has .*CPUExecutionProvider.*\); install "
                                           r"onnxruntime-gpu"):
            providers_for("cuda")


def test_the_live_runner_opens_its_session_through_the_factory(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "live"))
    from tiny_models import seg_model

    from mke.runtime.live.backends import open_runner

    with open_runner(seg_model(tmp_path / "student.onnx"), "onnxruntime-cpu", threads=2) as runner:
        assert runner.session.get_session_options().intra_op_num_threads == 2
        assert runner.description.endswith("(CPUExecutionProvider, 2 threads)")


def test_no_other_module_opens_an_inference_session():
    """ONNX Runtime sessions come from one factory: runtime/onnxrt.py is the only caller of InferenceSession."""
    callers = sorted(str(p.relative_to(ROOT)) for side in ("runtime", "export", "calib", "train")
                     for p in (ROOT / side).rglob("*.py") if "InferenceSession(" in p.read_text(encoding="utf-8"))
    assert callers == ["runtime/onnxrt.py"]
