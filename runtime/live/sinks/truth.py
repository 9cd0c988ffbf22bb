"""Scoring a recording whose truth is known (`--truth FILE.json`): the model's top class at the moments
the file names against their true class — how a robot engineer checks that what runs live agrees with
what training measured on the same clips (train/serve skew shows up here first).

The file (the built-in audio-visual data writes one beside its replay pair): {"class_names": [...],
"clips": [{"eval_s": seconds from the first frame, "class": id}, ...]}. A moment is scored on the
frame nearest to it within `tolerance_s` (half a frame at 10 FPS by default); a moment no processed
frame comes near (a frame dropped live, a stream stopped early) is counted as missed, not as wrong.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mke.runtime.errors import MkeError


def read_truth(path: str | Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(moments in seconds, class ids in the model's class order) from a truth file, checked."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        names = raw.get("class_names") or classes
        moments = np.array([float(c["eval_s"]) for c in raw["clips"]])
        ids = [int(c["class"]) for c in raw["clips"]]
    except FileNotFoundError:
        raise MkeError(f"--truth {path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MkeError(f"--truth {path}: expected JSON with \"clips\": [{{\"eval_s\": seconds, \"class\": id}}, …] "
                       f"and optionally \"class_names\" ({exc.__class__.__name__}: {exc})") from None
    unknown = sorted({names[i] for i in ids if 0 <= i < len(names)} - set(classes))
    if unknown or any(not 0 <= i < len(names) for i in ids):
        raise MkeError(f"--truth {path}: its classes {unknown or ids} are not the model's ({', '.join(classes)})")
    return moments, np.array([classes.index(names[i]) for i in ids])


class TruthSink:
    """Scores each processed frame that falls on a truth moment; `result()` after the run."""

    def __init__(self, path: str | Path, classes: list[str], tolerance_s: float = 0.05):
        self.truth_file, self.classes, self.tolerance_s = Path(path), list(classes), float(tolerance_s)
        self.moments, self.truth = read_truth(path, self.classes)
        self._predicted: dict[int, tuple[float, int]] = {}  # moment → (distance, predicted class)
        self._t0: float | None = None

    def write(self, frame, prediction, timing, stats) -> None:
        if self._t0 is None:
            self._t0 = frame.timestamp_s
        if not prediction.top or not len(self.moments):
            return
        t = frame.timestamp_s - self._t0
        k = int(np.abs(self.moments - t).argmin())
        distance = abs(float(self.moments[k]) - t)
        if distance <= self.tolerance_s and distance < self._predicted.get(k, (np.inf, 0))[0]:
            self._predicted[k] = (distance, self.classes.index(prediction.top[0][0]))

    def result(self) -> dict:
        scored = sorted(self._predicted)
        correct = sum(int(self._predicted[k][1] == self.truth[k]) for k in scored)
        return {"file": str(self.truth_file), "moments": int(len(self.moments)), "scored": len(scored),
                "missed": int(len(self.moments) - len(scored)), "correct": correct,
                "accuracy": round(100.0 * correct / len(scored), 2) if scored else None}

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass
