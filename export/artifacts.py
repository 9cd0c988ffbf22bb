"""What `mke-export` writes and reports, and the tolerances each artifact is held to — torch-free, so
the workstation's export of a run (`mke.export.exporter`) and the device's build from an ONNX file
(`mke.export.from_onnx`) write one table in one way."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.timing import Latency

FP32_MAX_ABS_DIFF = 1e-4   # logits, FP32 ONNX against PyTorch
FP16_METRIC_DROP = 0.2     # points (1/100 of the metric's full scale: mAP 0.002), FP16 ONNX (and FP16 engine) against FP32


@dataclass(frozen=True)
class Format:
    """One row of the export table: what an artifact is and which runtime it is for."""

    key: str
    suffix: str
    format: str
    precision: str
    runtime: str


FORMATS = {f.key: f for f in [
    Format("onnx", ".onnx", "onnx", "fp32", "ONNX Runtime (CPU or GPU)"),
    Format("onnx-fp16", ".fp16.onnx", "onnx", "fp16", "ONNX Runtime (GPU), TensorRT"),
    Format("onnx-int8", ".int8.onnx", "onnx", "int8", "TensorRT (explicit Q/DQ, symmetric)"),
    Format("onnx-int8-cpu", ".int8-cpu.onnx", "onnx", "int8-cpu", "ONNX Runtime CPU (robots without a GPU)"),
    Format("engine-fp16", ".fp16.engine", "tensorrt", "fp16", "TensorRT on the GPU that built it"),
    Format("engine-int8", ".int8.engine", "tensorrt", "int8", "TensorRT on the GPU that built it"),
]}


@dataclass
class Parity:
    max_abs_diff: float    # of the class scores, over every sample (and pixel)
    agreement: float       # % of samples (or pixels) whose predicted class agrees with the reference
    metric: float          # the artifact's metric: the task metric on the test split, or (on the device)
                           # its agreement with the FP32 ONNX on the calibration samples
    reference_metric: float

    def to_dict(self) -> dict:
        return {k: round(float(v), 6) for k, v in self.__dict__.items()}


@dataclass
class Artifact:
    model: str
    fmt: Format
    path: Path
    status: str = "ok"
    parity: Parity | None = None
    notes: list[str] = field(default_factory=list)
    latency: Latency | None = None

    def row(self) -> dict:
        ms = None if self.latency is None else self.latency.median_ms
        return {"model": self.model, "path": str(self.path), "format": self.fmt.format, "precision": self.fmt.precision,
                "runtime": self.fmt.runtime, "status": self.status,
                "size_mb": round(self.path.stat().st_size / 1e6, 3) if self.path.is_file() else None,
                "metric": None if self.parity is None else round(self.parity.metric, 4),
                "latency_ms": None if ms is None else round(ms, 3), "fps": None if not ms else round(1000 / ms, 1),
                "parity": None if self.parity is None else self.parity.to_dict(), "notes": self.notes}


METRIC_NAMES = {"accuracy": "accuracy %", "miou": "mIoU %", "map": "mAP"}   # the table's column names


def predictions(kind: str, logits: np.ndarray) -> np.ndarray:
    """What a model predicts from its scores (classes in axis 1): the class, or for multilabel each class's
    yes / no at probability 0.5."""
    return logits > 0 if kind == "multilabel" else logits.argmax(axis=1)


def agreement(kind: str, reference: np.ndarray, other: np.ndarray) -> float:
    """% of predictions (samples, pixels, or sample × class for multilabel) on which two models agree."""
    return float((predictions(kind, reference) == predictions(kind, other)).mean() * 100)


def fail(art: Artifact, message: str) -> None:
    """Parity out of tolerance: the artifact is wrong, so it is removed and the export fails."""
    art.path.unlink(missing_ok=True)
    raise MkeError(message)


def engine_tolerance(precision: str, budget: float) -> float:
    """Points an engine may lose against its reference: FP16_METRIC_DROP for FP16, the INT8 budget for INT8."""
    return FP16_METRIC_DROP if precision == "fp16" else budget


def markdown_table(report: dict) -> str:
    """The export table: the reference rows (PyTorch on the workstation, the FP32 ONNX on the device), then
    one row per artifact."""
    metric = METRIC_NAMES.get(report["metric"], report["metric"])
    digits = ".3f" if report["metric"] == "map" else ".2f"   # mAP is 0–1: a third decimal is its 0.1 point
    lines = ["| model | format | precision | status | size MB | " + metric + " | latency ms | FPS | for |",
             "|---|---|---|---|---|---|---|---|---|"]

    def f(v, spec):
        return "–" if v is None else format(v, spec)

    for r in report["references"]:
        ms = r.get("latency_ms")
        lines.append(f"| {r['model']} | {r.get('format', 'pytorch')} | fp32 | reference | – | {r['metric']:{digits}} | "
                     f"{f(ms, '.2f')} | {f(1000 / ms if ms else None, '.1f')} | "
                     f"{r.get('for', 'training, the reference')} |")
    for a in report["artifacts"]:
        lines.append(f"| {a['model']} | {a['format']} | {a['precision']} | {a['status']} | {f(a['size_mb'], '.2f')} | "
                     f"{f(a['metric'], digits)} | {f(a['latency_ms'], '.2f')} | {f(a['fps'], '.1f')} | {a['runtime']} |")
    return "\n".join(lines)
