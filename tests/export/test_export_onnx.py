"""mke-export's ONNX path on a small TwoMoon run: parity, the embedded spec, the report, the errors."""
import json

import onnx
import pytest

from mke.export.exporter import Options, export_run
from mke.runtime.errors import MkeError
from mke.runtime.onnx_spec import read_onnx_spec
from mke.train.config import resolve_config
from mke.train.pipeline import run_mke

QUICK = ["seeds=1", "workers=1", "teacher.optim.epochs=300", "student.optim.epochs=300",
         "methods=[UM teacher, MM student]", "regularization.with_none=false",
         "regularization.settings={input_noise: {strong: 1.75}}"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs") / "twomoon"
    run_mke(resolve_config("twomoon", None, QUICK), root, progress=False)
    return root


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    report = export_run(run_dir, Options(out=out, fp16=True, int8=True, calib_samples=100, repeats=5), log=lambda m: None)
    return out, report


def test_every_artifact_matches_pytorch_within_its_tolerance(exported):
    out, report = exported
    rows = {(a["model"], a["format"], a["precision"]): a for a in report["artifacts"]}
    onnx_rows = {k: v for k, v in rows.items() if k[1] == "onnx"}
    assert {(m, p) for m, _, p in onnx_rows} == {(m, p) for m in ("teacher", "student")
                                                 for p in ("fp32", "fp16", "int8", "int8-cpu")}
    tolerance = {"fp32": 0.0, "fp16": 0.2, "int8": 1.0, "int8-cpu": 1.0}
    for (model, _, precision), row in onnx_rows.items():
        assert row["status"] == "ok"
        if precision == "fp32":
            assert row["parity"]["max_abs_diff"] <= 1e-4
        assert row["parity"]["reference_metric"] - row["metric"] <= tolerance[precision] + 1e-9
        assert row["latency_ms"] > 0 and row["fps"] > 0 and row["size_mb"] > 0
    # where TensorRT is absent, the engines are rows that say so rather than silence
    engines = [row for key, row in rows.items() if key[1] == "tensorrt"]
    assert len(engines) == 4 and all(r["status"] in ("ok", "not built: no TensorRT here") for r in engines)


def test_calibration_set_is_saved_by_input_name_and_reused(exported, run_dir):
    import numpy as np

    out, _ = exported
    with np.load(out / "calibration.student.npz") as z:
        assert sorted(z.files) == ["x", "y"] and z["x"].shape == (100, 1) and z["x"].dtype == np.float32
    stamp = (out / "calibration.student.npz").stat().st_mtime_ns
    export_run(run_dir, Options(out=out, int8=True, calib_samples=100, repeats=2), log=lambda m: None)
    assert (out / "calibration.student.npz").stat().st_mtime_ns == stamp


def test_report_json_has_the_documented_schema(exported):
    out, _ = exported
    report = json.loads((out / "export_report.json").read_text())
    assert set(report["reference"]) >= {"metric", "latency_ms"}
    for a in report["artifacts"]:
        assert set(a) >= {"path", "format", "precision", "status", "size_mb", "metric", "latency_ms", "fps"}
    assert "| student | onnx | fp32 | ok |" in (out / "export_report.md").read_text()


def test_a_task_whose_inputs_no_sensor_gives_prints_no_live_command(exported):
    out, _ = exported
    text = (out / "export_report.md").read_text()
    assert "No mke-live source gives what these models take (x, y)" in text and "`mke-live" not in text


def test_every_onnx_file_carries_its_spec(exported):
    out, _ = exported
    spec = read_onnx_spec(out / "student.fp16.onnx")
    assert spec.task == "twomoon" and spec.input_names == ["x", "y"] and spec.kind == "classification"
    assert spec.provenance["method"] == "MM student" and spec.provenance["regularization"]["strength"] == "strong"
    teacher = read_onnx_spec(out / "teacher.onnx")
    assert teacher.input_names == ["x"] and len(teacher.colors) == 2
    graph_inputs = [i.name for i in onnx.load(str(out / "student.onnx")).graph.input]
    assert graph_inputs == ["x", "y"]


def test_truncated_and_foreign_model_files_are_named(exported, tmp_path):
    out, _ = exported
    data = (out / "student.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(MkeError, match="cut.onnx is not a readable ONNX model"):
        read_onnx_spec(tmp_path / "cut.onnx")
    plain = onnx.load(str(out / "student.onnx"))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(MkeError, match="plain.onnx carries no MKE model spec"):
        read_onnx_spec(tmp_path / "plain.onnx")


def test_a_run_without_a_student_is_refused_before_anything_is_written(tmp_path):
    root = tmp_path / "teacher-only"
    run_mke(resolve_config("twomoon", None, QUICK[:4] + ["methods=[UM teacher, UM student]",
                                                          "regularization.with_none=false",
                                                          "regularization.settings={input_noise: {strong: 1.75}}"]),
            root, progress=False)
    with pytest.raises(MkeError, match="has no 'MM student' .* checkpoint for seed 0"):
        export_run(root, Options(out=tmp_path / "out"), log=lambda m: None)
    assert not (tmp_path / "out").exists()
