"""`mke-train`: teacher → pseudo labels → students and the paper's baselines → report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.memory import huge_pages_off

EPILOG = """\
examples:
  mke-train --task twomoon                     the paper's TwoMoon study, 10 seeds, into runs/twomoon/
  mke-train --task twomoon seeds=3 workers=1   fewer seeds, in this process
  mke-train --task twomoon --config my.yaml student.optim.epochs=500 --name short
  mke-train --list-tasks
  torchrun --nproc-per-node 2 --no-python mke-train --task rgbd   one training on 2 processes (docs/scale.md)

Overrides are key=value with dotted keys from the task's YAML (configs/<task>.yaml, merged over
the shared configs/defaults.yaml; --print-config shows them all); values are read as YAML. A run
that is interrupted resumes where it stopped when the same command is run again (with a warning
if the training code changed since it started; --fresh redoes it).
Results: runs/<name>/metrics.json (machine-readable), report.md and figures/.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mke-train",
        description="Multimodal Knowledge Expansion: train a unimodal teacher on labeled data, pseudo-label "
                    "unlabeled multimodal data, train a multimodal student and the paper's baselines, report.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", help="twomoon (built-in data); see --list-tasks")
    p.add_argument("--config", type=Path, help="YAML file overriding the task's defaults")
    p.add_argument("--name", help="run name (default: the task name); results go to RUNS_DIR/NAME/")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="folder for runs (default: ./runs)")
    p.add_argument("--fresh", action="store_true", help="delete an existing run of this name and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    p.add_argument("--list-tasks", action="store_true", help="list the tasks and exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. seeds=3")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)  # overrides may come before or after flags
    huge_pages_off()  # splits of hundreds of MB: mke.runtime.memory
    try:
        return _run(args)
    except MkeError as exc:
        print(f"mke-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nmke-train: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _run(args) -> int:
    from mke.train.tasks import PLANNED, get_task, registered_tasks

    if args.list_tasks:
        built = registered_tasks()
        for name, cls in built.items():
            print(f"{name:10s} {cls.title}")
        for name, what in PLANNED.items():
            if name not in built:
                print(f"{name:10s} not built yet: {what}")
        return 0
    if not args.task:
        raise MkeError("--task is required (for example --task twomoon; --list-tasks shows all)")
    get_task(args.task)  # unknown or unbuilt tasks fail here, before any work
    from mke.train.config import dump_config, resolve_config

    cfg = resolve_config(args.task, args.config, args.overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    from mke.train import distributed
    from mke.train.fit import resolve_device
    from mke.train.pipeline import run_mke
    from mke.train.report import headline_table, regularization_table

    root = args.runs_dir / (args.name or args.task)
    me = distributed.init(resolve_device(cfg["device"]))  # under torchrun: join its process group
    try:
        if me.size > 1:
            if me.main:
                print(f"mke-train: task {args.task}, {cfg['seeds']} seeds, data-parallel on {me.size} processes "
                      f"(torchrun) -> {root}/")
        else:
            print(f"mke-train: task {args.task}, {cfg['seeds']} seeds, {cfg['workers']} workers -> {root}/")
        metrics = run_mke(cfg, root, fresh=args.fresh, progress=not args.no_progress)
    finally:
        distributed.shutdown()
    if not me.main:
        return 0
    print()
    print(headline_table(metrics))
    reg = regularization_table(metrics)
    if reg:
        print()
        print(reg)
    print(f"\nreport: {root / 'report.md'}   metrics: {root / 'metrics.json'}   "
          f"time: {metrics['timing_s']['total']:.0f} s")
    if "replay" in metrics:
        print(f"replay of this world for mke-live: {metrics['replay']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
