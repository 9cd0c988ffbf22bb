"""A run of mke-train, read back: its folder, config, task and data, and its checkpointed models.

The public face of `runs/<name>/` for what comes after training — mke-export, the report's figures —
so they need none of the pipeline's internals. The pipeline writes runs through the same `RunDir`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mke.runtime.errors import MkeError
from mke.train.checkpoint import load_checkpoint
from mke.train.config import load_yaml, with_defaults
from mke.train.fit import resolve_device
from mke.train.methods import NO_REG
from mke.train.tasks import get_task


@dataclass(frozen=True)
class RunDir:
    """Where a run keeps each thing (the layout the pipeline's docstring draws)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def code(self) -> Path:
        return self.root / "code.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    def seed_dir(self, seed: int) -> Path:
        return self.root / f"seed{seed}"

    def teacher(self, seed: int) -> Path:
        return self.seed_dir(seed) / "teacher.pt"

    def teacher_result(self, seed: int) -> Path:
        return self.seed_dir(seed) / "teacher.json"

    def teacher_state(self, seed: int) -> Path:
        """The teacher's training state while it trains (mke.train.fit: resume mid-training)."""
        return self.seed_dir(seed) / "teacher.state.pt"

    def pseudo_labels(self, seed: int) -> Path:
        return self.seed_dir(seed) / "pseudo_labels.pt"

    def pseudo_result(self, seed: int) -> Path:
        return self.seed_dir(seed) / "pseudo_labels.json"

    def student(self, seed: int, slug: str) -> Path:
        return self.seed_dir(seed) / "students" / f"{slug}.pt"

    def student_result(self, seed: int, slug: str) -> Path:
        return self.seed_dir(seed) / "students" / f"{slug}.json"

    def student_state(self, seed: int, slug: str) -> Path:
        """A student's training state while it trains (mke.train.fit: resume mid-training)."""
        return self.seed_dir(seed) / "students" / f"{slug}.state.pt"


def read_json(path: Path) -> dict | None:
    """A result file's content; None if it is missing or unreadable (work not finished)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_config(run: RunDir) -> dict:
    """The config a run was made with, completed from configs/defaults.yaml (a run written before a
    key had its default there gets the value the code used then)."""
    return with_defaults(load_yaml(run.config))


def open_run(path: str | Path) -> tuple[RunDir, dict]:
    """A run folder written by mke-train and its config; an MkeError if the folder holds no run."""
    run = RunDir(Path(path))
    if not run.config.is_file():
        raise MkeError(f"{run.root} is not an mke-train run (no config.yaml there)")
    return run, run_config(run)


_CONTEXT: dict[str, tuple] = {}


def run_context(cfg_json: str) -> tuple[dict, object, object]:
    """(cfg, task, data) for a config given as sorted JSON, built once per process: the worker
    processes' key, a string that pickles cheaply."""
    if cfg_json not in _CONTEXT:
        cfg = json.loads(cfg_json)
        cfg["device"] = resolve_device(cfg["device"])  # `auto` → the device this process trains on
        task = get_task(cfg["task"])
        _CONTEXT.clear()
        _CONTEXT[cfg_json] = (cfg, task, task.build_data(cfg))
    return _CONTEXT[cfg_json]


def task_and_data(cfg: dict) -> tuple[object, object]:
    """The run's task (mke.train.tasks.base.Task) and its data (MKEData), built once per process."""
    _, task, data = run_context(json.dumps(cfg, sort_keys=True))
    return task, data


def load_model(cfg: dict, task, path: Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model of this run from its checkpoint (regularization off: it is for inference);
    returns the model in eval mode and the checkpoint's meta (role, method, modalities, classes …)."""
    state, meta = load_checkpoint(path)
    if meta.get("task") != cfg["task"]:
        raise MkeError(f"checkpoint {path} is of task {meta.get('task')!r}, not {cfg['task']!r}")
    model = task.build_model(cfg, meta["role"], tuple(meta["modalities"]), NO_REG)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise MkeError(f"checkpoint {path} does not fit the model the config builds: {exc}") from None
    return model.eval(), meta


def student_checkpoint(run: RunDir, seed: int, method: str, regularization: str, strength: str) -> Path | None:
    """The checkpoint of the student that fills the table cell (method, regularization, strength) for
    `seed`, e.g. ("MM student", "input_noise", "strong"); None if that student is not finished."""
    wanted = [method, regularization, strength]
    for result in sorted((run.seed_dir(seed) / "students").glob("*.json")):
        if wanted in (read_json(result) or {}).get("cells", []):
            ckpt = result.with_suffix(".pt")
            if ckpt.is_file():
                return ckpt
    return None


def headline_student(run: RunDir, cfg: dict, seed: int, method: str) -> Path | None:
    """`student_checkpoint` of `method` in the run's headline setting (`report.headline`)."""
    h = cfg["report"]["headline"]
    return student_checkpoint(run, seed, method, h["regularization"], h["strength"])
