"""Rows 4 and 5: `mke-export --fp16 --int8` of the check's run (its ONNX checks, and TensorRT engines
where TensorRT imports, held to mke-export's own tolerances), each engine against ONNX Runtime, and
`mke-live --benchmark` on the student's engines and on ONNX Runtime's CUDA provider."""
from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

from mke.export.gpu_check.context import Context, Row, failed
from mke.export.gpu_check.machine import has_module
from mke.export.gpu_check.plan import (DRY_EXPORT_ARGS, DRY_LIVE_ARGS, ENGINE_FRAMES, EXPORT_ARGS, LIVE_ARGS,
                                       LIVE_INPUT)

STAGE = "mke-export --fp16 --int8"


def tensorrt_problem() -> str | None:
    """Why there can be no TensorRT rows here, or None."""
    if not has_module("tensorrt"):
        return "TensorRT absent (no module 'tensorrt')"
    from mke.export.tensorrt_build import import_tensorrt
    from mke.runtime.errors import MkeError

    try:
        import_tensorrt()
    except MkeError as exc:
        return str(exc)
    return None


def ort_cuda_problem() -> str | None:
    """Why ONNX Runtime cannot run on CUDA here (onnxruntime-gpu absent), or None."""
    if not has_module("onnxruntime"):
        return "onnxruntime absent"
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        return None
    return f"onnxruntime-gpu absent (onnxruntime {onnxruntime.__version__} has {', '.join(providers)})"


def stage_export(ctx: Context) -> tuple[list[Row], dict | None]:
    """mke-export in a subprocess; its report (export_report.json) for the rows after it."""
    missing = [m for m in ("onnx", "onnxruntime", "onnxscript", "onnxslim") if not has_module(m)]
    if missing:
        return [Row(STAGE, "skipped", f"{', '.join(missing)} absent",
                    "carry the wheels (Running it, below); the TensorRT rows need these exports")], None
    args = ["mke.export.cli", str(ctx.run_dir), "--out", str(ctx.export_dir),
            *(DRY_EXPORT_ARGS if ctx.dry_run else EXPORT_ARGS)]
    rc, seconds, line = ctx.run_module("export", args, 300)
    if rc != 0:
        return [failed(STAGE, rc, seconds, line)], None
    report = json.loads((ctx.export_dir / "export_report.json").read_text())
    return [onnx_row(report, seconds)], report


def onnx_row(report: dict, seconds: float) -> Row:
    """The student's ONNX files against its PyTorch model: mke-export's checks, ONNX Runtime on the CPU.
    An INT8 file over the budget is kept by mke-export (exit 0): reported as such, not as a failure."""
    reference = report["reference"]["metric"]
    arts = [a for a in report["artifacts"] if a["model"] == "student" and a["format"] == "onnx"]
    parts = [f"{a['precision']} {a['metric']:.2f} ({a['metric'] - reference:+.2f}) {a['status']}"
             if a["metric"] is not None else f"{a['precision']} {a['status']}" for a in arts]
    outside = [a["precision"] for a in arts if a["status"] != "ok"]
    return Row("mke-export: the student's ONNX files (ONNX Runtime, CPU)", "ok",
               f"{len(arts) - len(outside)} of {len(arts)} within mke-export's tolerances"
               + (f"; {', '.join(outside)} kept over the budget, as mke-export keeps it" if outside else ""),
               f"{report['metric']} on the test split, PyTorch {reference:.2f}: " + "; ".join(parts)
               + " (FP32 logits within 1e-4, FP16 within 0.2 points, INT8 within the budget)", seconds)


def engine_rows(ctx: Context, report: dict | None, problem: str | None) -> list[Row]:
    """One row per TensorRT engine mke-export built, or one per precision saying why there is none: its
    metric beside PyTorch's (mke-export's own check) and its ONNX source's, and its outputs against ONNX
    Runtime's on the same test frames."""
    if problem or report is None:
        why = problem or "no exports (the mke-export row)"
        return [Row(f"TensorRT {p} engines", "skipped", why) for p in ("FP16", "INT8")]
    from mke.export.cli import build_parser as export_parser
    from mke.export.artifacts import engine_tolerance

    budget = export_parser().get_default("budget")  # the check runs mke-export without --budget
    onnx_metric = {Path(a["path"]).name: a["metric"] for a in report["artifacts"] if a["format"] == "onnx"}
    rows = []
    for a in report["artifacts"]:
        if a["format"] != "tensorrt":
            continue
        stage = f"TensorRT {a['precision'].upper()} engine: {a['model']}"
        if a["status"] != "ok" or a["parity"] is None:
            rows.append(Row(stage, "failed", a["status"]))
            continue
        p, engine = a["parity"], Path(a["path"])
        tolerance = engine_tolerance(a["precision"], budget)
        start = time.monotonic()
        source = engine_source(engine)
        source_metric = onnx_metric.get(source.name) if source else None
        rows.append(Row(stage, "ok", f"{report['metric']} {p['metric']:.2f}, PyTorch {p['reference_metric']:.2f} "
                                     f"({p['metric'] - p['reference_metric']:+.2f}; mke-export's tolerance {tolerance})"
                                     + (f", {source.name} {source_metric:.2f}" if source_metric is not None else ""),
                        f"against PyTorch on the test split: max |Δ logits| {p['max_abs_diff']:.3g}, "
                        f"{p['agreement']:.2f} % of pixels agree; {compare_with_onnx(ctx.run_dir, engine, source, a['model'])}"
                        f"; {engine.name}", time.monotonic() - start))
    return rows


