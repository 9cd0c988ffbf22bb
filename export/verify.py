"""Run an ONNX artifact on the test split and compare it with the PyTorch model it came from."""
from __future__ import annotations

import numpy as np
import torch

from mke.export.artifacts import Parity, agreement
from mke.runtime.onnxrt import ort_session  # noqa: F401  (mke.export's CPU sessions: the one factory)
from mke.train.data import Split
from mke.train.metrics import score


def ort_predict(session, split: Split, names: list[str], batch: int = 1) -> torch.Tensor:
    """Class scores for every sample, `batch` at a time (1 for static-shape models)."""
    outs = []
    n = len(split)
    for start in range(0, n, batch):
        feed = {m: split.inputs[m][start:start + batch].numpy() for m in names}
        outs.append(torch.from_numpy(np.asarray(session.run(None, feed)[0], dtype=np.float32)))
    return torch.cat(outs)


def parity(reference: torch.Tensor, logits: torch.Tensor, kind: str, targets: torch.Tensor) -> Parity:
    """max |Δ| to the PyTorch model's scores, the % of predictions that agree (`agreement`: classes, or
    each class's yes / no for multilabel), and both models' metric on the test split."""
    agree = agreement(kind, reference.numpy(), logits.numpy())
    return Parity(float((reference - logits).abs().max()), agree, score(kind, logits, targets),
                  score(kind, reference, targets))
