"""Pseudo labels ỹ = softmax(f_t(x^α)) on D_u, cached on disk under the teacher's checksum.

The cache stores the teacher's soft predictions once; hard labels are their argmax, so switching
`pseudo_labels.kind` never recomputes. A cache made by another teacher (different checkpoint
bytes) is stale and is recomputed.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Callable

import torch

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path, file_sha256
from mke.train.losses import confidence_weight

FORMAT = "mke-pseudo-labels/1"


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

    def load(self, teacher_checkpoint: str | Path) -> torch.Tensor:
        """The cached probabilities; an error if they are missing or were made by another teacher."""
        cached = self._read()
        if cached is None or cached["teacher_sha256"] != file_sha256(teacher_checkpoint):
            raise MkeError(f"pseudo labels {self.path} are missing or stale for teacher {teacher_checkpoint}")
        return cached["probs"]

    def load_or_compute(self, teacher_checkpoint: str | Path,
                        compute: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, bool]:
        """Return `(probs, computed)`: the cached probabilities if made by this teacher, else fresh ones."""
        teacher_sha = file_sha256(teacher_checkpoint)
        cached = self._read()
        if cached is not None and cached["teacher_sha256"] == teacher_sha:
            return cached["probs"], False
        probs = compute()
        if probs.ndim < 2 or not torch.isfinite(probs).all():
            raise MkeError(f"teacher {teacher_checkpoint} produced invalid pseudo labels (shape {tuple(probs.shape)})")
        payload = {"format": FORMAT, "teacher_sha256": teacher_sha, "probs": probs.contiguous()}
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)
        return probs, True


def pseudo_targets(probs: torch.Tensor, kind: str, weighted: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Targets and optional confidence weights from soft pseudo labels: `kind` is "soft" or "hard"."""
    if kind not in ("soft", "hard"):
        raise MkeError(f"pseudo_labels.kind must be 'soft' or 'hard', got {kind!r}")
    weights = confidence_weight(probs) if weighted else None
    targets = probs if kind == "soft" else probs.argmax(dim=1)
    return targets, weights
