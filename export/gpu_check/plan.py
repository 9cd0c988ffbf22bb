"""What the GPU check runs: its rooms, the mke-train overrides, the export and mke-live arguments, and
the tiny sizes of the CPU dry run. Paths are relative to the working directory (the checkout), as for
mke-train and mke-export."""
from __future__ import annotations

from pathlib import Path

DEFAULT_OUT = Path("docs/gpu.md")
DEFAULT_WORK = Path("runs/gpu-check")
DATA_ARCHIVE = Path("data/cache/gpu-check.tar.xz")
BUDGET_S = 450            # the whole check, from a bare machine, stays under 8 minutes
MIN_STAGE_S = 20          # a subprocess stage is not started with less of the budget left
SIZES = ((120, 160), (480, 640))  # (height, width) of the latency rows: the model's own, and a D435's colour default
LATENCY_REPEATS = 200
THROUGHPUT_EPOCHS = 4     # `fit` on the run's data for the steady-state samples/s: epochs 2..4 timed
ENGINE_FRAMES = 8         # test frames each engine is compared with ONNX Runtime on
STUDENT = "MM student"
LIVE_INPUT = "sim://?seed=0"

# The check's rooms: 800 frames at 160×120, 92 MB as mke-train caches them and 43 MB packed (xz), so they can
# be carried beside the working tree (64 MiB in all) to a machine without pybullet; D_u holds the 500 samples
# INT8 calibrates on.
DATA = {"cache_dir": "data/cache/gpu-check", "labeled.rooms": 50, "labeled.frames": 200,
        "unlabeled.rooms": 100, "unlabeled.frames": 500, "test.rooms": 25, "test.frames": 100,
        "recording.frames": 0}
TRAIN = {"seeds": 1, "workers": 1, "device": "cuda", "precision": "auto", "methods": "[UM teacher, MM student]",
         "teacher.optim.epochs": 15, "student.optim.epochs": 4}
EXPORT_ARGS = ("--fp16", "--int8", "--calib-samples", "500", "--repeats", "20")
LIVE_ARGS = ("--frames", "200", "--rounds", "3")

# --cpu-dry-run: the same stages on the CPU with tiny sizes, to test the plumbing where there is no GPU.
DRY_DATA = {"labeled.rooms": 2, "labeled.frames": 8, "unlabeled.rooms": 2, "unlabeled.frames": 16,
            "test.rooms": 2, "test.frames": 8, "recording.frames": 0}
DRY_TRAIN = {"seeds": 1, "workers": 1, "device": "cpu", "precision": "auto", "methods": "[UM teacher, MM student]",
             "model.encoder": "tiny", "teacher.optim.epochs": 1, "student.optim.epochs": 1, "pseudo_labels.tta": "{}"}
DRY_EXPORT_ARGS = ("--fp16", "--int8", "--calib-samples", "16", "--repeats", "2", "--threads", "1")
DRY_LIVE_ARGS = ("--frames", "6", "--rounds", "1", "--threads", "1")
DRY_LATENCY_REPEATS = 3
DRY_THROUGHPUT_EPOCHS = 2


def train_overrides(dry_run: bool, work: Path) -> list[str]:
    """The `key=value` arguments of the check's mke-train run (the dry run keeps its rooms in `work`)."""
    if dry_run:
        items = {**DRY_TRAIN, "data.cache_dir": work / "cache", **{f"data.{k}": v for k, v in DRY_DATA.items()}}
    else:
        items = {**TRAIN, **{f"data.{k}": v for k, v in DATA.items()}}
    return [f"{key}={value}" for key, value in items.items()]


def check_config(dry_run: bool, work: Path) -> dict:
    """The config mke-train resolves from those arguments (configs/rgbd.yaml under them)."""
    from mke.train.config import resolve_config

    return resolve_config("rgbd", None, train_overrides(dry_run, work))
