"""Pseudo labels ỹ on D_u — the teacher's probabilities (softmax, or a sigmoid per class for multilabel
tasks: the task's label kind, `mke.train.label_kinds`) — cached on disk under the teacher's checksum.

The cache stores the teacher's soft predictions once, in the form the label kind keeps them (top-k
of a softmax, dense per-class probabilities); hard labels are derived from them (argmax, or each
class's probability ≥ 0.5), so switching `pseudo_labels.kind` never recomputes. A cache made by
another teacher (different checkpoint bytes) is stale and is recomputed. The file names its label
kind; files written before there were several hold softmax labels, which every single-label kind
reads alike.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import torch

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path, file_sha256
from mke.train.label_kinds import LabelKind, label_kind

FORMAT = "mke-pseudo-labels/1"
UNNAMED_KIND = "classification"  # files without a "kind" predate multilabel: softmax labels


class PseudoLabelCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _read(self) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError):
            return None  # unreadable: treat as absent and recompute
        return payload if isinstance(payload, dict) and payload.get("format") == FORMAT else None

    @staticmethod
    def _unpack(payload: dict) -> "PseudoLabels":
        kind = label_kind(payload.get("kind", UNNAMED_KIND))
        return PseudoLabels(kind.unpack(payload["probs"]), kind, payload.get("confidence"))

    def load(self, teacher_checkpoint: str | Path) -> "PseudoLabels":
        """The cached labels; an error if they are missing or were made by another teacher."""
        cached = self._read()
        if cached is None or cached["teacher_sha256"] != file_sha256(teacher_checkpoint):
            raise MkeError(f"pseudo labels {self.path} are missing or stale for teacher {teacher_checkpoint}")
        return self._unpack(cached)

    def load_or_compute(self, teacher_checkpoint: str | Path,
                        compute: Callable[[], "torch.Tensor | Iterable[torch.Tensor]"],
                        *, kind: "str | LabelKind", top_k: int = 0) -> tuple["PseudoLabels", bool]:
        """Return `(labels, computed)`: the cached labels if made by this teacher, else fresh ones.

        `compute` returns dense probabilities of the task kind `kind` (classes in dim 1), whole or as
        consecutive batches (e.g. `mke.train.tta.tta_batches`); each batch is stored in the kind's form
        as it comes (`LabelKind.pack`: with `top_k` > 0 a softmax's k most likely classes, `TopKProbs`),
        with the exact confidence weight ω kept beside it (fp16), so the dense probabilities of D_u
        (1.1 GB for the built-in 2,000 RGB-D frames) are never held at once.
        """
        kind = label_kind(kind)
        teacher_sha = file_sha256(teacher_checkpoint)
        cached = self._read()
        if cached is not None and cached["teacher_sha256"] == teacher_sha:
            return self._unpack(cached), False
        batches = compute()
        stored, confidence = [], []
        for probs in [batches] if isinstance(batches, torch.Tensor) else batches:
            if probs.ndim < 2 or not torch.isfinite(probs).all():
                raise MkeError(f"teacher {teacher_checkpoint} produced invalid pseudo labels (shape {tuple(probs.shape)})")
            confidence.append(kind.confidence(probs).half())
            stored.append(kind.pack(probs, top_k))
        if not stored:
            raise MkeError(f"teacher {teacher_checkpoint} produced no pseudo labels: the unlabeled split is empty")
        payload = {"format": FORMAT, "teacher_sha256": teacher_sha, "kind": kind.name, "probs": kind.cat(stored),
                   "confidence": torch.cat(confidence)}
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)
        return self._unpack(payload), True


class PseudoLabels:
    """The teacher's soft labels on D_u in their label kind's stored form (dense or top-k probabilities),
    the kind's operations, and the confidence weight ω per element."""

    def __init__(self, probs, kind: "str | LabelKind", confidence: torch.Tensor | None = None):
        self.probs = probs
        self.kind = label_kind(kind)
        self.confidence = confidence

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def nbytes_per_sample(self) -> int:
        probs = self.kind.nbytes(self.probs)
        conf = 0 if self.confidence is None else self.confidence.numel() * 2
        return (probs + conf) // max(1, len(self))


def pseudo_targets(labels: PseudoLabels, kind: str, weighted: bool):
    """Targets and optional confidence weights ω for training: `kind` is "soft" (the probabilities) or
    "hard" (the labels' kind's hard labels: class ids, or 0/1 per class)."""
    if kind not in ("soft", "hard"):
        raise MkeError(f"pseudo_labels.kind must be 'soft' or 'hard', got {kind!r}")
    probs = labels.probs
    weights = None
    if weighted:
        weights = labels.confidence.float() if labels.confidence is not None else labels.kind.confidence(probs[:])
    if kind == "soft":
        return probs, weights
    return labels.kind.hard(probs), weights
