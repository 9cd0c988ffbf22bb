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
    if kind == "multilabel":
        return float(multilabel_average_precision(torch.sigmoid(logits), targets.long(), logits.shape[1], average="macro"))
    return score_predictions(kind, logits.argmax(1), targets, logits.shape[1])


def score_predictions(kind: str, preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
    """Accuracy or mIoU (in %) of predicted class ids against true ones."""
    preds, targets = preds.long(), targets.long()
    if kind == "classification":
        return round(100.0 * float(multiclass_accuracy(preds, targets, num_classes, average="micro")), 4)
    if kind == "segmentation":
        return round(100.0 * float(multiclass_jaccard_index(preds, targets, num_classes, average="macro",
                                                            ignore_index=IGNORE_INDEX)), 4)
    raise ValueError(f"no metric of predicted class ids for task kind {kind!r}")


def per_class_iou(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> list[float]:
    """IoU of each class in %, NaN where a class appears in neither predictions nor truth."""
    ious = multiclass_jaccard_index(preds.long(), targets.long(), num_classes, average="none",
                                    ignore_index=IGNORE_INDEX, zero_division=float("nan"))
    return [round(100.0 * float(v), 4) for v in ious]
