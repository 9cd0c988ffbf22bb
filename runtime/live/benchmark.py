"""`mke-live --benchmark`: the pipeline's end-to-end throughput beside the model's own, in one run.

Before timing, up to `preload` frames of the source are read once into memory (`Preloaded`: for a
recording, the frames the SDK decoded and aligned). Each round then runs five measures, in an order
that rotates every round so that a busy machine slows all alike:

- model-only: the runner on one frame's inputs, `frames` times (the same runner and session as below),
  half just before and half just after
- end-to-end on the preloaded frames: the whole pipeline (capture hand-over, preprocessing, inference,
  decoding) fed by a source that outruns any model, so what it loses against model-only is the
  pipeline's own cost. **This is the target: ≥ 0.9× model-only, preprocessing ≤ 15 % of frame time.**
- source-only on the preloaded frames (their preprocessing, as fast as it goes);
- source-only and end-to-end on a fresh source as it reads (the SDK's playback decoding the recording,
  a video decoder, the renderer): what this source can deliver. A source slower than the model caps
  any pipeline, so this end-to-end figure is reported beside the target, against model-only and
  against the slower of model-only and source-only, not hidden and not used for the target.

Medians of the per-round figures are reported with the machine's load average: on a shared machine
compare the ratios, not the absolute FPS.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable

from mke.runtime.errors import MkeError
from mke.runtime.live.frame import Status
from mke.runtime.live.inputs import InputBuilder
from mke.runtime.live.pipeline import LivePipeline, PipelineOptions
from mke.runtime.live.sources.memory import DEFAULT_FRAMES, Preloaded

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
                               "or loop the recording (file://REC.db3?loop=1, or --loop)")
        return (frames - 1) / (time.perf_counter() - start)
    finally:
        source.close()


def _end_to_end(make_source: Callable, runner, frames: int) -> dict:
    source = make_source()
    if source.live:
        raise MkeError("--benchmark needs a source read as fast as the model takes it (a recording, a video file or "
                       "sim:// with --fast), so that the source does not set the pace")
    source.open()
    try:
        pipeline = LivePipeline(source, runner, options=PipelineOptions(max_frames=frames, stats_every_s=0),
                                log=lambda m: None)
        return pipeline.run()
    finally:
        source.close()


BLOCKS = ("target", "memory_source", "source", "e2e")


def run_benchmark(make_source: Callable, runner, frames: int = 200, rounds: int = 3, warmup: int = 20,
                  preload: int = DEFAULT_FRAMES, log: Callable[[str], None] = print) -> dict:
    """`make_source()` returns a new, unopened, non-live source each time it is called."""
    builder = InputBuilder(runner.spec)
    feeds = _first_feeds(make_source, builder)
    memory = Preloaded(make_source(), frames=min(preload, frames))
    memory.open()  # decoded once, here, before any timing
    _model_only(runner, feeds, warmup)
    _end_to_end(lambda: memory, runner, min(warmup, frames))
    rows = []
    half = max(1, frames // 2)
    for r in range(rounds):
        row = {}
        shift = r % len(BLOCKS)
        for what in BLOCKS[shift:] + BLOCKS[:shift]:
            if what == "target":
                # model-only brackets the end-to-end run (half before, half after), so that a neighbour's load
                # changing over seconds on a shared machine weighs on both alike
                start = time.perf_counter()
                _model_only(runner, feeds, half)
                before = time.perf_counter() - start
                summary = _end_to_end(lambda: memory, runner, frames)
                start = time.perf_counter()
                _model_only(runner, feeds, half)
                row["model_fps"] = 2 * half / (before + time.perf_counter() - start)
                row.update(memory_e2e_fps=summary["fps"], memory_preprocess_ms=summary["preprocess_ms"],
                           memory_e2e_model_ms=summary["model_ms"], memory_errors=summary["errors"])
            elif what == "source":
                row["source_fps"] = _source_only(make_source, builder, frames)
            elif what == "memory_source":
                row["memory_source_fps"] = _source_only(lambda: memory, builder, frames)
            else:
                summary = _end_to_end(make_source, runner, frames)
                if summary["frames"] < frames:
                    raise MkeError(f"the source ended after {summary['frames']} of {frames} frames: benchmark fewer "
                                   "frames (--frames) or loop the recording (file://REC.db3?loop=1, or --loop)")
                row.update(e2e_fps=summary["fps"], preprocess_ms=summary["preprocess_ms"],
                           e2e_model_ms=summary["model_ms"], errors=summary["errors"])
        # the target: the pipeline from frames in memory against the model alone
        row["ratio"] = row["memory_e2e_fps"] / row["model_fps"]
        row["preprocess_share"] = row["memory_preprocess_ms"] * row["memory_e2e_fps"] / 1000.0
        # the same through the source as it reads (the SDK decoding the recording), capped by that source
        row["source_ratio"] = row["e2e_fps"] / row["model_fps"]
        row["pipeline_efficiency"] = row["e2e_fps"] / min(row["model_fps"], row["source_fps"])
        row["source_preprocess_share"] = row["preprocess_ms"] * row["e2e_fps"] / 1000.0
        row["load_avg_1min"] = _load()
        rows.append(row)
        log(f"round {r + 1}/{rounds}: model-only {row['model_fps']:.1f} FPS | preloaded frames: end-to-end "
            f"{row['memory_e2e_fps']:.1f} FPS = {row['ratio']:.2f}x model-only, preprocessing "
            f"{row['memory_preprocess_ms']:.2f} ms = {100 * row['preprocess_share']:.1f} % of frame time "
            f"(source alone {row['memory_source_fps']:.0f} FPS) | source as read: {row['source_fps']:.1f} FPS alone, "
            f"end-to-end {row['e2e_fps']:.1f} FPS = {row['source_ratio']:.2f}x model-only, "
            f"{row['pipeline_efficiency']:.2f}x the slower of model and source | load {row['load_avg_1min']:.1f}")
    keys = [k for k in rows[0] if k not in ("errors", "memory_errors")]
    med = {k: statistics.median(row[k] for row in rows) for k in keys}
    return {"frames_per_round": frames, "preloaded_frames": len(memory._cache), "source": memory.source.name,
            "cpu_count": os.cpu_count(), "rounds": rows, "median": med,
            "errors": sum(row["errors"] + row["memory_errors"] for row in rows),
            "targets": {"e2e_over_model": E2E_TARGET, "preprocess_share": PREPROCESS_TARGET},
            "meets": {"e2e_over_model": med["ratio"] >= E2E_TARGET,
                      "preprocess_share": med["preprocess_share"] <= PREPROCESS_TARGET}}


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def benchmark_table(result: dict) -> str:
    m, t, ok = result["median"], result["targets"], result["meets"]
    n = result["preloaded_frames"]
    ratios = [row["ratio"] for row in result["rounds"]]
    return "\n".join([
        f"medians of {len(result['rounds'])} rounds of {result['frames_per_round']} frames; "
        f"{result['cpu_count']} CPUs, load average {m['load_avg_1min']:.1f}",
        "| measure | median | target | met |",
        "|---|---|---|---|",
        f"| model-only FPS (the same runner and session) | {m['model_fps']:.1f} | – | – |",
        f"| end-to-end FPS, {n} frames of the source preloaded into memory | {m['memory_e2e_fps']:.1f} | – | – |",
        f"| **end-to-end / model-only** (pipeline overhead; rounds {min(ratios):.2f}–{max(ratios):.2f}) "
        f"| {m['ratio']:.3f} | ≥ {t['e2e_over_model']} "
        f"| {'yes' if ok['e2e_over_model'] else 'NO'} |",
        f"| **preprocessing share of frame time** | {100 * m['preprocess_share']:.1f} % "
        f"({m['memory_preprocess_ms']:.2f} ms) | ≤ {100 * t['preprocess_share']:.0f} % "
        f"| {'yes' if ok['preprocess_share'] else 'NO'} |",
        f"| source-only FPS, preloaded frames (preprocessing) | {m['memory_source_fps']:.1f} | – | – |",
        f"| source-only FPS, the source as read (SDK playback / decoder + preprocessing) | {m['source_fps']:.1f} "
        "| – | – |",
        f"| end-to-end FPS, the source as read | {m['e2e_fps']:.1f} | – | – |",
        f"| end-to-end / model-only, the source as read | {m['source_ratio']:.3f} | – (capped by the source) | – |",
        f"| end-to-end / slower of model-only and source-only, the source as read | {m['pipeline_efficiency']:.3f} "
        "| – | – |",
        f"| preprocessing share, the source as read | {100 * m['source_preprocess_share']:.1f} % "
        f"({m['preprocess_ms']:.2f} ms) | – | – |",
    ])
