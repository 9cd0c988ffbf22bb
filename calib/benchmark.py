"""Side-by-side latency of ONNX models on ONNX Runtime's CPU provider.

The models run interleaved — round r runs every model once, in an order that rotates each round —
so that a busy machine (other jobs, thermal or frequency changes) slows them all alike: compare the
ratios, not the absolute milliseconds of a shared machine.

    python -m mke.calib.benchmark fp32.onnx int8.onnx int8-cpu.onnx --threads 2 --runs 200
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from mke.calib.samples import model_inputs
from mke.runtime.errors import MkeError
from mke.runtime.onnxrt import ort_session
from mke.runtime.timing import Latency, interleaved_latency


def random_inputs(model: str | os.PathLike, seed: int = 0, batch: int = 1) -> dict[str, np.ndarray]:
    """One batch of standard-normal inputs shaped for `model` (dynamic axes → `batch`, else 1)."""
    rng = np.random.default_rng(seed)
    feed = {}
    for name, spec in model_inputs(model).items():
        shape = [batch if i == 0 and d is None else (d or 1) for i, d in enumerate(spec.shape)]
        feed[name] = rng.standard_normal(shape).astype(spec.dtype)
    return feed


def benchmark_onnx(paths: Sequence[str | os.PathLike], inputs: Mapping[str, np.ndarray] | None = None,
                   runs: int = 100, warmup: int = 10, threads: int = 2, spinning: bool = False) -> dict[str, Latency]:
    """{path: median and 90th-percentile latency in ms} of one `session.run` on `inputs` (default:
    random inputs for the first model), every model with `threads` intra-op threads, measured interleaved.

    Each session has its own thread pool, whose threads by default spin for a while after a run: with
    sessions interleaved, the pools just used steal the cores from the one being timed (2-thread
    medians here went from 2.8 ms to 15–23 ms at 120×160). `spinning=False` turns that off for all.
    """
    if not paths:
        raise MkeError("benchmark_onnx needs at least one model path")
    if runs < 1 or warmup < 0 or threads < 1:
        raise MkeError(f"runs must be ≥ 1, warmup ≥ 0 and threads ≥ 1 (got {runs}, {warmup}, {threads})")
    keys = [str(p) for p in paths]
    if len(set(keys)) != len(keys):
        raise MkeError("benchmark_onnx got the same model twice; pass each path once")
    sessions = []
    for p in keys:
        if not Path(p).is_file():
            raise MkeError(f"{p}: no such ONNX model to benchmark")
        sessions.append(ort_session(p, threads, spinning=spinning))
    feed = dict(inputs) if inputs is not None else random_inputs(keys[0])
    for key, sess in zip(keys, sessions):
        wanted = {i.name for i in sess.get_inputs()}
        if wanted - feed.keys():
            raise MkeError(f"{key}: inputs {sorted(wanted - feed.keys())} are not in the benchmark inputs {sorted(feed)}")
    feeds = [{k: feed[k] for k in (i.name for i in s.get_inputs())} for s in sessions]
    calls = {k: (lambda s=s, f=f: s.run(None, f)) for k, s, f in zip(keys, sessions, feeds)}
    return interleaved_latency(calls, repeats=runs, warmup=warmup)


def format_table(results: Mapping[str, Latency], baseline: str | None = None) -> str:
    """A Markdown table, with ratios to `baseline` (default: the first model)."""
    base = results[baseline or next(iter(results))].median_ms
    lines = ["| model | median ms | p90 ms | × first |", "|---|---:|---:|---:|"]
    for key, lat in results.items():
        lines.append(f"| {Path(key).name} | {lat.median_ms:.2f} | {lat.p90_ms:.2f} | {lat.median_ms / base:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mke.calib.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=Path, help="ONNX models taking the same inputs; the first is the baseline")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="SessionOptions.intra_op_num_threads")
    p.add_argument("--spinning", action="store_true", help="let idle intra-op threads spin (ORT's default)")
    p.add_argument("--inputs", type=Path, help="an .npz keyed by input name; its first sample is fed (default: random)")
    args = p.parse_args(argv)
    try:
        feed = None
        if args.inputs:
            with np.load(args.inputs, allow_pickle=False) as z:
                feed = {k: z[k][:1] for k in z.files}
        print(format_table(benchmark_onnx(args.models, feed, args.runs, args.warmup, args.threads, args.spinning)))
    except MkeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
