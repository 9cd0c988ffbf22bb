"""Side-by-side ONNX Runtime latency: interleaved runs, per-model median and p90, clear errors."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mke.calib.benchmark import benchmark_onnx, format_table, main, random_inputs
from mke.runtime.errors import MkeError


def conv_model(path, channels):
    """x (1, 3, 16, 16) → `channels`-wide 3×3 Conv → Relu: more channels, more work."""
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [channels, 3, 3, 3], rng.standard_normal(channels * 27).tolist())
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
                               helper.make_node("Relu", ["y"], ["out"])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_every_model_gets_median_and_p90_over_the_same_runs(tmp_path):
    small, large = conv_model(tmp_path / "small.onnx", 4), conv_model(tmp_path / "large.onnx", 64)
    results = benchmark_onnx([small, large], random_inputs(small), runs=12, warmup=2, threads=1)
    assert list(results) == [str(small), str(large)]
    for lat in results.values():
        assert lat.runs == 12 and 0 < lat.median_ms <= lat.p90_ms
    table = format_table(results)
    assert "| small.onnx |" in table and "| 1.00 |" in table


def test_inputs_default_to_random_and_must_cover_every_model(tmp_path):
    model = conv_model(tmp_path / "m.onnx", 4)
    assert random_inputs(model)["x"].shape == (1, 3, 16, 16)
    assert benchmark_onnx([model], runs=2, warmup=0, threads=1)[str(model)].runs == 2
    with pytest.raises(MkeError, match=r"inputs \['x'\] are not in the benchmark inputs \['y'\]"):
        benchmark_onnx([model], {"y": np.zeros((1, 3, 16, 16), np.float32)}, runs=1)
    with pytest.raises(MkeError, match="no such ONNX model"):
        benchmark_onnx([tmp_path / "absent.onnx"], runs=1)
    with pytest.raises(MkeError, match="threads"):
        benchmark_onnx([model], runs=1, threads=0)


def test_command_line_prints_a_table(tmp_path, capsys):
    model = conv_model(tmp_path / "m.onnx", 4)
    assert main([str(model), "--runs", "3", "--warmup", "0", "--threads", "1"]) == 0
    assert "| m.onnx |" in capsys.readouterr().out
    assert main([str(tmp_path / "absent.onnx"), "--runs", "1"]) == 2
