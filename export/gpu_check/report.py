"""The page the check writes (docs/gpu.md): the machine, the table of stages, what each row measures,
and how to run it again — also from a session lent a GPU machine through the `device` tool."""
from __future__ import annotations

from pathlib import Path

from mke.export.gpu_check.context import Row
from mke.export.gpu_check.machine import RELEVANT_FLAGS

RECIPE = """\
On a machine with an NVIDIA GPU, in this checkout: `bash scripts/gpu_check.sh` (no stage starts after
7.5 minutes). It runs with the Python whose torch sees the GPU (`PYTHON=…` picks one), installs
nothing from an index and fetches nothing; a row whose package is absent says so. pybullet, the room
renderer, has no wheel for Python 3.12 and its 3.11 wheel is 103 MB, so a machine without it gets the
check's rooms rendered elsewhere, packed (43 MB):

```
# on a CPU machine with the project's .venv (pybullet is in it); about a minute on 2 cores
.venv/bin/python -m mke.export.gpu_check --pack-data   # renders the rooms, writes data/cache/gpu-check.tar.xz
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
    --platform manylinux_2_17_x86_64 -d .whl/gpu-check onnxslim==0.1.98   # mke-export needs it; the GPU image lacks it
```

Then, from a session lent a GPU machine (the `device` tool; its image has torch with CUDA, onnx,
onnxscript, onnxruntime for the CPU and OpenCV, and no TensorRT, pycuda, onnxruntime-gpu, pybullet
or onnxslim), one call:

```
run(command='bash scripts/gpu_check.sh --wheels .whl/gpu-check --out "$OUT/gpu.md"; rc=$?; tar czf "$OUT/logs.tgz" -C runs/gpu-check logs gpu_check.json; exit $rc',
    carry=["data/cache/gpu-check.tar.xz", ".whl/gpu-check"], timeout_s=540)
```

and copy the `gpu.md` it returns over `docs/gpu.md` (`logs.tgz` holds each command's output). Where
TensorRT, pycuda and pybullet are installed (a Jetson, a GPU server with `pip install -e .[all,gpu]`)
nothing needs carrying: the check renders the rooms itself and builds, checks and benchmarks the engines."""


ROWS_EXPLAINED = """\
- **data**: the check's own rooms (`mke.runtime.sim`) at 160×120: 200 labeled, 500 unlabeled and 100
  test frames, from the cache, the carried archive, or rendered there.
- **training**: `mke-train --task rgbd seeds=1 workers=1 device=cuda precision=auto "methods=[UM
  teacher, MM student]" teacher.optim.epochs=15` on those rooms (`configs/rgbd.yaml`'s models and
  optimizers): the whole pipeline on the GPU, its stage times and mIoU (few epochs on few rooms: the
  mIoU shows that it trained, not what the task reaches, `docs/rgbd.md`). `precision: auto` autocasts
  to bf16 where the GPU runs it natively (compute capability 8.0 and later), else to fp16 with a
  GradScaler. Then the speed in steady state: `fit`, the loop mke-train trains every model in, on that
  run's data with its model, optimizer, augmentation, class weights and precision for 4 epochs, the
  last 3 timed (the first pays for CUDA's start, cuDNN's choices and the allocator) — samples/s.
- **latency**: the trained MM student, batch 1, weights in FP16, random inputs of each size (the net
  is fully convolutional), `mke.runtime.timing.interleaved_latency` with a CUDA synchronise in every call.
- **mke-export**: `mke-export <run> --fp16 --int8 --calib-samples 500` with its own checks against
  PyTorch on the test split. Where TensorRT imports it also builds FP16 and INT8 engines of teacher and
  student and holds them to 0.2 points (FP16) or the INT8 budget (1 point); the check then runs each
  engine and ONNX Runtime on the same test frames (`verify_engine`).
- **mke-live**: `mke-live <model> --input sim://?seed=0 --benchmark --frames 200 --rounds 3`: the
  model alone against the whole pipeline on preloaded frames (its own cost); engines through pycuda."""


