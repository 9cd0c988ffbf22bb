"""`mke-export`: a trained run → ONNX (FP32, FP16), INT8 Q/DQ, TensorRT engines, each verified."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.memory import huge_pages_off

EPILOG = """\
examples:
  mke-export runs/rgbd                       FP32 ONNX of teacher and student into exports/rgbd/
  mke-export runs/rgbd --fp16 --int8         plus FP16 ONNX, INT8 (TensorRT Q/DQ and ONNX Runtime CPU),
                                             and TensorRT engines where TensorRT and a GPU are present
  mke-export runs/twomoon --out /tmp/tm --threads 2

Every artifact is checked against the PyTorch model on the run's test split (FP32 logits within
1e-4, FP16 within 0.2 points of the metric, INT8 within --budget) and timed beside it. The table
is written to OUT/export_report.md and OUT/export_report.json; the .md ends with the mke-live
commands that run the student on the sources its task declares (its recording first, if any).
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mke-export",
        description="Export the teacher and fused student of a run to ONNX and FP16 / INT8 TensorRT engines, "
                    "calibrated on the run's unlabeled multimodal samples and verified against PyTorch.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run folder written by mke-train, e.g. runs/rgbd")
    p.add_argument("--out", type=Path, help="output folder (default: exports/<run name>)")
    p.add_argument("--fp16", action="store_true", help="also FP16 artifacts (ONNX; a TensorRT engine where possible)")
    p.add_argument("--int8", action="store_true", help="also INT8 artifacts, calibrated on the run's unlabeled data")
    p.add_argument("--calib-samples", type=int, default=500, help="calibration samples (default 500)")
    p.add_argument("--calib-draw", choices=["stratified", "random"], default="stratified",
                   help="how they are drawn from D_u: stratified (default: every class the teacher's pseudo labels "
                        "show is represented) or random")
    p.add_argument("--budget", type=float, default=1.0, help="largest INT8 metric drop allowed, in points (default 1)")
    p.add_argument("--dynamic-batch", action="store_true", help="export with a dynamic batch dimension")
    p.add_argument("--seed", type=int, help="which seed's models (default: the run's example seed)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for inference and timing (default: all)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per artifact (default 30)")
    p.add_argument("--no-tensorrt", action="store_true", help="do not build TensorRT engines even if possible")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    huge_pages_off()  # the run's splits and every artifact's logits: mke.runtime.memory
    try:
        from mke.export.exporter import Options, export_run, markdown_table

        out = args.out or Path("exports") / args.run.resolve().name
        opts = Options(out=out, fp16=args.fp16, int8=args.int8, calib_samples=args.calib_samples,
                       calib_draw=args.calib_draw, budget=args.budget,
                       dynamic_batch=args.dynamic_batch, seed=args.seed, threads=args.threads, repeats=args.repeats,
                       tensorrt=not args.no_tensorrt)
        report = export_run(args.run, opts, log=lambda m: print(f"mke-export: {m}", flush=True))
    except MkeError as exc:
        print(f"mke-export: error: {exc}", file=sys.stderr)
        return 2
    print()
    print(markdown_table(report))
    print(f"\nreport: {out / 'export_report.md'}   json: {out / 'export_report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
