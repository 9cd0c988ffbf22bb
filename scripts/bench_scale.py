"""Benchmark: the MM student's training step on the built-in RGB-D rooms, 1 process vs 2 (torchrun, gloo).

    .venv/bin/python scripts/bench_scale.py [--frames 512] [--epochs 2] [--width 160 --height 120] [--lazy]

Renders the frames once (cached under --cache-dir), then trains the same student for the same steps
twice, side by side in this one run: 1 process with all the machine's cores as threads, and
`torchrun --nproc-per-node 2` over gloo with cores/2 threads per process (the honest comparison on a
machine with few cores: the same cores either way). Prints samples/s (global: all ranks), the ratio,
and the share of step time spent waiting for the next batch (mke.train.fit.Throughput), per setting.
The step is the headline MM student's (network, inputs, transformation T, optimizer, precision of
configs/rgbd.yaml) trained on the frames' true class ids, so no teacher is needed first. With
`--lazy` the split is lazy (`loader.in_memory_mb=0`): each batch is read from the memory-mapped cache
and preprocessed by DataLoader worker processes (`loader` settings), as data larger than memory is.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

MARK = "bench_scale:"


def _overrides(args) -> list[str]:
    w, h, n = args.width, args.height, args.frames
    return ["seeds=1", "workers=1", f"data.cache_dir={args.cache_dir}", f"data.width={w}", f"data.height={h}",
            f"data.unlabeled={{rooms: {max(1, n // 10)}, frames: {n}}}", "data.labeled={rooms: 1, frames: 2}",
            "data.test={rooms: 1, frames: 2}", "data.recording.frames=0",
            f"preprocess.rgb.size=[{h}, {w}]", f"preprocess.depth.size=[{h}, {w}]",
            f"student.optim.epochs={args.epochs}"] + (["loader.in_memory_mb=0"] if args.lazy else [])


def worker(args) -> None:
    """One process of a setting: train the student, rank 0 prints its Throughput as JSON."""
    import torch

    from mke.train import distributed
    from mke.train.config import resolve_config
    from mke.train.fit import Throughput, fit, resolve_device
    from mke.train.methods import plan_students
    from mke.train.runs import run_context

    torch.set_num_threads(args.threads)
    cfg = resolve_config("rgbd", None, _overrides(args))
    me = distributed.init(resolve_device(cfg["device"]))
    cfg_json = json.dumps(cfg, sort_keys=True)
    cfg, task, data = run_context(cfg_json)
    head = cfg["report"]["headline"]
    job = next(j for j in plan_students(cfg["methods"], cfg["regularization"])
               if j.method.name == "MM student" and (j.reg.kind, j.reg.strength) == (head["regularization"], head["strength"]))
    mods = (data.alpha, data.beta)
    split = data.unlabeled.select(mods).with_targets(data.unlabeled.targets)
    torch.manual_seed(0)
    model = task.build_model(cfg, "student", mods, job.reg)
    speed = Throughput()
    fit(model, split, cfg["student"]["optim"], job.reg, seed=0, task=task, device=cfg["device"],
        precision=cfg["precision"], throughput=speed)
    if me.main:
        lazy = split.lazy
        print(MARK, json.dumps({"processes": me.size, "threads": args.threads,
                                "loader_workers": None if lazy is None else lazy.num_workers, **speed.as_dict()}), flush=True)
    distributed.shutdown()


def _run(cmd: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(cmd[:6])} … failed:\n{out.stderr[-3000:]}")
    line = next(line for line in out.stdout.splitlines() if line.startswith(MARK))
    return json.loads(line[len(MARK):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=512, help="unlabeled frames the student trains on")
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--cache-dir", default="data/cache")
    p.add_argument("--lazy", action="store_true", help="read and preprocess each batch in DataLoader workers "
                   "(loader.in_memory_mb=0), as data larger than memory")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    from mke.runtime.memory import huge_pages_off
    from mke.train.config import resolve_config
    from mke.train.distributed import cores_per_process
    from mke.train.tasks import get_task

    huge_pages_off()
    cfg = resolve_config("rgbd", None, _overrides(args))
    get_task("rgbd").prepare(cfg, True)  # render once, before either setting is timed
    cores = cores_per_process()  # the cores this process may use (its affinity mask)
    base = [__file__, "--worker", f"--frames={args.frames}", f"--epochs={args.epochs}", f"--width={args.width}",
            f"--height={args.height}", f"--cache-dir={args.cache_dir}"] + (["--lazy"] if args.lazy else [])
    one = _run([sys.executable, *base, f"--threads={cores}"])
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *base,
                f"--threads={max(1, cores // 2)}"])
    print(f"MM student step, built-in RGB-D {args.width}x{args.height}, {args.frames} frames x {args.epochs} epochs, "
          f"batch {cfg['student']['optim']['batch_size']}, precision {cfg['precision']}, {cores} cores, inputs "
          + ("lazy (DataLoader workers per process: " + ", ".join(str(r["loader_workers"]) for r in (one, two)) + ")"
             if args.lazy else "in memory"))
    print(f"{'setting':28s} {'samples/s':>10s} {'data wait':>10s}")
    for r in (one, two):
        setting = f"{r['processes']} process{'es' if r['processes'] > 1 else ''} x {r['threads']} thread{'s' if r['threads'] > 1 else ''}"
        print(f"{setting:28s} {r['samples_per_s']:10.2f} {100 * r['data_wait_share']:9.1f}%")
    print(f"ratio 2 processes / 1 process: {two['samples_per_s'] / one['samples_per_s']:.2f}")


if __name__ == "__main__":
    main()
