"""The GPU check (`scripts/gpu_check.sh`, `mke.export.gpu_check`) where there is no GPU: it stops at once
without writing, its pure parts (tables, versions, the machine's readings, the rows it makes of the
project's reports) and how its rooms travel; a CPU dry run runs every stage end to end."""
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mke.export.gpu_check import engines, plan, rooms
from mke.export.gpu_check.context import Context, Row, last_line
from mke.export.gpu_check.machine import PACKAGES, package_version, parse_lscpu, parse_nvidia_smi
from mke.export.gpu_check.report import (RECIPE, machine_table, markdown_table, not_run_markdown, report_markdown,
                                         write_report)
from mke.runtime.errors import MkeError

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
DOCS = REPO / "docs" / "gpu.md"
no_gpu_here = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU: the check would run")

LSCPU = """Architecture:             x86_64
CPU(s):                   2
Model name:               Intel(R) Xeon(R) Processor
Flags:                    fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16 hypervisor
"""
SMI_QUERY = "NVIDIA H200, 580.159.03, 143771 MiB\n"
SMI_BANNER = "| NVIDIA-SMI 580.159.03    Driver Version: 580.159.03    CUDA Version: 13.0     |\n"


def env(gpu=True) -> dict:
    packages = {label: None for label, _, _ in PACKAGES} | {"torch": "2.11.0", "onnx": "1.23.1",
                                                            "onnxruntime": "1.30.0"}
    out = {"date": "2026-12-02 10:00 UTC", "python": "3.12.3 (/opt/torch/.venv/bin/python3)", "packages": packages,
           "cpu": parse_lscpu(LSCPU), "torch_cuda": "13.0", "cudnn": 91300,
           "onnxruntime_providers": ["CPUExecutionProvider"]}
    if gpu:
        out["gpu"] = {"name": "NVIDIA H200", "capability": "9.0", "memory_mib": 143771, "count": 1}
        out["driver"] = parse_nvidia_smi(SMI_QUERY, SMI_BANNER)
    return out


def sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def script(*args, timeout=120, **env_vars):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHON": sys.executable, **env_vars})


# --------------------------------------------------------------------------- no GPU: stop, write nothing

@no_gpu_here
def test_without_a_cuda_gpu_the_script_stops_at_once_and_writes_nothing(tmp_path):
    before = sha(DOCS)
    start = time.monotonic()
    done = script("--out", str(tmp_path / "gpu.md"), "--work", str(tmp_path / "work"))
    assert done.returncode == 1
    assert "no CUDA GPU: " in done.stderr and "sees no CUDA GPU" in done.stderr and "nothing was run" in done.stderr
    assert time.monotonic() - start < 60
    assert not (tmp_path / "gpu.md").exists() and not (tmp_path / "work").exists() and sha(DOCS) == before


