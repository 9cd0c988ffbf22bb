"""Task metrics in the paper's units: accuracy and mIoU in %, mAP in 0–1 (torchmetrics).

torchmetrics' own argument checks run `torch.unique` over every pixel (2.6 of the 2.9 s one mIoU of
600 frames at 120×160 took here); `_check_ids` does the same check in two comparisons, and
torchmetrics is called with `validate_args=False`.
"""
from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_jaccard_index,
    multilabel_average_precision,
)

from mke.runtime.errors import MkeError
from mke.train.losses import IGNORE_INDEX


def class_ids(scores: torch.Tensor) -> torch.Tensor:
    """The most likely class of class scores (classes in dim 1): `argmax(1)`, first on ties, as
    `max(dim=1).indices` — 4× faster over dim 1 on a CPU (1.05 → 0.24 s for 600 frames of 7 × 120 × 160)."""
    return scores.max(dim=1).indices


def score(kind: str, logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The task's metric of class scores `logits` (classes in dim 1) against true `targets`."""
    if kind == "multilabel":
        return float(multilabel_average_precision(torch.sigmoid(logits), targets.long(), logits.shape[1], average="macro"))
    return score_predictions(kind, class_ids(logits), targets, logits.shape[1])


def _check_ids(preds: torch.Tensor, targets: torch.Tensor, num_classes: int, void: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Class ids as int64, after checking they lie in 0..num_classes−1 (targets may also be void)."""
    preds, targets = preds.long(), targets.long()
    if preds.shape != targets.shape:
        raise MkeError(f"predictions {tuple(preds.shape)} and targets {tuple(targets.shape)} differ in shape")
    if preds.numel() and (int(preds.min()) < 0 or int(preds.max()) >= num_classes):
        raise MkeError(f"predicted class ids must lie in 0..{num_classes - 1}")
    bad = (targets < 0) | (targets >= num_classes)
    if void:
        bad &= targets != IGNORE_INDEX
    if bool(bad.any()):
        raise MkeError(f"target class id {int(targets[bad][0])} is outside 0..{num_classes - 1}"
                       + (f" (and {IGNORE_INDEX} = void)" if void else ""))
    return preds, targets


def score_predictions(kind: str, preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
    """Accuracy or mIoU (in %) of predicted class ids against true ones."""
    if kind == "classification":
        preds, targets = _check_ids(preds, targets, num_classes, void=False)
        return round(100.0 * float(multiclass_accuracy(preds, targets, num_classes, average="micro",
                                                       validate_args=False)), 4)
    if kind == "segmentation":
        preds, targets = _check_ids(preds, targets, num_classes, void=True)
        return round(100.0 * float(multiclass_jaccard_index(preds, targets, num_classes, average="macro",
                                                            ignore_index=IGNORE_INDEX, validate_args=False)), 4)
    raise ValueError(f"no metric of predicted class ids for task kind {kind!r}")


def per_class_iou(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> list[float]:
    """IoU of each class in %, NaN where a class appears in neither predictions nor truth."""
    preds, targets = _check_ids(preds, targets, num_classes, void=True)
    ious = multiclass_jaccard_index(preds, targets, num_classes, average="none", ignore_index=IGNORE_INDEX,
                                    zero_division=float("nan"), validate_args=False)
    return [round(100.0 * float(v), 4) for v in ious]