def engine_source(engine: Path) -> Path | None:
    """The ONNX file the engine was built from, beside it (its header names it), or None."""
    from mke.runtime.engine_file import read_header

    try:
        return engine.parent / read_header(engine)["onnx_file"]
    except Exception:
        return None


@lru_cache(maxsize=1)
def _run_context(run_dir: Path):
    from mke.export.run_models import load_run

    return load_run(run_dir)


def compare_with_onnx(run_dir: Path, engine: Path, source: Path | None, model: str) -> str:
    """`verify_engine` (the engine and ONNX Runtime on the same inputs, its tolerance atol = rtol = 1e-2)
    on the first test frames."""
    from mke.export.tensorrt_build import verify_engine

    if source is None or not source.is_file():
        return f"no ONNX source beside {engine.name} to compare it with"
    try:
        run = _run_context(run_dir)
        names = next(rm.spec.input_names for rm in run.models if rm.name == model)
        test = run.data.test
        worst, agree, within = 0.0, [], 0
        frames = min(ENGINE_FRAMES, len(test))
        for i in range(frames):
            feeds = {m: test.inputs[m][i:i + 1].numpy() for m in names}
            entries = list(verify_engine(engine, source, feeds).values())
            worst = max([worst] + [e["max_abs"] for e in entries])
            agree += [e.get("argmax_agreement", 1.0) for e in entries]
            within += all(e["within_tolerance"] for e in entries)
        return (f"against ONNX Runtime ({source.name}) on {frames} test frames: max |Δ| {worst:.3g}, {within} of "
                f"{frames} within 1e-2, {100 * min(agree):.2f} % of pixels agree on the worst")
    except Exception as exc:
        return f"the comparison with ONNX Runtime failed: {exc.__class__.__name__}: {str(exc)[:200]}"


def live_targets(ctx: Context, report: dict | None, trt_problem: str | None) -> list[tuple]:
    """(stage, model file, backend, why it cannot run or None) of each mke-live benchmark row."""
    built = {a["precision"]: Path(a["path"]) for a in (report or {}).get("artifacts", [])
               if a["model"] == "student" and a["format"] == "tensorrt" and a["status"] == "ok"}
    targets = []
    for precision in ("fp16", "int8"):
        why = trt_problem or (None if has_module("pycuda") else
                              "pycuda absent: mke-live's TensorRT backend holds its buffers in pycuda")
        if why is None and precision not in built:
            why = f"no {precision.upper()} engine (the TensorRT rows)"
        targets.append((f"mke-live --benchmark: the student's TensorRT {precision.upper()} engine",
                        built.get(precision), "tensorrt", why))
    fp16 = ctx.export_dir / "student.fp16.onnx"
    targets.append(("mke-live --benchmark: the student's FP16 ONNX on ONNX Runtime CUDA", fp16, "onnxruntime-cuda",
                    ort_cuda_problem() or (None if fp16.is_file() else "no student.fp16.onnx (the mke-export row)")))
    if ctx.dry_run:  # no GPU backend on a CPU: ONNX Runtime's CPU one runs the same plumbing
        fp32 = ctx.export_dir / "student.onnx"
        targets.append(("mke-live --benchmark: the student's ONNX on ONNX Runtime CPU (dry run)", fp32,
                        "onnxruntime-cpu", None if fp32.is_file() else "no student.onnx (the mke-export row)"))
    return targets


def stage_live(ctx: Context, stage: str, model: Path | None, backend: str, why: str | None) -> Row:
    if why is None and not has_module("pybullet"):
        why = "pybullet absent: no RGB-D source here (mke-live's sim:// renders with it)"
    if why:
        return Row(stage, "skipped", why)
    stats = ctx.work / f"live-{backend}-{model.stem}.json"
    args = ["mke.runtime.cli", str(model), "--backend", backend, "--input", LIVE_INPUT, "--benchmark",
            "--stats-json", str(stats), *(DRY_LIVE_ARGS if ctx.dry_run else LIVE_ARGS)]
    rc, seconds, line = ctx.run_module(f"live-{backend}-{model.stem}", args, 120)
    if rc != 0:
        return failed(stage, rc, seconds, line)
    return live_row(stage, json.loads(stats.read_text()), seconds)


def live_row(stage: str, result: dict, seconds: float) -> Row:
    m = result["median"]
    return Row(stage, "ok", f"model-only {m['model_fps']:.0f} FPS, end-to-end {m['memory_e2e_fps']:.0f} FPS "
                            f"({m['ratio']:.2f}×)",
               f"medians of {len(result['rounds'])} rounds of {result['frames_per_round']} frames of "
               f"{result['source']}, preloaded; preprocessing {100 * m['preprocess_share']:.1f} % of frame time; "
               f"the renderer as it reads: {m['source_fps']:.0f} FPS; {result.get('backend', '')}", seconds)
