"""Run an ONNX artifact on the test split and compare it with the PyTorch model it came from."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mke.train.data import Split
from mke.train.metrics import score


def ort_session(path: str | Path, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_predict(session, split: Split, names: list[str], batch: int = 1) -> torch.Tensor:
    """Class scores for every sample, `batch` at a time (1 for static-shape models)."""
    outs = []
    n = len(split)
    for start in range(0, n, batch):
        feed = {m: split.inputs[m][start:start + batch].numpy() for m in names}
        outs.append(torch.from_numpy(np.asarray(session.run(None, feed)[0], dtype=np.float32)))
    return torch.cat(outs)


@dataclass
class Parity:
    max_abs_diff: float    # of the class scores, over every sample (and pixel)
    agreement: float       # % of samples (or pixels) whose argmax class agrees with PyTorch
    metric: float          # the task metric of the artifact on the test split
    reference_metric: float

    def to_dict(self) -> dict:
        return {k: round(float(v), 6) for k, v in self.__dict__.items()}


def parity(reference: torch.Tensor, logits: torch.Tensor, kind: str, targets: torch.Tensor) -> Parity:
    agree = (reference.argmax(1) == logits.argmax(1)).float().mean().item() * 100
    return Parity(float((reference - logits).abs().max()), agree, score(kind, logits, targets),
                  score(kind, reference, targets))


def interleaved_latency(runs: dict[str, Callable[[], object]], repeats: int = 50, warmup: int = 5) -> dict[str, dict]:
    """Median and p90 milliseconds of each callable, timed in turn within one loop so a shared, noisy
    machine affects all of them alike (compare ratios, not absolute figures)."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90))} for name, t in times.items()}
