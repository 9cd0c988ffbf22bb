"""`python -m mke.export.gpu_check`: the GPU check's command (`bash scripts/gpu_check.sh` runs it).

Exit status: 0 every stage ran or was skipped with its reason; 1 no CUDA GPU (nothing run, nothing
written); 2 a stage failed (the report says which; logs/ in the work folder has the commands' output).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from mke.export.gpu_check.context import BudgetSpent, Context, Row, say
from mke.export.gpu_check.machine import cuda_problem, machine
from mke.export.gpu_check.plan import BUDGET_S, DATA_ARCHIVE, DEFAULT_OUT, DEFAULT_WORK, check_config
from mke.runtime.errors import MkeError
from mke.runtime.memory import huge_pages_off


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mke.export.gpu_check",
        description="Train, time, export and benchmark on an NVIDIA GPU and write docs/gpu.md. "
                    "`bash scripts/gpu_check.sh` runs this with the Python whose torch sees the GPU.")
    p.add_argument("--out", type=Path, help=f"the report (default {DEFAULT_OUT}; with --cpu-dry-run WORK/gpu.md)")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK,
                   help=f"its run, exports, logs/ and gpu_check.json, made afresh (default {DEFAULT_WORK})")
    p.add_argument("--budget-s", type=float, default=BUDGET_S,
                   help=f"no stage starts after this many seconds (default {BUDGET_S})")
    p.add_argument("--data-archive", type=Path, default=DATA_ARCHIVE,
                   help=f"the check's rooms packed for a machine without pybullet (default {DATA_ARCHIVE})")
    p.add_argument("--pack-data", action="store_true",
                   help="render the check's rooms here (pybullet, no GPU needed) and pack them into --data-archive")
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="every stage on the CPU with tiny sizes: tests the check's plumbing, measures nothing")
    return p


def _guarded(stage: str, fn, *args):
    """A stage's own error becomes its failed row; the check goes on with the stages that do not need it."""
    try:
        return fn(*args)
    except BudgetSpent as exc:
        return Row(stage, "skipped", str(exc))
    except Exception as exc:
        return Row(stage, "failed", f"{exc.__class__.__name__}: {str(exc)[:300]}")


def _rows(value) -> list[Row]:
    return value if isinstance(value, list) else [value]


def run_check(ctx: Context, archive: Path) -> list[Row]:
    """Every stage in order; each row is added as it is known."""
    from mke.export.gpu_check.engines import engine_rows, live_targets, stage_export, stage_live, tensorrt_problem
    from mke.export.gpu_check.rooms import STAGE as DATA_STAGE, stage_data
    from mke.export.gpu_check.training import STAGE as TRAIN_STAGE, stage_latency, stage_throughput, stage_train

    data = ctx.add(_guarded(DATA_STAGE, stage_data, ctx, archive))
    report, trained = None, False
    if data.status == "ok":
        train_rows = [ctx.add(r) for r in _rows(_guarded(TRAIN_STAGE, stage_train, ctx))]
        trained = all(r.status == "ok" for r in train_rows)
    else:
        ctx.add(Row(TRAIN_STAGE, "skipped", "no rooms (the data row)"))
    if trained:
        for stage, fn in (("training speed in steady state", stage_throughput), ("latency: the MM student", stage_latency)):
            for row in _rows(_guarded(stage, fn, ctx)):
                ctx.add(row)
        exported = _guarded("mke-export --fp16 --int8", stage_export, ctx)
        rows, report = exported if isinstance(exported, tuple) else ([exported], None)
        for row in rows:
            ctx.add(row)
    else:
        ctx.add(Row("training speed, latency and mke-export", "skipped", "no trained run (the training rows)"))
    try:
        trt = tensorrt_problem()
    except Exception as exc:  # a TensorRT that is there and breaks on import
        trt = f"TensorRT does not import: {exc.__class__.__name__}: {str(exc)[:200]}"
    for row in _rows(_guarded("TensorRT engines", engine_rows, ctx, report, trt)):
        ctx.add(row)
    targets = _guarded("mke-live --benchmark", live_targets, ctx, report, trt)
    for target in targets if isinstance(targets, list) else []:
        ctx.add(_guarded(target[0], stage_live, ctx, *target))
    if isinstance(targets, Row):
        ctx.add(targets)
    return ctx.rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    huge_pages_off()  # the rooms' arrays, as in mke-train and mke-export: mke.runtime.memory
    if args.pack_data:
        from mke.export.gpu_check.rooms import pack_data

        try:
            pack_data(args.data_archive, args.work)
        except MkeError as exc:
            say(f"error: {exc}")
            return 2
        return 0
    if not args.cpu_dry_run:
        problem = cuda_problem()
        if problem:
            say(f"no CUDA GPU: {problem}. Nothing was run and nothing written "
                "(--cpu-dry-run runs the check's plumbing on the CPU)")
            return 1
    from mke.export.gpu_check.report import report_markdown, write_report
    from mke.runtime.fileio import write_json

    out = args.out or (args.work / "gpu.md" if args.cpu_dry_run else DEFAULT_OUT)
    started = time.monotonic()
    env = machine(with_gpu=not args.cpu_dry_run)
    say(f"{'a CPU dry run' if args.cpu_dry_run else env['gpu']['name']}: work folder {args.work}, report {out}")
    absent = [label for label, version in env["packages"].items() if version is None]
    say(f"absent here: {', '.join(absent)} (the rows that need them will say so)" if absent else
        "every package the check can use is here")
    for stale in ("run", "exports", "logs"):
        shutil.rmtree(args.work / stale, ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        cfg = check_config(args.cpu_dry_run, args.work)
    except MkeError as exc:
        say(f"error: the check's mke-train config does not resolve: {exc}")
        return 2
    ctx = Context(args.cpu_dry_run, args.work, started + args.budget_s, cfg)
    rows = run_check(ctx, args.data_archive)
    seconds = time.monotonic() - started
    write_report(out, report_markdown(env, rows, seconds, args.cpu_dry_run, args.budget_s))
    write_json(args.work / "gpu_check.json", {"machine": env, "rows": [asdict(r) for r in rows],
                                              "seconds": round(seconds, 1), "dry_run": args.cpu_dry_run})
    failures = [r.stage for r in rows if r.status == "failed"]
    say(f"wrote {out}: {len(rows)} rows, {len(failures)} failed, {seconds:.0f} s")
    return 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
