"""The check in progress: its rows, its time budget, and the project's commands run as subprocesses
(each with its log, stopped with everything it started when the budget runs out)."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mke.export.gpu_check.plan import MIN_STAGE_S


@dataclass
class Row:
    """One stage's line of the table: `result` is its figure, or for a skipped or failed stage why."""

    stage: str
    status: str                  # ok, skipped or failed
    result: str
    detail: str = ""
    seconds: float | None = None


MARKS = {"ok": "done", "skipped": "skipped", "failed": "FAILED"}


class BudgetSpent(Exception):
    """Too little of the check's time budget is left to start a stage."""


def say(message: str) -> None:
    print(f"[gpu-check] {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    dry_run: bool
    work: Path                   # the run, the exports, logs/ and gpu_check.json
    deadline: float              # time.monotonic() after which no stage starts
    cfg: dict = field(default_factory=dict)
    python: str = sys.executable
    rows: list[Row] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.work / "run"

    @property
    def export_dir(self) -> Path:
        return self.work / "exports"

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        say(f"{MARKS[row.status]}: {row.stage}: {row.result}")
        return row

    def run_module(self, name: str, args: list[str], cap_s: float) -> tuple[int | None, float, str]:
        """`python -m <args>` with its output in logs/<name>.log, stopped (its whole process group) after
        min(cap_s, the budget left). (exit status, or None when stopped; seconds; the log's last word)."""
        if self.remaining() < MIN_STAGE_S:
            raise BudgetSpent(f"the check's time budget is spent ({max(0.0, self.remaining()):.0f} s left)")
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        timeout = min(cap_s, self.remaining())
        cmd = [self.python, "-m", *args]
        say(f"{name}: python -m {shlex.join(args)} (log {log_path}; at most {timeout:.0f} s)")
        start = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(f"$ {shlex.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the renderers and workers it started too
                proc.wait()
                rc = None
        return rc, time.monotonic() - start, last_line(log_path)


def last_line(path: Path) -> str:
    """The last line of a log that names an error, else its last line."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1][:300]


def failed(stage: str, rc: int | None, seconds: float, line: str) -> Row:
    """The row of a command that failed (rc) or was stopped at the budget (rc None)."""
    if rc is None:
        return Row(stage, "failed", f"stopped after {seconds:.0f} s: the check's time budget", line, seconds)
    return Row(stage, "failed", f"exit status {rc}: {line}", "", seconds)
