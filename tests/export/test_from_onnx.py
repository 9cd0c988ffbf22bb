"""`mke-export <model>.onnx --fp16 / --int8` on a device without PyTorch: the ONNX files and the
calibration samples beside them are all it needs (mke.export.from_onnx)."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mke.calib.samples import save_calibration
from mke.export.artifacts import FORMATS, Artifact, Parity, agreement
from mke.export.from_onnx import check_engine, compare, model_files
from mke.runtime.errors import MkeError

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime" / "live"))
from tiny_models import seg_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))
from test_runtime_without_torch import BLOCK_TORCH  # noqa: E402

H, W, N = 24, 32, 40


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """What `mke-export <run> --int8` leaves for the device: student.onnx, student.int8.onnx and the samples."""
    from mke.calib.quantize import quantize_int8

    folder = tmp_path_factory.mktemp("exports")
    model = seg_model(folder / "student.onnx", H, W)
    rng = np.random.default_rng(0)
    samples = {"rgb": rng.normal(size=(N, 3, H, W)).astype(np.float32),
               "depth": rng.normal(size=(N, 1, H, W)).astype(np.float32)}
    save_calibration(folder / "calibration.student.npz", samples)
    quantize_int8(model, samples, folder / "student.int8.onnx")
    return folder


def run_without_torch(args, cwd):
    script = BLOCK_TORCH + textwrap.dedent(f"""
        from mke.export.cli import main
        code = main({[str(a) for a in args]!r})
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was imported"
        sys.exit(code)
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, cwd=cwd)


def test_engines_from_onnx_files_with_torch_unimportable(exported, tmp_path):
    out = tmp_path / "device"
    run = run_without_torch([exported / "student.onnx", "--fp16", "--int8", "--out", out, "--repeats", "3"], tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    report = json.loads((out / "engine_report.json").read_text())
    rows = {(a["format"], a["precision"]): a for a in report["artifacts"]}
    assert set(rows) == {("onnx", "fp16"), ("onnx", "int8"), ("tensorrt", "fp16"), ("tensorrt", "int8")}
    assert (out / "student.fp16.onnx").is_file()  # converted here: the workstation had not written one
    assert rows[("onnx", "fp16")]["metric"] > 99 and rows[("onnx", "int8")]["metric"] > 80
    assert rows[("onnx", "fp16")]["latency_ms"] > 0 and report["references"][0]["latency_ms"] > 0
    assert report["samples"] == {"file": "calibration.student.npz", "count": N}
    assert set(report["tensorrt_readiness"]) == {"student.fp16.onnx", "student.int8.onnx"}
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert rows[("tensorrt", "fp16")]["status"] == "not built: no TensorRT here"
        assert "TensorRT is not installed here" in run.stdout
    table = (out / "engine_report.md").read_text()
    assert "| student | onnx | fp32 | reference |" in table and "## TensorRT readiness" in table


def test_the_precision_of_the_given_file_is_built_without_flags(exported, tmp_path):
    run = run_without_torch([exported / "student.int8.onnx", "--out", tmp_path, "--repeats", "2"], tmp_path)
    assert run.returncode == 0, run.stderr
    rows = json.loads((tmp_path / "engine_report.json").read_text())["artifacts"]
    assert [(a["format"], a["precision"]) for a in rows] == [("onnx", "int8"), ("tensorrt", "int8")]


@pytest.mark.parametrize("remove, args, says", [
    ("calibration.student.npz", ["--fp16"], "calibration.student.npz is missing"),
    ("student.int8.onnx", ["--int8"], "student.int8.onnx is missing"),
])
def test_what_the_device_needs_is_named_when_missing(exported, tmp_path, remove, args, says):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(exported, folder)
    (folder / remove).unlink()
    run = run_without_torch([folder / "student.onnx", *args], tmp_path)
    assert run.returncode == 2 and says in run.stderr
    assert not (folder / "engine_report.json").exists()


def test_run_only_options_and_foreign_onnx_are_refused(exported, tmp_path):
    from mke.export.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(exported / "student.onnx"), "--seed", "1"])
    assert exc.value.code == 2
    import onnx

    proto = onnx.load(str(exported / "student.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "other.onnx"))
    assert main([str(tmp_path / "other.onnx"), "--fp16"]) == 2


def test_model_files_and_agreement():
    name, files = model_files(Path("/x/student.int8.onnx"))
    assert name == "student" and files["onnx"] == Path("/x/student.onnx")
    assert files["onnx-fp16"] == Path("/x/student.fp16.onnx")
    _, own = model_files(Path("/x/mine.onnx"))
    assert own["onnx"] == Path("/x/mine.onnx")
    a = np.array([[[[2.0, 0.0]], [[1.0, 3.0]]]])           # 1 × 2 classes × 1 × 2 pixels: classes 0, 1
    b = np.array([[[[2.0, 4.0]], [[1.0, 3.0]]]])           # classes 0, 0
    assert agreement("segmentation", a, b) == 50.0
    assert agreement("multilabel", np.array([[1.0, -1.0]]), np.array([[2.0, 1.0]])) == 50.0


def test_an_engine_outside_its_tolerance_is_removed(tmp_path):
    ref = np.zeros((1000, 3), np.float32)
    ref[:, 0] = 1.0
    engine = ref.copy()
    engine[:3, 1] = 2.0                                     # 0.3 % of predictions flip
    for precision, budget, kept in (("fp16", 1.0, False), ("int8", 1.0, True), ("int8", 0.2, False)):
        path = tmp_path / f"student.{precision}.engine"
        path.write_bytes(b"plan")
        art = Artifact("student", FORMATS[f"engine-{precision}"], path)
        art.parity = compare("classification", engine, ref, ref)
        assert art.parity.agreement == pytest.approx(99.7)
        if kept:
            check_engine(art, "student.int8.onnx", budget)
            assert path.is_file()
        else:
            with pytest.raises(MkeError, match="disagrees with student"):
                check_engine(art, "student.x.onnx", budget)
            assert not path.exists()
    assert isinstance(art.parity, Parity)
