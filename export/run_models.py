"""The models of a trained run that get exported: the teacher and the fused student, with their specs."""
from __future__ import annotations

import datetime
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from mke.runtime.errors import MkeError
from mke.runtime.spec import ModelSpec, OutputSpec
from mke.train.runs import RunDir, headline_student, load_model, open_run, read_json, task_and_data

STUDENT = "MM student"


@dataclass
class RunModel:
    name: str                 # "teacher" or "student": the artifact's file stem
    model: torch.nn.Module
    spec: ModelSpec
    checkpoint: Path


@dataclass
class RunContext:
    run: RunDir
    cfg: dict
    task: object
    data: object
    models: list[RunModel]
    seed: int = 0             # whose models: their teacher's pseudo labels stratify the calibration draw


def _student_checkpoint(run: RunDir, cfg: dict, seed: int, method: str = STUDENT) -> Path:
    ckpt = headline_student(run, cfg, seed, method)
    if ckpt is not None:
        return ckpt
    h = cfg["report"]["headline"]
    raise MkeError(f"{run.root} has no '{method}' ({h['regularization']}, {h['strength']}) checkpoint for seed {seed}; "
                   f"finish it with mke-train (the same command resumes), pick another --seed or --student")


def build_spec(cfg: dict, task, meta: dict, checkpoint: Path, run_root: Path, metrics: dict | None) -> ModelSpec:
    inputs = [task.input_spec(cfg, m) for m in meta["modalities"]]
    k = len(meta["classes"])
    out_shape = task.output_shape(inputs, k)
    result = None
    if metrics:
        for r in metrics.get("results", []):
            if r["method"] == meta["method"] and (r["regularization"], r["strength"]) == (
                    meta["regularization"]["kind"], meta["regularization"]["strength"]):
                result = {"metric": metrics["metric"], "mean": r["mean"], "per_seed": r["per_seed"]}
    import onnx
    import onnxruntime

    provenance = {"run": str(run_root), "checkpoint": str(checkpoint), "method": meta["method"], "seed": meta["seed"],
                  "regularization": meta["regularization"], "test_result": result, "config": cfg,
                  "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                               "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
                  "exported_at": datetime.datetime.now().isoformat(timespec="seconds")}
    return ModelSpec(task=cfg["task"], kind=task.kind, classes=list(meta["classes"]), colors=task.colors(k),
                     inputs=inputs, outputs=[OutputSpec("logits", out_shape)], provenance=provenance)


def load_run(run_dir: str | Path, seed: int | None = None, student: str = STUDENT) -> RunContext:
    """The run's config, task, data and its teacher and `student` models (a method of the run: "MM student",
    "DMD student") for `seed` (default: the report's example seed)."""
    run, cfg = open_run(run_dir)
    seed = cfg["report"]["example_seed"] if seed is None else seed
    if not 0 <= seed < int(cfg["seeds"]):
        raise MkeError(f"--seed {seed} is not one of the run's seeds 0..{int(cfg['seeds']) - 1}")
    if not run.teacher(seed).is_file():
        raise MkeError(f"{run.root} has no teacher checkpoint for seed {seed} ({run.teacher(seed)})")
    student = _student_checkpoint(run, cfg, seed, student)
    task, data = task_and_data(cfg)
    metrics = read_json(run.metrics)
    models = []
    for name, path in (("teacher", run.teacher(seed)), ("student", student)):
        model, meta = load_model(cfg, task, path)
        models.append(RunModel(name, model, build_spec(cfg, task, meta, path, run.root, metrics), path))
    return RunContext(run, cfg, task, data, models, seed)