def markdown_table(rows: list[Row]) -> str:
    lines = ["| # | stage | result | detail | s |", "|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        result = r.result if r.status == "ok" else f"**{r.status}**: {r.result}"
        seconds = "–" if r.seconds is None else f"{r.seconds:.1f}"
        cells = [str(i), r.stage, result, r.detail or "–", seconds]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


def machine_table(env: dict) -> str:
    pk, cpu, gpu, driver = env["packages"], env["cpu"], env.get("gpu"), env.get("driver", {})

    def v(label: str) -> str:
        return pk.get(label) or "absent"

    rows = [("date", env["date"])]
    if gpu:
        rows += [("GPU", f"{gpu['name']} (×{gpu['count']}), {gpu['memory_mib']} MiB, compute capability "
                         f"{gpu['capability']}"),
                 ("driver", driver.get("driver", "unknown")
                  + (f", CUDA {driver['driver_cuda']}" if driver.get("driver_cuda") else ""))]
    else:
        rows.append(("GPU", "none: a CPU dry run"))
    providers = env.get("onnxruntime_providers")
    rows += [
        ("PyTorch", f"{v('torch')} (CUDA {env['torch_cuda'] or 'none'}, cuDNN {env['cudnn'] or 'none'}); "
                    f"torchvision {v('torchvision')}"),
        ("ONNX", f"onnx {v('onnx')}, onnxscript {v('onnxscript')}, onnxslim {v('onnxslim')}"),
        ("ONNX Runtime", v("onnxruntime") + (f" ({', '.join(providers)})" if providers else "")),
        ("TensorRT", v("tensorrt")),
        ("pycuda", v("pycuda")),
        ("pybullet", v("pybullet")),
        ("OpenCV", v("opencv")),
        ("NumPy", v("numpy")),
        ("Python", env["python"]),
        ("CPU", f"{cpu['model']}, {cpu['cpus']} logical CPUs; `lscpu` flags "
                + (" ".join(cpu["relevant_flags"]) or f"none of {' '.join(RELEVANT_FLAGS)}")),
    ]
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {val} |" for k, val in rows])


def report_markdown(env: dict, rows: list[Row], seconds: float, dry_run: bool, budget_s: float) -> str:
    failures = [r.stage for r in rows if r.status == "failed"]
    verdict = f"{len(failures)} stage(s) failed: {', '.join(failures)}" if failures else \
        "no stage failed; a skipped row says why it did not run"
    lines = ["# GPU check", ""]
    if dry_run:
        lines += ["**A CPU dry run** (`--cpu-dry-run`): the check's plumbing on tiny sizes, not GPU figures.", ""]
    lines += [f"Written by `bash scripts/gpu_check.sh` on {env['date']} in {seconds:.0f} s (budget {budget_s:.0f} s); "
              f"{verdict}.", "", "## The machine", "", machine_table(env), "", "## Results", "", markdown_table(rows),
              "", "## What each row measures", "", ROWS_EXPLAINED, "", "## Running it", "", RECIPE, "",
              "<details><summary>every <code>lscpu</code> flag</summary>", "",
              " ".join(env["cpu"]["flags"]) or "(lscpu gave none)", "", "</details>", ""]
    return "\n".join(lines)


def not_run_markdown() -> str:
    """docs/gpu.md until a GPU machine has run the check: what it will measure and how, no figure."""
    return "\n".join([
        "# GPU check", "",
        "**Not run on a GPU yet.** This page is written by `bash scripts/gpu_check.sh` on a machine with an",
        "NVIDIA GPU, with the date, the GPU, driver, CUDA and library versions, the CPU and a table of what it",
        "measured; until then no GPU figure of this project has been measured, and nothing below is one.", "",
        "What the check does (`mke.export.gpu_check`): on the check's own rendered rooms, `mke-train --task",
        "rgbd` on CUDA with mixed precision (samples/s of teacher and MM student), the MM student's PyTorch",
        "CUDA FP16 latency at batch 1 at 160×120 and 480×640, `mke-export --fp16 --int8` and, where TensorRT",
        "is installed, FP16 and INT8 engines held to mke-export's tolerances and compared with ONNX Runtime,",
        "and `mke-live --benchmark` on the engines (TensorRT + pycuda) and on ONNX Runtime's CUDA provider",
        "(onnxruntime-gpu). A stage whose package is absent is a row that says so; it never shows a number it",
        "did not measure. On a machine without a CUDA GPU it stops at once (`no CUDA GPU: …`, exit status 1)",
        "and writes nothing; `--cpu-dry-run` runs every stage on the CPU with tiny sizes (tests the plumbing).",
        "", "## What each row measures", "", ROWS_EXPLAINED, "", "## Running it", "", RECIPE, ""])


def write_report(path: Path, text: str) -> None:
    from mke.runtime.fileio import write_text

    write_text(path, text)  # written beside it under a temporary name, renamed over it when complete
