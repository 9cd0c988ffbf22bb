"""Pseudo labels ỹ = softmax(f_t(x^α)) on D_u, cached on disk under the teacher's checksum.

The cache stores the teacher's soft predictions once; hard labels are their argmax, so switching
`pseudo_labels.kind` never recomputes. A cache made by another teacher (different checkpoint
bytes) is stale and is recomputed.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import torch

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path, file_sha256
from mke.train.losses import IGNORE_INDEX, confidence_weight

FORMAT = "mke-pseudo-labels/1"


class TopKProbs:
    """Soft labels kept as their k largest probabilities (fp16) and class ids (uint8) per element.

    Segmentation soft labels are K × H × W per frame; top-2 of 8 classes in this form takes
    6 bytes per pixel instead of 32 (fp32 dense). Indexing returns dense float32 probabilities,
    renormalised over the kept classes, for just the selected samples.
    """

    def __init__(self, values: torch.Tensor, indices: torch.Tensor, num_classes: int):
        self.values, self.indices, self.num_classes = values.half(), indices.to(torch.uint8), int(num_classes)

    @classmethod
    def from_probs(cls, probs: torch.Tensor, k: int) -> "TopKProbs":
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        return cls(values, indices, probs.shape[1])

    @classmethod
    def from_labels(cls, labels: torch.Tensor, k: int, num_classes: int) -> "TopKProbs":
        """One-hot labels in this form; `IGNORE_INDEX` elements get no probability mass."""
        valid = labels != IGNORE_INDEX
        values = torch.zeros((len(labels), k) + labels.shape[1:])
        values[:, 0] = valid.float()
        indices = torch.zeros_like(values, dtype=torch.uint8)
        indices[:, 0] = torch.where(valid, labels, 0).to(torch.uint8)
        return cls(values, indices, num_classes)

    @staticmethod
    def cat(parts: list["TopKProbs"]) -> "TopKProbs":
        return TopKProbs(torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts]), parts[0].num_classes)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index) -> torch.Tensor:
        values = self.values[index].float()
        dense = torch.zeros((values.shape[0], self.num_classes) + values.shape[2:])
        dense.scatter_add_(1, self.indices[index].long(), values)  # padding slots add 0
        return dense / dense.sum(dim=1, keepdim=True).clamp_min(1e-6)

    @property
    def hard(self) -> torch.Tensor:
        """The most likely class per element (uint8), `IGNORE_INDEX` where no class has any probability
        (the void pixels of `from_labels`)."""
        return torch.where(self.values[:, 0] > 0, self.indices[:, 0], IGNORE_INDEX)

    @property
    def nbytes(self) -> int:
        return self.values.numel() * 2 + self.indices.numel()

    def to_payload(self) -> dict:
        return {"values": self.values, "indices": self.indices, "num_classes": self.num_classes}


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
        probs = payload["probs"]
        if isinstance(probs, dict):
            probs = TopKProbs(probs["values"], probs["indices"], probs["num_classes"])
        return PseudoLabels(probs, payload.get("confidence"))

    def load(self, teacher_checkpoint: str | Path) -> "PseudoLabels":
        """The cached labels; an error if they are missing or were made by another teacher."""
        cached = self._read()
        if cached is None or cached["teacher_sha256"] != file_sha256(teacher_checkpoint):
            raise MkeError(f"pseudo labels {self.path} are missing or stale for teacher {teacher_checkpoint}")
        return self._unpack(cached)

    def load_or_compute(self, teacher_checkpoint: str | Path,
                        compute: Callable[[], "torch.Tensor | Iterable[torch.Tensor]"],
                        top_k: int = 0) -> tuple["PseudoLabels", bool]:
        """Return `(labels, computed)`: the cached labels if made by this teacher, else fresh ones.

        `compute` returns dense probabilities (classes in dim 1), whole or as consecutive batches
        (e.g. `mke.train.tta.tta_batches`); with `top_k` > 0 each batch is stored as `TopKProbs` as it
        comes, with the exact confidence weight ω kept beside it (fp16), so the dense probabilities of
        D_u (1.1 GB for the built-in 2,000 RGB-D frames) are never held at once.
        """
        teacher_sha = file_sha256(teacher_checkpoint)
        cached = self._read()
        if cached is not None and cached["teacher_sha256"] == teacher_sha:
            return self._unpack(cached), False
        batches = compute()
        stored, confidence = [], []
        for probs in [batches] if isinstance(batches, torch.Tensor) else batches:
            if probs.ndim < 2 or not torch.isfinite(probs).all():
                raise MkeError(f"teacher {teacher_checkpoint} produced invalid pseudo labels (shape {tuple(probs.shape)})")
            confidence.append(confidence_weight(probs).half())
            stored.append(TopKProbs.from_probs(probs, top_k) if top_k > 0 else probs.contiguous())
        if not stored:
            raise MkeError(f"teacher {teacher_checkpoint} produced no pseudo labels: the unlabeled split is empty")
        probs = TopKProbs.cat(stored).to_payload() if top_k > 0 else torch.cat(stored)
        payload = {"format": FORMAT, "teacher_sha256": teacher_sha, "probs": probs, "confidence": torch.cat(confidence)}
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)
        return self._unpack(payload), True


class PseudoLabels:
    """The teacher's soft labels on D_u (dense or top-k) and their confidence weight ω per element."""

    def __init__(self, probs: "torch.Tensor | TopKProbs", confidence: torch.Tensor | None = None):
        self.probs = probs
        self.confidence = confidence

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def nbytes_per_sample(self) -> int:
        probs = self.probs.nbytes if isinstance(self.probs, TopKProbs) else self.probs.numel() * self.probs.element_size()
        conf = 0 if self.confidence is None else self.confidence.numel() * 2
        return (probs + conf) // max(1, len(self))


def target_class_ids(targets) -> torch.Tensor:
    """Class ids of any training targets: ids as they are, probabilities (dense or `TopKProbs`) by their
    most likely class; elements with no probability mass (padding, void) become `IGNORE_INDEX`."""
    if isinstance(targets, TopKProbs):
        return targets.hard
    if not targets.is_floating_point():
        return targets
    top = targets.max(dim=1)
    return torch.where(top.values > 0, top.indices, IGNORE_INDEX)


def pseudo_targets(labels: PseudoLabels, kind: str, weighted: bool):
    """Targets and optional confidence weights ω for training: `kind` is "soft" or "hard"."""
    if kind not in ("soft", "hard"):
        raise MkeError(f"pseudo_labels.kind must be 'soft' or 'hard', got {kind!r}")
    probs = labels.probs
    weights = None
    if weighted:
        weights = labels.confidence.float() if labels.confidence is not None else confidence_weight(probs[:])
    if kind == "soft":
        return probs, weights
    return target_class_ids(probs).to(torch.uint8), weights
