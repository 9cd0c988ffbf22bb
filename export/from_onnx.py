"""`mke-export student.onnx --fp16 / --int8`: TensorRT engines built on the device from the exported ONNX
files, with no PyTorch, no run folder and no training data there.

The workstation's `mke-export <run> --fp16 --int8` leaves beside each model's ONNX files the samples it
drew from the run's unlabeled multimodal data (`calibration.<model>.npz`). On the Jetson this module reads
the model spec from the ONNX file, builds each engine from the ONNX file that carries its precision (the
FP16 ONNX, converted here from the FP32 one if it was not copied; the Q/DQ ONNX for INT8), runs the
engine and ONNX Runtime on those samples, holds the engine to its tolerance against the ONNX file it was
built from (FP16: at most FP16_METRIC_DROP points of disagreement; INT8: at most the budget), times
everything side by side and writes the export table (`engine_report.md` / `.json`).

Without labels on the device, an artifact's "metric" here is its agreement with the FP32 ONNX model's
predictions on the samples (% of samples, or pixels, with the same class; per class for multilabel).
Only `mke.runtime` and torch-free modules of `mke.export` and `mke.calib` are imported.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mke.calib.samples import load_calibration, model_inputs
from mke.export.artifacts import FORMATS, Artifact, Parity, agreement, engine_tolerance, fail, markdown_table
from mke.export.trt_readiness import check_onnx, model_stem
from mke.runtime.errors import MkeError
from mke.runtime.fileio import write_json, write_text
from mke.runtime.onnx_spec import read_onnx_spec
from mke.runtime.onnxrt import ort_session
from mke.runtime.spec import ModelSpec
from mke.runtime.timing import interleaved_latency

REPORT = "engine_report"
METRIC = "agreement %"
ENGINES = {"fp16": ("engine-fp16", "onnx-fp16"), "int8": ("engine-int8", "onnx-int8")}  # precision → (row, source)


@dataclass
class OnnxOptions:
    out: Path | None = None      # default: the ONNX file's folder
    fp16: bool = False
    int8: bool = False
    budget: float = 1.0          # INT8 engine: largest disagreement with the Q/DQ ONNX, in points
    threads: int = 0
    repeats: int = 30
    tensorrt: bool = True


def model_files(path: Path) -> tuple[str, dict[str, Path]]:
    """The model's name and its ONNX files beside `path` by format key (`student.int8.onnx` → "student",
    {"onnx": student.onnx, "onnx-fp16": student.fp16.onnx, "onnx-int8": student.int8.onnx})."""
    name = model_stem(path)
    files = {key: path.parent / f"{name}{FORMATS[key].suffix}" for key in ("onnx", "onnx-fp16", "onnx-int8")}
    if path not in files.values():  # a name of the user's own: it is the model's FP32 file
        files["onnx"] = path
    return name, files


def wanted_precisions(path: Path, files: dict[str, Path], opts: OnnxOptions) -> list[str]:
    """--fp16 / --int8, or without either the precision the given file carries (none for the FP32 file)."""
    wanted = [p for p, on in (("fp16", opts.fp16), ("int8", opts.int8)) if on]
    if not wanted:
        wanted = [p for p, (_, source) in ENGINES.items() if files[source] == path]
    return wanted


def compare(kind: str, logits: np.ndarray, source: np.ndarray, reference: np.ndarray) -> Parity:
    """An artifact against the ONNX file it was made from (`source`: max |Δ| and agreement) and against the
    FP32 ONNX (`reference`: the metric)."""
    return Parity(max_abs_diff=float(np.abs(logits.astype(np.float64) - source).max(initial=0.0)),
                  agreement=agreement(kind, source, logits), metric=agreement(kind, reference, logits),
                  reference_metric=100.0)


def check_engine(art: Artifact, source: str, budget: float) -> None:
    """Hold an engine to its tolerance against the ONNX file it was built from, on the samples: outside
    it, the engine is removed and the export fails, as on the workstation."""
    tolerance = engine_tolerance(art.fmt.precision, budget)
    lost = 100.0 - art.parity.agreement
    if lost > tolerance:
        fail(art, f"{art.path.name}: the TensorRT engine disagrees with {source} on {lost:.2f} % of the "
                  f"calibration samples' predictions (tolerance {tolerance} points); removed")


class Samples:
    """The calibration samples as feeds: each input cast to the dtype the model declares, one sample at a
    time (static shapes are exported with a batch of 1)."""

    def __init__(self, path: Path, model: Path):
        self.path = path
        self.arrays = load_calibration(path, model)
        self.count = len(next(iter(self.arrays.values())))

    def feeds(self, model: Path):
        dtypes = {name: i.dtype for name, i in model_inputs(model).items()}
        for k in range(self.count):
            yield {name: a[k:k + 1].astype(dtypes[name], copy=False) for name, a in self.arrays.items()}

    def first(self, model: Path) -> dict:
        return next(self.feeds(model))


def ort_outputs(path: Path, samples: Samples, threads: int):
    """(session, first output on every sample stacked) with ONNX Runtime on the CPU, the reference runtime."""
    session = ort_session(path, threads)
    name = session.get_outputs()[0].name
    out = np.concatenate([np.asarray(session.run([name], feed)[0], np.float32) for feed in samples.feeds(path)])
    return session, out


def export_onnx_file(onnx_path: str | Path, opts: OnnxOptions, log=print) -> dict:
    started = time.perf_counter()
    path = Path(onnx_path)
    if path.suffix != ".onnx" or not path.is_file():
        raise MkeError(f"{path}: expected an ONNX file written by mke-export (e.g. exports/rgbd/student.onnx)")
    spec = read_onnx_spec(path)
    name, files = model_files(path)
    out = opts.out or path.parent
    out.mkdir(parents=True, exist_ok=True)
    wanted = wanted_precisions(path, files, opts)
    reference = files["onnx"] if files["onnx"].is_file() else path
    calib = path.parent / f"calibration.{name}.npz"
    if not calib.is_file():
        raise MkeError(f"{calib} is missing: engines are verified on the samples `mke-export <run> --fp16` (or "
                       f"--int8) writes beside {name}.onnx on the workstation; copy it here with the ONNX files")
    if "int8" in wanted and not files["onnx-int8"].is_file():
        raise MkeError(f"{files['onnx-int8']} is missing: INT8 engines are built from the Q/DQ ONNX the workstation "
                       f"calibrates (`mke-export <run> --int8`); copy it here (TensorRT no longer calibrates)")
    if "fp16" in wanted and not files["onnx-fp16"].is_file():
        if not files["onnx"].is_file():
            raise MkeError(f"{files['onnx-fp16']} is missing and so is {files['onnx'].name} to convert it from: "
                           f"copy the ONNX files `mke-export <run> --fp16` wrote")
        files["onnx-fp16"] = out / f"{name}.fp16.onnx"
        log(f"{name}: converting {files['onnx'].name} to FP16 ONNX")
        from mke.export.onnx_fp16 import onnx_to_fp16

        onnx_to_fp16(files["onnx"], files["onnx-fp16"])
    samples = Samples(calib, reference)
    log(f"{name}: running {reference.name} with ONNX Runtime on {samples.count} samples from {calib.name}")
    ref_session, ref_logits = ort_outputs(reference, samples, opts.threads)

    arts, sessions, outputs = [], {}, {}
    for precision in wanted:
        _, source_key = ENGINES[precision]
        art = Artifact(name, FORMATS[source_key], files[source_key])
        sessions[source_key], outputs[source_key] = ort_outputs(art.path, samples, opts.threads)
        art.parity = compare(spec.kind, outputs[source_key], ref_logits, ref_logits)
        arts.append(art)
    readiness = {a.path.name: check_onnx(a.path, dla=True) for a in arts}
    for art in arts:
        report = readiness[art.path.name]
        if not report.ok:
            art.notes.append(f"TensorRT readiness: {len(report.errors)} error(s), see {REPORT}.md")

    engines = build_engines(spec, name, files, wanted, samples, outputs, ref_logits, out, opts, log) \
        if opts.tensorrt else []
    timing = time_all(reference, ref_session, arts, sessions, engines, samples, opts, log)
    for art in arts + engines:
        art.latency = timing.get(art.fmt.key)

    report = {"source": str(path), "task": spec.task, "metric": METRIC,
              "metric_note": f"agreement with {reference.name}'s predictions on the {samples.count} samples of "
                             f"{calib.name}",
              "references": [{"model": name, "format": "onnx", "metric": 100.0,
                              "latency_ms": timing["reference"].median_ms, "for": "ONNX Runtime CPU, the reference"}],
              "artifacts": [a.row() for a in arts + engines],
              "tensorrt_readiness": {n: r.to_dict() for n, r in readiness.items()},
              "samples": {"file": calib.name, "count": samples.count},
              "machine": {"host": platform.node(), "machine": platform.machine(), "threads": opts.threads or os.cpu_count()},
              "seconds": round(time.perf_counter() - started, 1)}
    write_json(out / f"{REPORT}.json", report)
    sections = [f"# Engines from {path.name}", "", f"{METRIC}: {report['metric_note']}.", "", markdown_table(report), ""]
    sections += [r.to_markdown().replace("# TensorRT readiness", "## TensorRT readiness") for r in readiness.values()]
    write_text(out / f"{REPORT}.md", "\n".join(sections))
    return report


def build_engines(spec: ModelSpec, name: str, files: dict[str, Path], wanted: list[str], samples: Samples,
                  outputs: dict[str, np.ndarray], ref_logits: np.ndarray, out: Path, opts: OnnxOptions,
                  log) -> list[Artifact]:
    """Each wanted engine, built from the ONNX file of its precision and checked against it; without
    TensorRT, rows that say so."""
    from mke.export.tensorrt_build import BuildOptions, build_engine, engine_runner, import_tensorrt

    try:
        import_tensorrt()
        missing = None
    except MkeError as exc:
        missing = str(exc).split(":")[0]
        log(f"{name}: {missing}: the ONNX files were checked; engines are built where TensorRT and the GPU are")
    arts = []
    for precision in wanted:
        key, source_key = ENGINES[precision]
        source = files[source_key]
        art = Artifact(name, FORMATS[key], out / f"{name}{FORMATS[key].suffix}")
        if missing:
            art.status = "not built: no TensorRT here"
            arts.append(art)
            continue
        dynamic = any(d is None for i in model_inputs(source).values() for d in i.shape[:1])
        log(f"{name}: building the {precision} engine from {source.name}")
        art.path = build_engine(source, out, BuildOptions(precision=precision, batch=(1, 1, 16) if dynamic else None),
                                spec=spec, model_name=name)
        with engine_runner(art.path) as runner:
            logits = np.concatenate([np.asarray(next(iter(runner.infer(feed).values())), np.float32)
                                     for feed in samples.feeds(source)])
        art.parity = compare(spec.kind, logits, outputs[source_key], ref_logits)
        art.notes.append(f"built from {source.name}; agrees with it on {art.parity.agreement:.2f} % of predictions")
        check_engine(art, source.name, opts.budget)
        arts.append(art)
    return arts


def time_all(reference: Path, ref_session, arts: list[Artifact], sessions: dict, engines: list[Artifact],
             samples: Samples, opts: OnnxOptions, log) -> dict:
    """Latency at batch 1 of the reference, each ONNX file and each engine, interleaved with one another."""
    feed = samples.first(reference)
    runs = {"reference": lambda: ref_session.run(None, feed)}
    for art in arts:
        runs[art.fmt.key] = (lambda s=sessions[art.fmt.key], f=samples.first(art.path): s.run(None, f))
    runners = []
    try:
        for art in engines:
            if art.path.is_file() and art.path.suffix == ".engine":
                from mke.export.tensorrt_build import engine_runner

                runner = engine_runner(art.path).__enter__()
                runners.append(runner)
                runs[art.fmt.key] = (lambda r=runner: r.infer(feed))
        log(f"measuring latency ({', '.join(runs)}; interleaved, {opts.repeats} runs)")
        return interleaved_latency(runs, repeats=opts.repeats)
    finally:
        for runner in runners:
            runner.__exit__(None, None, None)