@no_gpu_here
def test_the_python_entry_point_refuses_too(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mke.export.gpu_check", "--out", str(tmp_path / "gpu.md"),
                           "--work", str(tmp_path / "work")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no CUDA GPU: " in done.stderr
    assert not (tmp_path / "gpu.md").exists() and not (tmp_path / "work").exists()


def test_a_checkout_that_is_not_installed_goes_on_the_path_as_links(tmp_path):
    """A Python that has torch but no mke-edge (the GPU machine's): the script links the checkout in."""
    import site

    wrapper = tmp_path / "python"  # this venv's packages without its .pth files: no editable install of mke-edge
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{site.getsitepackages()[0]}${{PYTHONPATH:+:$PYTHONPATH}}" '
                       f'exec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    done = script("--help", PYTHON=str(wrapper))
    assert done.returncode == 0, done.stderr
    assert "this checkout is on PYTHONPATH as the mke package" in done.stderr
    assert "--cpu-dry-run" in done.stdout


def test_wheels_must_be_there(tmp_path):
    done = script("--cpu-dry-run", "--wheels", str(tmp_path))
    assert done.returncode == 2 and "no .whl files there" in done.stderr


# --------------------------------------------------------------------------- the page

def test_the_table_marks_what_did_not_run_and_keeps_its_cells():
    table = markdown_table([Row("training", "ok", "812 samples/s", "a | b", 12.34),
                            Row("TensorRT FP16 engines", "skipped", "TensorRT absent"),
                            Row("mke-export", "failed", "exit status 2: boom")])
    lines = table.splitlines()
    assert lines[0] == "| # | stage | result | detail | s |" and len(lines) == 5
    assert lines[2] == "| 1 | training | 812 samples/s | a \\| b | 12.3 |"
    assert lines[3] == "| 2 | TensorRT FP16 engines | **skipped**: TensorRT absent | – | – |"
    assert "**failed**: exit status 2: boom" in lines[4]


def test_the_machine_readings():
    cpu = parse_lscpu(LSCPU)
    assert (cpu["model"], cpu["cpus"]) == ("Intel(R) Xeon(R) Processor", "2")
    assert cpu["relevant_flags"] == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert parse_nvidia_smi(SMI_QUERY, SMI_BANNER) == {"name": "NVIDIA H200", "driver": "580.159.03",
                                                       "memory": "143771 MiB", "driver_cuda": "13.0"}
    assert parse_nvidia_smi(None, None) == {}


def test_versions_say_absent_rather_than_guess():
    assert package_version("mke_no_such_module", ("mke-no-such-dist",)) is None
    assert package_version("numpy", ("numpy",)) == np.__version__
    assert package_version("mke", ("mke-no-such-dist",)) is not None  # found, its version read some other way


def test_the_machine_section_names_gpu_driver_cuda_libraries_and_cpu():
    table = machine_table(env())
    for text in ("| GPU | NVIDIA H200 (×1), 143771 MiB, compute capability 9.0 |", "| driver | 580.159.03, CUDA 13.0 |",
                 "2.11.0 (CUDA 13.0, cuDNN 91300)", "| ONNX Runtime | 1.30.0 (CPUExecutionProvider) |",
                 "| TensorRT | absent |", "| pycuda | absent |", "avx512_bf16"):
        assert text in table
    assert "| GPU | none: a CPU dry run |" in machine_table(env(gpu=False))


def test_the_report_is_written_whole_and_says_how_to_run_it_again(tmp_path):
    rows = [Row("training", "ok", "812 samples/s"), Row("mke-export", "failed", "exit status 2: boom")]
    text = report_markdown(env(), rows, 123.4, dry_run=False, budget_s=450)
    out = tmp_path / "docs" / "gpu.md"
    write_report(out, text)
    assert out.read_text() == text and [p.name for p in out.parent.iterdir()] == ["gpu.md"]
    assert "2026-12-02 10:00 UTC in 123 s" in text and "1 stage(s) failed: mke-export" in text
    assert RECIPE in text and "CPU dry run" not in text
    assert "**A CPU dry run**" in report_markdown(env(False), rows, 1.0, dry_run=True, budget_s=450)


def test_docs_gpu_md_is_either_the_not_run_page_or_a_check_s_report():
    text = DOCS.read_text()
    assert text == not_run_markdown() or ("## Results" in text and RECIPE in text and "CPU dry run" not in text)


def test_a_log_s_error_line_is_what_a_failed_row_quotes(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("$ python -m x\nworking\nmke-export: error: the engine lost 3 points\n\nreport: …\n")
    assert last_line(log) == "mke-export: error: the engine lost 3 points"
    log.write_text("one\ntwo\n")
    assert last_line(log) == "two"


# --------------------------------------------------------------------------- what the check runs

def test_the_check_s_config_resolves_and_calibrates_within_its_rooms(tmp_path):
    cfg = plan.check_config(False, tmp_path)
    assert (cfg["device"], cfg["precision"], cfg["seeds"], cfg["workers"]) == ("cuda", "auto", 1, 1)
    assert cfg["methods"] == ["UM teacher", "MM student"] and cfg["data"]["recording"]["frames"] == 0
    assert cfg["data"]["cache_dir"] == "data/cache/gpu-check"
    calib = int(plan.EXPORT_ARGS[plan.EXPORT_ARGS.index("--calib-samples") + 1])
    assert calib <= cfg["data"]["unlabeled"]["frames"]
    dry = plan.check_config(True, tmp_path)
    assert dry["device"] == "cpu" and dry["data"]["cache_dir"] == str(tmp_path / "cache")
    assert dry["pseudo_labels"]["tta"] == {}


def _fake_rooms(cfg: dict) -> Path:
    from mke.train.datasets.builtin_rgbd import SPLITS, cache_dir

    folder = cache_dir(cfg["data"])
    folder.mkdir(parents=True)
    for name in SPLITS:
        np.savez(folder / f"{name}.npz", rgb=np.zeros((1, 2, 2, 3), np.uint8))
    return folder


def test_the_rooms_travel_as_an_archive_to_a_machine_without_pybullet(tmp_path, monkeypatch):
    here, there = tmp_path / "here", tmp_path / "there"
    monkeypatch.setattr(rooms, "check_config", lambda dry_run, work: plan.check_config(True, here))
    folder = _fake_rooms(plan.check_config(True, here))
    archive = rooms.pack_data(tmp_path / "rooms.tar.xz", here)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == sorted(f"{folder.name}/{p.name}" for p in folder.iterdir())

    monkeypatch.setattr(rooms, "has_module", lambda name: name != "pybullet")
    ctx = Context(dry_run=False, work=tmp_path / "work", deadline=time.monotonic() + 60,
                  cfg=plan.check_config(True, there))
    row = rooms.stage_data(ctx, archive)
    assert (row.status, row.result) == ("ok", f"unpacked from {archive}") and "32 frames at 160×120" in row.detail
    assert rooms.data_ready(there / "cache" / folder.name)

    ctx.cfg = plan.check_config(True, tmp_path / "elsewhere")
    row = rooms.stage_data(ctx, tmp_path / "missing.tar.xz")
    assert row.status == "failed" and "pybullet is absent and none were carried" in row.result


def test_an_archive_of_other_rooms_is_refused(tmp_path):
    other = tmp_path / "rgbd-000000000000"
    other.mkdir()
    (other / "labeled.npz").write_bytes(b"x")
    archive = tmp_path / "rooms.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(other / "labeled.npz", arcname=f"{other.name}/labeled.npz")
    with pytest.raises(MkeError, match="not the rooms this check uses.*--pack-data"):
        rooms.unpack_data(archive, tmp_path / "cache" / "rgbd-68e031cf5b4e")


# --------------------------------------------------------------------------- rows from the project's reports

def _report(engine_status="ok") -> dict:
    parity = {"max_abs_diff": 0.012, "agreement": 99.91, "metric": 38.95, "reference_metric": 39.0}
    arts = [{"model": "student", "format": "onnx", "precision": p, "status": s, "metric": m, "path": f"student{x}.onnx",
             "parity": None} for p, s, m, x in (("fp32", "ok", 39.0, ""), ("fp16", "ok", 39.0, ".fp16"),
                                                ("int8", "over budget: -1.20 points", 37.8, ".int8"))]
    arts += [{"model": "student", "format": "tensorrt", "precision": p, "status": engine_status,
              "metric": 38.95, "path": f"/x/student.{p}.trt10.3.0.h200.engine",
              "parity": parity if engine_status == "ok" else None} for p in ("fp16", "int8")]
    return {"metric": "miou", "reference": {"metric": 39.0}, "artifacts": arts}


def test_the_onnx_row_reports_an_int8_file_over_budget_as_mke_export_keeps_it():
    row = engines.onnx_row(_report(), 42.0)
    assert row.status == "ok" and row.result.startswith("2 of 3 within mke-export's tolerances; int8 kept over")
    assert "PyTorch 39.00: fp32 39.00 (+0.00) ok" in row.detail and "int8 37.80 (-1.20) over budget" in row.detail


def test_engine_rows_hold_each_engine_to_mke_export_s_tolerance(monkeypatch, tmp_path):
    ctx = Context(dry_run=False, work=tmp_path, deadline=time.monotonic() + 60)
    assert [(r.stage, r.status, r.result) for r in engines.engine_rows(ctx, None, "TensorRT absent (no module)")] == [
        ("TensorRT FP16 engines", "skipped", "TensorRT absent (no module)"),
        ("TensorRT INT8 engines", "skipped", "TensorRT absent (no module)")]
    monkeypatch.setattr(engines, "compare_with_onnx", lambda run_dir, engine, source, model: "against ONNX Runtime: fine")
    monkeypatch.setattr(engines, "engine_source", lambda engine: Path("/x") / f"student.{engine.name.split('.')[1]}.onnx")
    fp16, int8 = engines.engine_rows(ctx, _report(), None)
    assert fp16.stage == "TensorRT FP16 engine: student" and fp16.status == "ok"
    assert fp16.result == "miou 38.95, PyTorch 39.00 (-0.05; mke-export's tolerance 0.2), student.fp16.onnx 39.00"
    assert "99.91 % of pixels agree; against ONNX Runtime: fine" in fp16.detail
    assert "tolerance 1.0" in int8.result
    broken = engines.engine_rows(ctx, _report("not built: no onnx-int8 artifact"), None)
    assert [r.status for r in broken] == ["failed", "failed"]


def test_mke_live_rows_need_tensorrt_pycuda_an_engine_and_pybullet(monkeypatch, tmp_path):
    ctx = Context(dry_run=False, work=tmp_path, deadline=time.monotonic() + 60)
    monkeypatch.setattr(engines, "ort_cuda_problem", lambda: "onnxruntime-gpu absent")
    why = {stage: reason for stage, _, _, reason in engines.live_targets(ctx, _report(), "TensorRT absent")}
    assert list(why.values()) == ["TensorRT absent", "TensorRT absent", "onnxruntime-gpu absent"]
    monkeypatch.setattr(engines, "has_module", lambda name: name != "pycuda")
    assert all("pycuda absent" in t[3] for t in engines.live_targets(ctx, _report(), None)[:2])
    monkeypatch.setattr(engines, "has_module", lambda name: name != "pybullet")
    fp16 = engines.live_targets(ctx, _report(), None)[0]
    assert fp16[1:] == (Path("/x/student.fp16.trt10.3.0.h200.engine"), "tensorrt", None)
    row = engines.stage_live(ctx, *fp16)
    assert row.status == "skipped" and "pybullet absent" in row.result


def test_the_live_row_reads_mke_live_s_benchmark_json():
    result = {"frames_per_round": 200, "source": "sim rooms from seed 0 at 160x120", "backend": "TensorRT 10.3.0",
              "rounds": [{}, {}, {}], "median": {"model_fps": 2400.4, "memory_e2e_fps": 1800.2, "ratio": 0.75,
                                                 "preprocess_share": 0.12, "source_fps": 140.0}}
    row = engines.live_row("mke-live", result, 30.0)
    assert row.result == "model-only 2400 FPS, end-to-end 1800 FPS (0.75×)"
    assert "3 rounds of 200 frames" in row.detail and "12.0 % of frame time" in row.detail


# --------------------------------------------------------------------------- every stage, on the CPU

@pytest.mark.slow
def test_a_cpu_dry_run_runs_every_stage_and_reports_what_it_cannot(tmp_path):
    before = sha(DOCS)
    done = script("--cpu-dry-run", "--work", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {r["stage"]: r["status"] for r in report["rows"]}
    assert report["dry_run"] and sha(DOCS) == before
    ok = [s for s, v in status.items() if v == "ok"]
    assert len(ok) == 8 and "failed" not in status.values()
    assert [s.split(": ")[-1] for s in ok if "steady state" in s] == ["UM teacher", "MM student"]
    assert status["mke-live --benchmark: the student's ONNX on ONNX Runtime CPU (dry run)"] == "ok"
    skipped = {r["stage"]: r["result"] for r in report["rows"] if r["status"] == "skipped"}
    if not torch.cuda.is_available():
        assert "mke-live --benchmark: the student's FP16 ONNX on ONNX Runtime CUDA" in skipped
    page = (tmp_path / "gpu.md").read_text()
    assert "**A CPU dry run**" in page and "| GPU | none: a CPU dry run |" in page and "samples/s" in page
