"""`mke-live`: stream a source chosen by URI (`--input realsense://`, a recording, a camera, `sim://`;
`--audio mic://`) into the student."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from mke.runtime.errors import MkeError

EPILOG = """examples:
  mke-live student.onnx --input data/cache/rgbd-*/replay.db3 --headless --save out.mp4 --jsonl predictions.jsonl
  mke-live student.onnx --input realsense://                 # the first RealSense camera, overlay window
  mke-live student.onnx --input 'sim://?seed=3' --headless --frames 300   # no hardware at all
  mke-live exports/av/student.onnx --input v4l2:///dev/video0 --audio mic://  # webcam + default microphone
  mke-live exports/av/student.onnx --input csi://0 --audio mic://2            # a Jetson CSI camera + the second microphone
  mke-live student.onnx --input 'file://rec.db3?loop=1' --benchmark     # quote a URI with ? or & in a shell

{sources}

The source flags of earlier versions (--sensor, --serial, --replay, --record, --loop, --camera, --video,
--sim-seed, --mic, --mic-rate, --mic-channels, --wav) still work: they are aliases that build these URIs
(each one's help above says which), e.g. --replay rec.db3 --loop = --input 'file://rec.db3?loop=1'.

exit status: 0 the stream ended, the frame limit was reached or it was interrupted (Ctrl-C);
2 bad options, model or input; 3 the device was lost (after --retries); 4 the model kept failing.
docs/live.md explains every option."""


def _epilog() -> str:
    """EPILOG with the registered sources: what each URI gives (`--list-inputs` adds their options)."""
    from mke.runtime.live.sources import registered_sources

    entries = registered_sources()
    width = max(len(e.form) for e in entries)
    lines = ["sources (mke-live --list-inputs adds what each is and its options):"]
    for role in ("input", "audio"):
        lines += [f"  --{role} {e.form:<{width}}  {', '.join(sorted(e.modalities))}"
                  for e in entries if e.role == role]
    return EPILOG.format(sources="\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    from mke.runtime.live.backends import backend_names
    from mke.runtime.live.sources.aliases import SENSORS

    p = argparse.ArgumentParser(
        prog="mke-live", epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run an exported MKE student live on a robot: RealSense RGB-D, camera + microphone, a "
                    "recording or the built-in simulator, with an overlay window or headless outputs.")
    p.add_argument("model", type=Path, nargs="?",
                   help="an exported model (.onnx, or a TensorRT .engine from mke-export)")
    src = p.add_argument_group("source")
    src.add_argument("--input", metavar="URI",
                     help="where the frames come from: realsense://[SERIAL], file://REC.db3, v4l2:///dev/video0, "
                          "csi://0, rtsp://…, a video file, sim://?seed=N (the full list below)")
    src.add_argument("--audio", metavar="URI",
                     help="sound beside the frames: mic://[DEVICE] or file://X.wav (each frame gets the window of "
                          "audio that ends at it)")
    src.add_argument("--list-inputs", action="store_true", help="list the sources, what each gives and its options")
    src.add_argument("--fast", action="store_true",
                     help="recordings, files and sim as fast as the model takes them (every frame, none dropped) "
                          "instead of at their own pace")
    alias = p.add_argument_group("aliases of --input / --audio", "the source flags of earlier versions, kept: each "
                                 "builds the URI shown")
    alias.add_argument("--sensor", choices=list(SENSORS),
                       help="--input realsense:// | v4l2://… | file://VIDEO | sim:// "
                            "(default: realsense when --replay is given, files when --video is)")
    alias.add_argument("--serial", help="--sensor realsense --serial S = --input realsense://S")
    alias.add_argument("--replay", type=Path, help="--replay F = --input file://F (a .db3, or .bag from older SDKs)")
    alias.add_argument("--record", type=Path, help="--sensor realsense --record F = --input realsense://?record=F")
    alias.add_argument("--loop", action="store_true", help="--replay F --loop = --input file://F?loop=1")
    alias.add_argument("--camera", help="--sensor camera --camera X = --input v4l2://X for an index (0) or "
                                        "device path (/dev/video0); X itself for a URL; file://X for a video file")
    alias.add_argument("--video", type=Path, help="--sensor files --video V = --input file://V")
    alias.add_argument("--sim-seed", type=int, help="--sensor sim --sim-seed N = --input sim://?seed=N")
    alias.add_argument("--wav", type=Path, help="--wav F = --audio file://F")
    alias.add_argument("--mic", nargs="?", const="default", help="--mic [DEVICE] = --audio mic://[DEVICE]")
    alias.add_argument("--mic-rate", type=int, help="--mic --mic-rate R = --audio mic://?rate=R")
    alias.add_argument("--mic-channels", type=int, help="--mic --mic-channels C = --audio mic://?channels=C")
    run = p.add_argument_group("inference")
    run.add_argument("--backend", choices=backend_names(),
                     help="force a backend (default: by the model file's suffix; ONNX Runtime uses CUDA when it can)")
    run.add_argument("--threads", type=int, default=0, help="ONNX Runtime CPU threads (default: its own choice)")
    run.add_argument("--frames", type=int, help="stop after this many results (benchmark: frames per round)")
    run.add_argument("--retries", type=int, default=3, help="reopen a failed device this often before giving up")
    run.add_argument("--inject-faults", metavar="SPEC",
                     help="e.g. zero_depth=0.02,nan_depth=0.02,drop=0.05,underrun=0.05,seed=0 (and lose_at=N)")
    out = p.add_argument_group("output")
    out.add_argument("--headless", action="store_true", help="no window")
    out.add_argument("--save", type=Path, help="write the annotated video here (.mp4)")
    out.add_argument("--jsonl", type=Path, help="write one JSON line of predictions per processed frame here")
    out.add_argument("--stats-json", type=Path, help="write the run's summary (or the benchmark's result) here")
    out.add_argument("--stats-every", type=float, default=5.0, help="seconds between stats lines (0: none)")
    out.add_argument("--alpha", type=float, default=0.5, help="opacity of the segmentation colours (0..1)")
    out.add_argument("--truth", type=Path, metavar="FILE.json",
                     help="score the model at the moments this file names against their truth (the built-in "
                          "replay.json): accuracy of the top class, or for a multilabel model mAP and exact "
                          "matches: train/serve agreement on a recording")
    bench = p.add_argument_group("benchmark")
    bench.add_argument("--benchmark", action="store_true",
                       help="end-to-end vs model-only throughput and the preprocessing share, side by side")
    bench.add_argument("--rounds", type=int, default=3, help="benchmark rounds (default 3)")
    return p


def _check_args(args) -> tuple:
    """Every option checked before a model is loaded or a file written; the (input, audio or None) sources
    resolved from --input/--audio or their aliases."""
    from mke.runtime.live.sources import resolve_source
    from mke.runtime.live.sources.aliases import LegacyFlags, source_uris

    input_uri, audio_uri = source_uris(args.input, args.audio,
                                       LegacyFlags(**{name: getattr(args, name) for name in LegacyFlags.names()}))
    sources = (resolve_source(input_uri, "input"), resolve_source(audio_uri, "audio") if audio_uri else None)
    if not 0.0 <= args.alpha <= 1.0:
        raise MkeError(f"--alpha is an opacity in 0..1, got {args.alpha}")
    for name in ("frames", "retries", "threads", "rounds"):
        value = getattr(args, name)
        if value is not None and value < (1 if name in ("frames", "rounds") else 0):
            raise MkeError(f"--{name} must be {'positive' if name in ('frames', 'rounds') else 'zero or more'}, "
                           f"got {value}")
    if args.benchmark:
        if args.save or args.jsonl or args.truth:
            raise MkeError("--benchmark measures the pipeline without outputs: leave out --save, --jsonl and --truth")
        args.fast = True  # the source must not set the pace: it is read as fast as the pipeline takes it
    return sources


def _sinks(args, spec) -> list:
    from mke.runtime.live.sinks.overlay import Overlay

    overlay = Overlay(spec, alpha=args.alpha)
    sinks = []
    if not args.headless:
        from mke.runtime.live.sinks.window import WindowSink

        sinks.append(WindowSink(overlay))
    try:
        if args.save:
            from mke.runtime.live.sinks.files import VideoSink

            sinks.append(VideoSink(args.save, overlay))
        if args.jsonl:
            from mke.runtime.live.sinks.files import JsonlSink

            sinks.append(JsonlSink(args.jsonl))
        if args.truth:
            from mke.runtime.live.sinks.truth import TruthSink

            sinks.append(TruthSink(args.truth, spec.classes, kind=spec.kind))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks


def _print_summary(summary: dict, sinks: list, args, log) -> None:
    lat = summary["latency_ms"]
    log(f"mke-live: {summary['exit']} after {summary['frames']} frames in {summary['seconds']:.1f} s")
    log(f"  {summary['fps']:.1f} FPS (the model alone: {summary['model_fps']:.1f}) | latency p50 {lat['p50']:.1f} ms "
        f"p95 {lat['p95']:.1f} ms | preprocessing {summary['preprocess_ms']:.2f} ms/frame | drops {summary['drops']} "
        f"(stale {summary['dropped']['stale']}, source {summary['dropped']['source']}) | errors {summary['errors']}")
    if "faults" in summary:
        mem = summary["memory_mb"]
        growth = f"{mem['growth_pct']:+.2f} %" if mem["growth_pct"] is not None else "n/a"
        log(f"  injected: {summary['faults']['injected']} | audio underruns seen {summary['audio_underruns']} | "
            f"memory {mem['baseline']} → {mem['end']} MiB ({growth} after frame {mem['baseline_after_frames']})")
    written = [f"{s.path} ({getattr(s, 'frames', getattr(s, 'lines', 0))} {'frames' if hasattr(s, 'frames') else 'lines'})"
               for s in sinks if hasattr(s, "path")]
    if "truth" in summary:
        t = summary["truth"]
        if "map" in t:
            ap = "–" if t["map"] is None else f"{t['map']:.3f}"
            exact = "–" if t["exact"] is None else f"{t['exact']:.2f} %"
            log(f"  truth ({t['file']}): mAP {ap}, exactly the true classes {exact} on {t['scored']} of "
                f"{t['moments']} moments ({t['correct']} exact, {t['missed']} missed)")
        else:
            accuracy = "–" if t["accuracy"] is None else f"{t['accuracy']:.2f} %"
            log(f"  truth ({t['file']}): accuracy {accuracy} on {t['scored']} of {t['moments']} moments "
                f"({t['correct']} right, {t['missed']} missed)")
    if args.stats_json:
        written.append(str(args.stats_json))
    if written:
        log(f"  wrote {', '.join(written)}")


def _run(args) -> int:
    from mke.runtime.fileio import write_json
    from mke.runtime.live.backends import open_runner
    from mke.runtime.live.faults import FaultPlan, FaultySource
    from mke.runtime.live.inputs import InputBuilder
    from mke.runtime.live.pipeline import EXIT_CODES, LivePipeline, PipelineOptions
    from mke.runtime.live.sources import SourceContext, open_input

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    input_source, audio_source = _check_args(args)
    plan = FaultPlan.parse(args.inject_faults) if args.inject_faults else None
    runner = open_runner(args.model, args.backend, args.threads)
    try:
        spec = runner.spec
        builder = InputBuilder(spec, str(args.model))
        context = SourceContext.for_model(spec, real_time=not args.fast)

        def make_source():
            source = open_input(input_source, audio_source, context)
            builder.check_source(source, str(args.model))
            return FaultySource(source, plan) if plan else source

        source = make_source()  # every option and the model/source fit are checked before anything starts
        log(f"mke-live: {args.model.name} ({spec.task}, {spec.kind}, {len(spec.classes)} classes) on "
            f"{runner.description}")
        if args.benchmark:
            return _benchmark(args, make_source, runner, log, write_json)
        sinks = _sinks(args, spec)
        try:
            source.open()
            log(f"mke-live: source: {source.describe()}")
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        pipeline = LivePipeline(source, runner, sinks, PipelineOptions(
            max_frames=args.frames, stats_every_s=args.stats_every, retries=args.retries), log=log)
        previous = signal.signal(signal.SIGINT, lambda *_: pipeline.stop("interrupted"))
        try:
            summary = pipeline.run()
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
            source.close()
        for sink in sinks:  # finalise the files: each is renamed into place complete
            sink.close()
        summary.update(model=str(args.model), backend=runner.description, source=source.describe())
        if plan:
            summary["faults"] = {"plan": plan.__dict__, "injected": dict(source.injected)}
        truth = next((s.result() for s in sinks if hasattr(s, "result")), None)
        if truth is not None:
            summary["truth"] = truth
        if args.stats_json:
            write_json(args.stats_json, summary)
        _print_summary(summary, sinks, args, log)
        return EXIT_CODES.get(summary["exit"], 1)
    finally:
        runner.close()


def _benchmark(args, make_source, runner, log, write_json) -> int:
    from mke.runtime.live.benchmark import benchmark_table, run_benchmark

    frames = args.frames or 200
    log(f"mke-live: benchmark, {args.rounds} rounds of {frames} frames, interleaved: model-only, end-to-end on "
        "frames preloaded into memory (the pipeline's own cost: the target) and end-to-end on the source as it "
        "reads (capped by what the source, e.g. the SDK's playback decoding, can deliver)")
    result = run_benchmark(make_source, runner, frames=frames, rounds=args.rounds, log=log)
    result.update(model=str(args.model), backend=runner.description)
    print(benchmark_table(result), flush=True)
    if args.stats_json:
        write_json(args.stats_json, result)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_inputs:
        from mke.runtime.live.sources import list_sources

        print(list_sources())
        return 0
    if args.model is None:
        parser.error("the following arguments are required: model")
    try:
        return _run(args)
    except MkeError as exc:
        print(f"mke-live: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
