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
  mke-export exports/rgbd/student.onnx --fp16 --int8
                                             on the Jetson, without PyTorch: FP16 / INT8 TensorRT engines
                                             from the ONNX files and calibration.student.npz beside them

Every artifact is checked against the PyTorch model on the run's test split (FP32 logits within
1e-4, FP16 within 0.2 points of the metric, INT8 within --budget) and timed beside it. The table
is written to OUT/export_report.md and OUT/export_report.json; the .md ends with the mke-live
commands that run the student on the sources its task declares (its recording first, if any).

Given an ONNX file instead of a run (on the device that will run the engines; only the runtime side
is needed, not PyTorch), each engine is built from the ONNX file of its precision (the FP16 ONNX, made
here from the FP32 one if absent; the Q/DQ .int8.onnx), checked against it with ONNX Runtime on the
samples the workstation saved beside it (FP16: at most 0.2 % of predictions differ, INT8: --budget),
timed, and reported in OUT/engine_report.md and .json (OUT: the ONNX file's folder by default).
"""
RUN_ONLY = ("calib_samples", "calib_draw", "dynamic_batch", "seed", "student")  # options that need the run folder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mke-export",
        description="Export the teacher and fused student of a run to ONNX and FP16 / INT8 TensorRT engines, "
                    "calibrated on the run's unlabeled multimodal samples and verified against PyTorch.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run folder written by mke-train, e.g. runs/rgbd; or an ONNX file "
                                          "mke-export wrote, e.g. exports/rgbd/student.onnx (engines on the device)")
    p.add_argument("--out", type=Path, help="output folder (default: exports/<run name>, or the ONNX file's folder)")
    p.add_argument("--fp16", action="store_true", help="also FP16 artifacts (ONNX; a TensorRT engine where possible)")
    p.add_argument("--int8", action="store_true", help="also INT8 artifacts, calibrated on the run's unlabeled data")
    p.add_argument("--calib-samples", type=int, default=500, help="calibration samples (default 500)")
    p.add_argument("--calib-draw", choices=["stratified", "random"], default="stratified",
                   help="how they are drawn from D_u: stratified (default: every class the teacher's pseudo labels "
                        "show is represented) or random")
    p.add_argument("--budget", type=float, default=1.0, help="largest INT8 metric drop allowed, in points: 1/100 of full scale (accuracy or mIoU 1 %%, mAP 0.01; default 1)")
    p.add_argument("--dynamic-batch", action="store_true", help="export with a dynamic batch dimension")
    p.add_argument("--seed", type=int, help="which seed's models (default: the run's example seed)")
    p.add_argument("--student", help="which of the run's students to export (default: \"MM student\"; e.g. "
                                     "\"DMD student\")")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for inference and timing (default: all)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per artifact (default 30)")
    p.add_argument("--no-tensorrt", action="store_true", help="do not build TensorRT engines even if possible")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run.suffix == ".onnx":
        return from_onnx(args, parser)
    huge_pages_off()  # the run's splits and every artifact's logits: mke.runtime.memory
    try:
        from mke.export.exporter import Options, export_run, markdown_table

        out = args.out or Path("exports") / args.run.resolve().name
        opts = Options(out=out, fp16=args.fp16, int8=args.int8, calib_samples=args.calib_samples,
                       calib_draw=args.calib_draw, budget=args.budget,
                       dynamic_batch=args.dynamic_batch, seed=args.seed, student=args.student or "MM student",
                       threads=args.threads, repeats=args.repeats, tensorrt=not args.no_tensorrt)
        report = export_run(args.run, opts, log=lambda m: print(f"mke-export: {m}", flush=True))
    except MkeError as exc:
        print(f"mke-export: error: {exc}", file=sys.stderr)
        return 2
    print()
    print(markdown_table(report))
    print(f"\nreport: {out / 'export_report.md'}   json: {out / 'export_report.json'}")
    return 0


def from_onnx(args, parser: argparse.ArgumentParser) -> int:
    """The device's path: engines from an exported ONNX file, torch-free (mke.export.from_onnx)."""
    given = [f"--{k.replace('_', '-')}" for k in RUN_ONLY if getattr(args, k) != parser.get_default(k)]
    if given:
        parser.error(f"{', '.join(given)} only apply to a run folder; {args.run} is an ONNX file")
    try:
        from mke.export.artifacts import markdown_table
        from mke.export.from_onnx import REPORT, OnnxOptions, export_onnx_file

        opts = OnnxOptions(out=args.out, fp16=args.fp16, int8=args.int8, budget=args.budget, threads=args.threads,
                           repeats=args.repeats, tensorrt=not args.no_tensorrt)
        report = export_onnx_file(args.run, opts, log=lambda m: print(f"mke-export: {m}", flush=True))
    except MkeError as exc:
        print(f"mke-export: error: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.run.parent
    print()
    print(markdown_table(report))
    print(f"\n{report['metric']}: {report['metric_note']}")
    print(f"report: {out / (REPORT + '.md')}   json: {out / (REPORT + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
