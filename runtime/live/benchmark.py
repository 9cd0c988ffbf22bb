"""`mke-live --benchmark`: the pipeline's end-to-end throughput beside the model's own, in one run.

Each round runs, in an order that rotates every round so a busy machine slows all alike:
model-only (the runner on one frame's inputs, `frames` times), source-only (a fresh source read
and preprocessed as fast as possible, no model) and end-to-end (a fresh source through the whole
pipeline: capture, preprocessing, inference, decoding). Reported per round and as medians:
e2e / model-only FPS (target ≥ 0.9), e2e / the slower of model-only and source-only (what the
pipeline itself costs: a source slower than the model caps any pipeline) and the share of frame
time spent preprocessing (target ≤ 15 %).
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


def _source_only(make_source: Callable, builder: InputBuilder, frames: int) -> float:
    source = make_source()
    source.open()
    try:
        start, n = None, 0
        while n < frames:
            status, frame = source.read(1.0)
            if status is Status.OK:
                builder(frame)
                n += 1
                start = start or time.perf_counter()   # steady throughput, as for end-to-end: from the first frame
            elif status in (Status.END, Status.ERROR):
                raise MkeError(f"the source ended after {n} of {frames} frames: benchmark fewer frames (--frames) "
                               "or loop the recording (--loop)")
        return (frames - 1) / (time.perf_counter() - start)
    finally:
        source.close()


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
    kinds = ["model", "source", "e2e"]
    for r in range(rounds):
        row = {}
        for what in kinds[r % 3:] + kinds[:r % 3]:
            if what == "model":
                row["model_fps"] = _model_only(runner, feeds, frames)
            elif what == "source":
                row["source_fps"] = _source_only(make_source, builder, frames)
            else:
                summary = _end_to_end(make_source, runner, frames)
                if summary["frames"] < frames:
                    raise MkeError(f"the source ended after {summary['frames']} of {frames} frames: benchmark fewer "
                                   "frames (--frames) or loop the recording (--loop)")
                row.update(e2e_fps=summary["fps"], preprocess_ms=summary["preprocess_ms"],
                           e2e_model_ms=summary["model_ms"], errors=summary["errors"])
        row["ratio"] = row["e2e_fps"] / row["model_fps"]
        row["pipeline_efficiency"] = row["e2e_fps"] / min(row["model_fps"], row["source_fps"])
        row["preprocess_share"] = row["preprocess_ms"] * row["e2e_fps"] / 1000.0
        rows.append(row)
        log(f"round {r + 1}/{rounds}: model-only {row['model_fps']:.1f} FPS, source-only {row['source_fps']:.1f} FPS, "
            f"end-to-end {row['e2e_fps']:.1f} FPS ({row['ratio']:.2f}x model-only, {row['pipeline_efficiency']:.2f}x "
            f"the slower of the two), preprocessing {row['preprocess_ms']:.2f} ms = "
            f"{100 * row['preprocess_share']:.1f} % of frame time")
    med = {k: statistics.median(row[k] for row in rows)
           for k in ("model_fps", "source_fps", "e2e_fps", "ratio", "pipeline_efficiency", "preprocess_ms",
                     "preprocess_share")}
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
        f"| source-only FPS (capture + preprocessing) | {m['source_fps']:.1f} | – | – |",
        f"| end-to-end FPS | {m['e2e_fps']:.1f} | – | – |",
        f"| end-to-end / model-only | {m['ratio']:.3f} | ≥ {t['e2e_over_model']} | {'yes' if ok['e2e_over_model'] else 'NO'} |",
        f"| end-to-end / slower of model-only and source-only | {m['pipeline_efficiency']:.3f} | – | – |",
        f"| preprocessing share of frame time | {100 * m['preprocess_share']:.1f} % ({m['preprocess_ms']:.2f} ms) "
        f"| ≤ {100 * t['preprocess_share']:.0f} % | {'yes' if ok['preprocess_share'] else 'NO'} |",
    ])
