"""`mke-live --benchmark`: the pipeline's end-to-end throughput beside the model's own, in one run.

Rounds alternate a model-only run (the runner on one frame's inputs, `frames` times) with an
end-to-end run (a fresh source read as fast as the pipeline takes it: capture, preprocessing,
inference, decoding, for `frames` frames) and swap their order each round, so a busy machine slows
both alike. Reported per round and as the median: e2e / model-only FPS (target ≥ 0.9) and the share
of frame time spent preprocessing (target ≤ 15 %).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

from mke.runtime.errors import MkeError
from mke.runtime.live.frame import Status
from mke.runtime.live.inputs import InputBuilder
from mke.runtime.live.pipeline import LivePipeline, PipelineOptions

E2E_TARGET = 0.9
PREPROCESS_TARGET = 0.15


def _first_feeds(make_source: Callable, builder: InputBuilder) -> dict:
    source = make_source()
    source.open()
    try:
        for _ in range(50):
            status, frame = source.read(1.0)
            if status is Status.OK:
                return builder(frame)
            if status in (Status.END, Status.ERROR):
                break
    finally:
        source.close()
    raise MkeError(f"{source.name} gave no frame to benchmark with")


def _model_only(runner, feeds: dict, frames: int) -> float:
    start = time.perf_counter()
    for _ in range(frames):
        runner.infer(feeds)
    return frames / (time.perf_counter() - start)


def _end_to_end(make_source: Callable, runner, frames: int) -> dict:
    source = make_source()
    if source.live:
        raise MkeError("--benchmark needs a source read as fast as the model takes it (a recording, files or sim "
                       "with --fast), so that the source does not set the pace")
    source.open()
    try:
        pipeline = LivePipeline(source, runner, options=PipelineOptions(max_frames=frames, stats_every_s=0),
                                log=lambda m: None)
        return pipeline.run()
    finally:
        source.close()


def run_benchmark(make_source: Callable, runner, frames: int = 200, rounds: int = 3, warmup: int = 20,
                  log: Callable[[str], None] = print) -> dict:
    """`make_source()` returns a new, unopened, non-live source each time it is called."""
    builder = InputBuilder(runner.spec)
    feeds = _first_feeds(make_source, builder)
    _model_only(runner, feeds, warmup)
    rows = []
    for r in range(rounds):
        order = ("model", "e2e") if r % 2 == 0 else ("e2e", "model")
        row = {}
        for what in order:
            if what == "model":
                row["model_fps"] = _model_only(runner, feeds, frames)
            else:
                summary = _end_to_end(make_source, runner, frames)
                if summary["frames"] < frames:
                    raise MkeError(f"the source ended after {summary['frames']} of {frames} frames: benchmark fewer "
                                   "frames (--frames) or loop the recording (--loop)")
                row.update(e2e_fps=summary["fps"], preprocess_ms=summary["preprocess_ms"],
                           e2e_model_ms=summary["model_ms"], errors=summary["errors"])
        row["ratio"] = row["e2e_fps"] / row["model_fps"]
        row["preprocess_share"] = row["preprocess_ms"] * row["e2e_fps"] / 1000.0
        rows.append(row)
        log(f"round {r + 1}/{rounds}: model-only {row['model_fps']:.1f} FPS, end-to-end {row['e2e_fps']:.1f} FPS "
            f"({row['ratio']:.2f}x), preprocessing {row['preprocess_ms']:.2f} ms = {100 * row['preprocess_share']:.1f} % "
            f"of frame time")
    med = {k: statistics.median(row[k] for row in rows)
           for k in ("model_fps", "e2e_fps", "ratio", "preprocess_ms", "preprocess_share")}
    return {"frames_per_round": frames, "rounds": rows, "median": med,
            "targets": {"e2e_over_model": E2E_TARGET, "preprocess_share": PREPROCESS_TARGET},
            "meets": {"e2e_over_model": med["ratio"] >= E2E_TARGET,
                      "preprocess_share": med["preprocess_share"] <= PREPROCESS_TARGET}}


def benchmark_table(result: dict) -> str:
    m, t, ok = result["median"], result["targets"], result["meets"]
    return "\n".join([
        "| measure | median | target | met |",
        "|---|---|---|---|",
        f"| model-only FPS | {m['model_fps']:.1f} | – | – |",
        f"| end-to-end FPS | {m['e2e_fps']:.1f} | – | – |",
        f"| end-to-end / model-only | {m['ratio']:.3f} | ≥ {t['e2e_over_model']} | {'yes' if ok['e2e_over_model'] else 'NO'} |",
        f"| preprocessing share of frame time | {100 * m['preprocess_share']:.1f} % ({m['preprocess_ms']:.2f} ms) "
        f"| ≤ {100 * t['preprocess_share']:.0f} % | {'yes' if ok['preprocess_share'] else 'NO'} |",
    ])
