"""Scoring a recording whose truth is known (`--truth FILE.json`): the model's predictions at the moments
the file names against their truth — how a robot engineer checks that what runs live agrees with
what training measured on the same clips (train/serve skew shows up here first).

The file (the built-in audio-visual data writes one beside its replay pair): {"class_names": [...],
"clips": [{"eval_s": seconds from the first frame, "class": id}, ...]} for a single-label model, scored
by accuracy of the top class; for a multilabel model (`"task": "multilabel"`, the events data's) each
clip gives `"target"`, 0/1 per class (or `"classes"`, the ids that happen), scored by mAP over the
moments (average precision per class, as training's metric, macro over the classes that happen at
least once) and by the share of moments whose decided classes (over their thresholds) are exactly the
true ones. A moment is scored on the frame nearest to it within `tolerance_s` (half a frame at 10 FPS
by default); a moment no processed frame comes near (a frame dropped live, a stream stopped early) is
counted as missed, not as wrong.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mke.runtime.errors import MkeError

EXPECTED = {"classification": '"clips": [{"eval_s": seconds, "class": id}, …]',
            "multilabel": '"clips": [{"eval_s": seconds, "target": [0/1 per class]}, …] (or "classes": [ids])'}


def average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    """Average precision of one class: scores (M,) against 0/1 truth (M,), as scikit-learn's
    `average_precision_score` (precision at each distinct score, weighted by the recall it adds)."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]   # the end of each run of equal scores
    hits = np.cumsum(t)[last]
    precision, recall = hits / (last + 1), hits / t.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """AP macro over the classes that happen at least once (M, K); None when none does."""
    present = [k for k in range(truth.shape[1]) if truth[:, k].any()]
    if not present:
        return None
    return float(np.mean([average_precision(scores[:, k], truth[:, k]) for k in present]))


def read_truth(path: str | Path, classes: list[str], kind: str = "classification") -> tuple[np.ndarray, np.ndarray]:
    """(moments in seconds, truth in the model's class order) from a truth file, checked: class ids (M,)
    for a single-label model, 0/1 (M, K) for a multilabel one."""
    path = Path(path)
    multilabel = kind == "multilabel"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and raw.get("task", kind) == "multilabel" and not multilabel:
            raise MkeError(f"--truth {path} holds multilabel truth (several classes a clip); the model is a "
                           f"{kind} model")
        names = raw.get("class_names") or classes
        moments = np.array([float(c["eval_s"]) for c in raw["clips"]])
        if multilabel:
            sets = [[i for i, on in enumerate(c["target"]) if on] if "target" in c else [int(i) for i in c["classes"]]
                    for c in raw["clips"]]
        else:
            sets = [[int(c["class"])] for c in raw["clips"]]
    except FileNotFoundError:
        raise MkeError(f"--truth {path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MkeError(f"--truth {path}: expected JSON with {EXPECTED.get(kind, EXPECTED['classification'])} and "
                       f"optionally \"class_names\" ({exc.__class__.__name__}: {exc})") from None
    ids = [i for s in sets for i in s]
    unknown = sorted({names[i] for i in ids if 0 <= i < len(names)} - set(classes))
    if unknown or any(not 0 <= i < len(names) for i in ids):
        raise MkeError(f"--truth {path}: its classes {unknown or ids} are not the model's ({', '.join(classes)})")
    if not multilabel:
        return moments, np.array([classes.index(names[s[0]]) for s in sets])
    truth = np.zeros((len(sets), len(classes)), np.uint8)
    for row, s in zip(truth, sets):
        row[[classes.index(names[i]) for i in s]] = 1
    return moments, truth


class TruthSink:
    """Scores each processed frame that falls on a truth moment; `result()` after the run."""

    def __init__(self, path: str | Path, classes: list[str], tolerance_s: float = 0.05, kind: str = "classification"):
        self.truth_file, self.classes, self.tolerance_s = Path(path), list(classes), float(tolerance_s)
        self.multilabel = kind == "multilabel"
        self.moments, self.truth = read_truth(path, self.classes, kind)
        self._predicted: dict[int, tuple[float, object]] = {}  # moment → (distance, prediction)
        self._t0: float | None = None

    def write(self, frame, prediction, timing, stats) -> None:
        if self._t0 is None:
            self._t0 = frame.timestamp_s
        if not len(self.moments) or (prediction.scores is None if self.multilabel else not prediction.top):
            return
        t = frame.timestamp_s - self._t0
        k = int(np.abs(self.moments - t).argmin())
        distance = abs(float(self.moments[k]) - t)
        if distance <= self.tolerance_s and distance < self._predicted.get(k, (np.inf, None))[0]:
            if self.multilabel:
                on = np.zeros(len(self.classes), np.uint8)
                on[[self.classes.index(name) for name, _ in prediction.top]] = 1
                self._predicted[k] = (distance, (np.asarray(prediction.scores, np.float64), on))
            else:
                self._predicted[k] = (distance, self.classes.index(prediction.top[0][0]))

    def result(self) -> dict:
        scored = sorted(self._predicted)
        out = {"file": str(self.truth_file), "moments": int(len(self.moments)), "scored": len(scored),
               "missed": int(len(self.moments) - len(scored))}
        if not self.multilabel:
            correct = sum(int(self._predicted[k][1] == self.truth[k]) for k in scored)
            return {**out, "correct": correct,
                    "accuracy": round(100.0 * correct / len(scored), 2) if scored else None}
        if not scored:
            return {**out, "correct": 0, "map": None, "exact": None}
        scores = np.stack([self._predicted[k][1][0] for k in scored])
        decided = np.stack([self._predicted[k][1][1] for k in scored])
        truth = self.truth[scored]
        correct = int((decided == truth).all(axis=1).sum())
        ap = mean_average_precision(scores, truth)
        return {**out, "correct": correct, "map": None if ap is None else round(ap, 4),
                "exact": round(100.0 * correct / len(scored), 2)}

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass
