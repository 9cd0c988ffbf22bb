"""INT8 within an accuracy budget: quantize everything; if the task metric drops by more than the
budget, keep the most sensitive nodes in FP32 — as few as the budget allows.

Cost on the caller's metric: one FP32 and one all-INT8 evaluation; then, nodes ranked once by
`mke.calib.sensitivity` (no evaluation), prefixes of the ranking grow 1, 2, 4, 8 … until one meets
the budget, and a bisection between the last two sizes finds the shortest prefix that does. For a
ranking of R nodes that is at most 2·log2(R) + 2 evaluations (16 for R = 118 on the test model).
Calibration runs once: every re-quantization reuses the cached tensor ranges.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import onnx

from mke.calib.quantize import (METADATA_KEY, QuantizeFn, is_pre_processed, merge_metadata,
                                prepare_for_quantization, quantization_record)
from mke.calib.reader import as_samples
from mke.calib.samples import load_onnx
from mke.calib.sensitivity import NodeSensitivity, rank_nodes
from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path

log = logging.getLogger(__name__)


@dataclass
class BudgetResult:
    path: Path                       # the INT8 model written
    metric: float                    # its metric
    fp32_metric: float
    excluded: list[str]              # node names kept in FP32, most sensitive first
    within_budget: bool
    budget: float
    evaluations: int                 # calls of `evaluate`
    history: list[tuple[int, float]] = field(default_factory=list)   # (nodes kept in FP32, metric) as tried
    ranking: list[NodeSensitivity] = field(default_factory=list)

    @property
    def drop(self) -> float:
        return self.fp32_metric - self.metric


def quantize_within_budget(model: str | os.PathLike, samples: Mapping[str, np.ndarray] | str | os.PathLike,
                           quantize: QuantizeFn, evaluate: Callable[[str], float], output: str | os.PathLike,
                           budget: float = 1.0, *, probe_samples: int = 8,
                           max_excluded: int | None = None,
                           calibration_cache: str | os.PathLike | None = None) -> BudgetResult:
    """Quantize `model` with `quantize` (e.g. quantize_int8 or quantize_int8_cpu, or a partial of them
    with another calibration method) so that `evaluate(onnx_path)` — the task metric, higher is
    better, e.g. mIoU in points — drops by at most `budget` from FP32.

    `evaluate` sees temporary files, deleted afterwards. The model written to `output` records the
    excluded nodes and both metrics in its metadata. If no prefix of the ranking meets the budget the
    best model found is written and `within_budget` is False: the caller decides.
    `calibration_cache`: a tensor-range file kept beyond this call (`mke.calib.quantize.quantize`'s),
    so that several recipes quantizing the same model on the same samples calibrate once; by
    default the ranges live as long as the search.
    """
    if not budget >= 0:
        raise MkeError(f"the accuracy budget is the largest allowed drop in the metric, ≥ 0; got {budget}")
    output = Path(output)
    source = load_onnx(model, load_external_data=False)
    samples = as_samples(samples, source)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.budget-", dir=output.parent) as work:
        work = Path(work)
        fp32 = Path(model) if is_pre_processed(source) else prepare_for_quantization(model, work / "fp32.onnx")
        cache = Path(calibration_cache) if calibration_cache is not None else work / "ranges.json"
        tried: dict[int, tuple[Path, float]] = {}
        history: list[tuple[int, float]] = []
        ranking: list[NodeSensitivity] = []

        def measure(path) -> float:
            value = float(evaluate(str(path)))
            if not math.isfinite(value):
                raise MkeError(f"evaluate({path}) returned {value}; the budget search needs a finite metric")
            return value

        fp32_metric = measure(model)
        evaluations = 1

        def attempt(k: int) -> float:
            nonlocal evaluations
            path = work / f"int8-{k}.onnx"
            quantize(fp32, samples, path, nodes_to_exclude=[r.name for r in ranking[:k]], calibration_cache=cache)
            metric = measure(path)
            evaluations += 1
            tried[k] = (path, metric)
            history.append((k, metric))
            log.info("INT8 with %d node(s) in FP32: metric %.4f (FP32 %.4f, budget %.4f)", k, metric, fp32_metric, budget)
            return metric

        def meets(metric: float) -> bool:
            return fp32_metric - metric <= budget

        best_k = 0
        if not meets(attempt(0)):
            ranking = rank_nodes(fp32, tried[0][0], samples, max_samples=probe_samples)
            limit = len(ranking) if max_excluded is None else min(len(ranking), max_excluded)
            lo, hi, k = 0, None, 1
            while k <= limit:
                if meets(attempt(k)):
                    hi = k
                    break
                lo = k
                k = limit if k < limit < 2 * k else 2 * k
            if hi is None:
                best_k = max(tried, key=lambda i: (tried[i][1], -i))
            else:
                while hi - lo > 1:  # shortest prefix that meets the budget, if the metric grows with it
                    mid = (lo + hi) // 2
                    if meets(attempt(mid)):
                        hi = mid
                    else:
                        lo = mid
                best_k = hi
        path, metric = tried[best_k]
        excluded = [r.name for r in ranking[:best_k]]
        quantized = onnx.load(str(path))
        record = quantization_record(quantized) or {}
        record.update({"fp32_metric": fp32_metric, "metric": metric, "budget": budget})
        merge_metadata(quantized, {METADATA_KEY: json.dumps(record)})
        with atomic_path(output) as tmp:
            onnx.save(quantized, str(tmp))
    result = BudgetResult(output, metric, fp32_metric, excluded, meets(metric), budget, evaluations, history, ranking)
    if not result.within_budget:
        log.warning("%s: INT8 loses %.3f (budget %.3f) even with %d node(s) in FP32", output, result.drop, budget,
                    len(excluded))
    return result
