"""Task metrics in the paper's units: accuracy and mIoU in %, mAP in 0–1 (torchmetrics)."""
from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_jaccard_index,
    multilabel_average_precision,
)

from mke.train.losses import IGNORE_INDEX


def score(kind: str, logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The task's metric of class scores `logits` (classes in dim 1) against true `targets`."""
    num_classes = logits.shape[1]
    if kind == "classification":
        return 100.0 * float(multiclass_accuracy(logits.argmax(1), targets, num_classes, average="micro"))
    if kind == "segmentation":
        return 100.0 * float(multiclass_jaccard_index(logits.argmax(1), targets, num_classes,
                                                      average="macro", ignore_index=IGNORE_INDEX))
    if kind == "multilabel":
        return float(multilabel_average_precision(torch.sigmoid(logits), targets.long(), num_classes, average="macro"))
    raise ValueError(f"unknown task kind {kind!r}")
