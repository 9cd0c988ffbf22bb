"""`mke-export`: a run's teacher and fused student → ONNX FP32 / FP16, INT8 (TensorRT Q/DQ and ONNX
Runtime CPU), TensorRT engines where TensorRT exists — each artifact verified against PyTorch on the
test split and benchmarked beside it, then a report in the manner of `yolo benchmark`.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mke.runtime.errors import MkeError
from mke.runtime.fileio import write_json, write_text
from mke.export.artifacts import (FORMATS, FP16_METRIC_DROP, FP32_MAX_ABS_DIFF, Artifact, Parity,  # noqa: F401
                                  engine_tolerance, fail as _fail, markdown_table)
from mke.export.onnx_export import torch_to_onnx
from mke.export.onnx_fp16 import onnx_to_fp16
from mke.export.run_models import RunContext, RunModel, load_run
from mke.export.verify import ort_predict, ort_session, parity
from mke.runtime.timing import interleaved_latency
from mke.train.fit import predict


@dataclass
class Options:
    out: Path
    fp16: bool = False
    int8: bool = False
    calib_samples: int = 500
    calib_draw: str = "stratified"   # stratified by the teacher's pseudo labels of D_u, or random
    budget: float = 1.0
    dynamic_batch: bool = False
    seed: int | None = None
    student: str = "MM student"   # which of the run's students to export beside the teacher
    threads: int = 0
    repeats: int = 30
    tensorrt: bool = True


def _reference_logits(rm: RunModel, ctx: RunContext) -> torch.Tensor:
    return predict(rm.model, ctx.data.test.select(rm.spec.input_names), batch_size=32)


class Checker:
    """Parity of ONNX files against one model's PyTorch logits on the test split, each graph run once:
    the INT8 budget search and the artifact's own check meet the same graph (the written file differs
    from the one the search measured only in its metadata), so a second pass over the split is saved."""

    def __init__(self, rm: RunModel, ctx: RunContext, reference: torch.Tensor, opts: Options):
        self.rm, self.ctx, self.reference, self.opts = rm, ctx, reference, opts
        self.seen: dict[str, Parity] = {}

    def __call__(self, path: Path) -> Parity:
        import onnx

        key = hashlib.sha256(onnx.load(str(path), load_external_data=False).graph.SerializeToString()).hexdigest()
        if key not in self.seen:
            session = ort_session(path, self.opts.threads)
            logits = ort_predict(session, self.ctx.data.test, self.rm.spec.input_names,
                                 batch=32 if self.opts.dynamic_batch else 1)
            self.seen[key] = parity(self.reference, logits, self.ctx.task.kind, self.ctx.data.test.targets)
        return self.seen[key]


def export_model(rm: RunModel, ctx: RunContext, opts: Options, log, reference: torch.Tensor,
                 strata: "np.ndarray | None" = None) -> list[Artifact]:
    out = opts.out
    check = Checker(rm, ctx, reference, opts)
    arts = []
    fp32 = Artifact(rm.name, FORMATS["onnx"], out / f"{rm.name}.onnx")
    log(f"{rm.name}: exporting to ONNX (opset 18{', dynamic batch' if opts.dynamic_batch else ''})")
    torch_to_onnx(rm.model, rm.spec, fp32.path, dynamic_batch=opts.dynamic_batch)
    fp32.parity = check(fp32.path)
    if fp32.parity.max_abs_diff > FP32_MAX_ABS_DIFF:
        _fail(fp32, f"{fp32.path.name}: ONNX Runtime logits differ from PyTorch by {fp32.parity.max_abs_diff:.2e} "
                    f"(tolerance {FP32_MAX_ABS_DIFF:.0e}); the export is wrong, so it was removed")
    arts.append(fp32)
    calib = calibration_samples(rm, ctx, fp32, opts, strata) if opts.fp16 or opts.int8 else None
    if opts.fp16:
        half = Artifact(rm.name, FORMATS["onnx-fp16"], out / f"{rm.name}.fp16.onnx")
        log(f"{rm.name}: converting to FP16 ONNX")
        onnx_to_fp16(fp32.path, half.path)
        half.parity = check(half.path)
        drop = (fp32.parity.metric - half.parity.metric) * ctx.task.label_kind.points   # in points of full scale
        if drop > FP16_METRIC_DROP:
            _fail(half, f"{half.path.name}: FP16 loses {drop:.2f} points of {ctx.task.metric} against FP32 "
                        f"(tolerance {FP16_METRIC_DROP}); removed")
        arts.append(half)
    if opts.int8:
        arts += int8_artifacts(rm, ctx, fp32, opts, log, check, calib)
    return arts


def calibration_samples(rm: RunModel, ctx: RunContext, fp32: Artifact, opts: Options,
                        strata: "np.ndarray | None") -> Path:
    """`calibration.<model>.npz` beside the ONNX files: samples drawn from the run's unlabeled multimodal data
    (what the device will see; stratified by `strata`, `classes_shown`). They calibrate INT8 here, and on the
    device `mke-export <model>.onnx --fp16 / --int8` verifies its engines on them (`mke.export.from_onnx`)."""
    from mke.calib.samples import ensure_calibration

    arrays = {m: ctx.data.unlabeled.inputs[m] for m in rm.spec.input_names}   # only the drawn rows are read
    return ensure_calibration(opts.out / f"calibration.{rm.name}.npz", fp32.path, arrays, n=opts.calib_samples,
                              classes=strata)


SHOWN_SHARE = 0.005  # a frame shows a class when the teacher labels at least this share of its pixels with it


def classes_shown(ctx: RunContext) -> "np.ndarray | None":
    """(N, K) booleans: which classes the teacher's pseudo labels give each D_u sample (for a dense task,
    at least SHOWN_SHARE of its pixels) — the strata of the calibration draw; None without labels."""
    from mke.train.pseudo import PseudoLabelCache, pseudo_targets

    try:
        labels = PseudoLabelCache(ctx.run.pseudo_labels(ctx.seed)).load(ctx.run.teacher(ctx.seed))
    except MkeError:
        return None  # no labels beside this teacher: the draw is random
    hard, _ = pseudo_targets(labels, "hard", weighted=False)
    return ctx.task.label_kind.classes_shown(hard, len(ctx.data.class_names), SHOWN_SHARE).numpy()


def int8_artifacts(rm: RunModel, ctx: RunContext, fp32: Artifact, opts: Options, log, check: Checker,
                   calib: Path) -> list[Artifact]:
    """`int8` (TensorRT Q/DQ) and `int8-cpu` (ONNX Runtime CPU) from one calibration set (`calibration_samples`),
    each within the accuracy budget.
    Both recipes calibrate the same FP32 graph on the same samples: the tensor ranges are measured once."""
    from mke.calib.budget import quantize_within_budget
    from mke.calib.quantize import quantize_int8, quantize_int8_cpu

    points = ctx.task.label_kind.points   # the budget is in points of full scale: mAP 0.01 = 1 point

    def evaluate(path) -> float:
        if Path(path) == fp32.path:  # the budget's reference: measured already, the same way
            return fp32.parity.metric * points
        return check(Path(path)).metric * points

    arts = []
    with tempfile.TemporaryDirectory(prefix=f".{rm.name}.calibration-", dir=opts.out) as work:
        ranges = Path(work) / "ranges.json"
        for key, quantize in (("onnx-int8", quantize_int8), ("onnx-int8-cpu", quantize_int8_cpu)):
            art = Artifact(rm.name, FORMATS[key], opts.out / f"{rm.name}{FORMATS[key].suffix}")
            log(f"{rm.name}: quantizing to {art.fmt.precision} on {calib.name} (budget {opts.budget} points)")
            result = quantize_within_budget(fp32.path, calib, quantize, evaluate, art.path, budget=opts.budget,
                                            calibration_cache=ranges)
            art.parity = check(art.path)
            if result.excluded:
                art.notes.append(f"kept in FP32 to fit the budget: {', '.join(result.excluded)}")
            if not result.within_budget:
                art.status = f"over budget: -{result.drop:.2f} points"
            arts.append(art)
    return arts


def _trt_predict(engine: Path, split, names: list[str]) -> torch.Tensor:
    from mke.export.tensorrt_build import engine_runner

    outs = []
    with engine_runner(engine) as runner:
        for i in range(len(split)):
            feed = {m: split.inputs[m][i:i + 1].numpy() for m in names}
            outs.append(torch.from_numpy(next(iter(runner.infer(feed).values())).astype("float32")))
    return torch.cat(outs)


def check_engine(art: Artifact, metric: str, opts: Options) -> None:
    """A TensorRT engine's own tolerance against the PyTorch model on the test split: FP16 within
    FP16_METRIC_DROP points of its metric, INT8 within the accuracy budget. Outside it, the engine is
    removed and the export fails, as every failed check does."""
    tolerance = engine_tolerance(art.fmt.precision, opts.budget)
    drop = art.parity.reference_metric - art.parity.metric
    if drop > tolerance:
        _fail(art, f"{art.path.name}: the TensorRT engine loses {drop:.2f} points of {metric} against PyTorch "
                   f"(tolerance {tolerance}); removed")


def tensorrt_engines(rm: RunModel, ctx: RunContext, onnx_arts: list[Artifact], opts: Options, log,
                     reference: torch.Tensor) -> list[Artifact]:
    """FP16 / INT8 engines where TensorRT and a GPU are present; otherwise rows that say why not."""
    from mke.export.tensorrt_build import BuildOptions, build_engine, import_tensorrt

    wanted = [("engine-fp16", "onnx-fp16", "fp16")] if opts.fp16 else []  # strongly typed: precision is in the graph
    wanted += [("engine-int8", "onnx-int8", "int8")] if opts.int8 else []
    sources = {a.fmt.key: a for a in onnx_arts}
    arts = []
    try:
        import_tensorrt()
        missing = None
    except MkeError as exc:
        missing = str(exc)
    for key, source_key, precision in wanted:
        art = Artifact(rm.name, FORMATS[key], opts.out / f"{rm.name}{FORMATS[key].suffix}")
        source = sources.get(source_key)
        if missing or source is None:
            art.status = "not built: no TensorRT here" if missing else f"not built: no {source_key} artifact"
            arts.append(art)
            continue
        batch = (1, 1, 16) if opts.dynamic_batch else None
        art.path = build_engine(source.path, opts.out, BuildOptions(precision=precision, batch=batch), spec=rm.spec,
                                model_name=rm.name)
        art.parity = parity(reference, _trt_predict(art.path, ctx.data.test, rm.spec.input_names), ctx.task.kind,
                            ctx.data.test.targets)
        check_engine(art, ctx.task.metric, opts)
        arts.append(art)
    if missing and wanted:
        log(f"{rm.name}: {missing}")
    return arts


def readiness(onnx_arts: list[Artifact]) -> dict:
    """TensorRT 10 (and DLA) readiness of every ONNX artifact, checked without a GPU."""
    from mke.export.trt_readiness import check_onnx

    out = {}
    for art in onnx_arts:
        if art.fmt.precision == "int8-cpu" or not art.path.is_file():
            continue  # for ONNX Runtime on CPUs, not for TensorRT
        report = check_onnx(art.path, dla=True)
        out[art.path.name] = report
        if not report.ok:
            art.notes.append(f"TensorRT readiness: {len(report.errors)} error(s), see export_report.md")
    return out


def benchmark(arts: list[Artifact], rm: RunModel, ctx: RunContext, opts: Options) -> dict:
    """Latency of each ONNX artifact, batch 1, interleaved with one another; then PyTorch eager (the
    reference) on the same input, in a block of its own.

    PyTorch's OpenMP threads spin for a while after each call: interleaved with them, ONNX Runtime's
    FP32 session took 7.8–10.7 ms instead of 5.2–6.3 ms (RGB-D student, `small` encoder, 120×160,
    2 threads) while the INT8 one barely changed, which made int8-cpu look 0.31–0.40× FP32 instead
    of ≈0.55×. The artifacts' ratios to one another are the figures that matter; PyTorch's block
    runs right after them in the same run."""
    sample = ctx.data.test.take(torch.arange(1))
    feed = {m: sample.inputs[m].numpy() for m in rm.spec.input_names}
    torch_inputs = {m: sample.inputs[m] for m in rm.spec.input_names}
    model = rm.model.eval()
    if opts.threads:
        torch.set_num_threads(opts.threads)

    def torch_run():
        with torch.no_grad():
            model(**torch_inputs)

    runs = {}
    for art in arts:
        if art.fmt.format == "onnx" and art.path.is_file():
            session = ort_session(art.path, opts.threads)
            runs[art.fmt.key] = (lambda s=session: s.run(None, feed))
    timing = interleaved_latency(runs, repeats=opts.repeats) if runs else {}
    timing.update(interleaved_latency({"pytorch": torch_run}, repeats=opts.repeats))
    for art in arts:
        art.latency = timing.get(art.fmt.key)
    return timing["pytorch"]


def how_to_run(report: dict, ctx: RunContext) -> str:
    """The commands that run each student artifact live, as the task prints them (mke-live picks the
    backend from the file); a task whose inputs no live source gives says so instead."""
    lines = ["## Run them live", ""]
    for a in report["artifacts"]:
        if a["model"] == "student" and a["status"] == "ok":
            commands = ctx.task.live_commands(ctx.cfg, a["path"])
            if not commands:
                inputs = ", ".join(next(rm.spec.input_names for rm in ctx.models if rm.name == "student"))
                return "\n".join(lines + [f"No mke-live source gives what these models take ({inputs}); "
                                           "run the files with ONNX Runtime or TensorRT directly."])
            lines.append(f"- {a['precision']} ({a['runtime']}): " + " or ".join(f"`{c}`" for c in commands))
    return "\n".join(lines)


def export_run(run_dir: str | Path, opts: Options, log=print) -> dict:
    ctx = load_run(run_dir, opts.seed, opts.student)
    opts.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    artifacts, references, checks = [], [], {}
    strata = (classes_shown(ctx) if (opts.fp16 or opts.int8) and opts.calib_draw == "stratified"
              else None)  # read once, for both models
    for rm in ctx.models:
        reference = _reference_logits(rm, ctx)
        arts = export_model(rm, ctx, opts, log, reference, strata)
        checks.update(readiness(arts))
        if opts.tensorrt:
            arts += tensorrt_engines(rm, ctx, arts, opts, log, reference)
        log(f"{rm.name}: measuring latency (PyTorch and ONNX Runtime, interleaved, {opts.repeats} runs)")
        ref = benchmark(arts, rm, ctx, opts)
        references.append({"model": rm.name, "metric": arts[0].parity.reference_metric, "latency_ms": ref.median_ms})
        artifacts += arts
    student_ref = next(r for r in references if r["model"] == "student")
    report = {"run": str(ctx.run.root), "task": ctx.cfg["task"], "metric": ctx.task.metric,
              "reference": {"metric": student_ref["metric"], "latency_ms": student_ref["latency_ms"], "model": "student"},
              "references": references, "artifacts": [a.row() for a in artifacts],
              "tensorrt_readiness": {name: r.to_dict() for name, r in checks.items()},
              "calibration": {"samples": opts.calib_samples, "draw": opts.calib_draw} if opts.fp16 or opts.int8 else None,
              "machine": {"threads": opts.threads or torch.get_num_threads()},
              "seconds": round(time.perf_counter() - started, 1)}
    write_json(opts.out / "export_report.json", report)
    sections = [f"# Export of {ctx.run.root}", "", markdown_table(report), "", how_to_run(report, ctx), ""]
    sections += [r.to_markdown().replace("# TensorRT readiness", "## TensorRT readiness") for r in checks.values()]
    write_text(opts.out / "export_report.md", "\n".join(sections))
    return report
