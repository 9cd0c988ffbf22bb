"""Task metrics in the paper's units: accuracy and mIoU in %, mAP in 0–1 (torchmetrics).

Which metric a task reports is its label kind's (`mke.train.label_kinds`); these are the plain metric
functions. torchmetrics is imported where a metric is computed (5 s here: `mke-train --list-tasks`
and the task classes do not need it). Its own argument checks run `torch.unique` over every pixel
(2.6 of the 2.9 s one mIoU of 600 frames at 120×160 took here); `_check_ids` does the same check in
two comparisons, and torchmetrics is called with `validate_args=False`.
"""
from __future__ import annotations

import torch

from mke.runtime.errors import MkeError
from mke.train.losses import IGNORE_INDEX


def class_ids(scores: torch.Tensor) -> torch.Tensor:
    """The most likely class of class scores (classes in dim 1): `argmax(1)`, first on ties, as
    `max(dim=1).indices` — 4× faster over dim 1 on a CPU (1.05 → 0.24 s for 600 frames of 7 × 120 × 160)."""
    return scores.max(dim=1).indices


def score(kind: str, logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The metric of task kind `kind` (a key of mke.train.label_kinds.LABEL_KINDS) of class scores
    `logits` (classes in dim 1) against true `targets`."""
    from mke.train.label_kinds import label_kind

    return label_kind(kind).score(logits, targets)


def score_predictions(kind: str, preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
    """The metric of task kind `kind` of predicted class ids against true ones (single-label kinds)."""
    from mke.train.label_kinds import label_kind

    return label_kind(kind).score_ids(preds, targets, num_classes)


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


def accuracy(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
    """% of samples whose predicted class id is the true one."""
    from torchmetrics.functional.classification import multiclass_accuracy

    preds, targets = _check_ids(preds, targets, num_classes, void=False)
    return round(100.0 * float(multiclass_accuracy(preds, targets, num_classes, average="micro",
                                                   validate_args=False)), 4)


def mean_iou(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
    """Mean over classes of the intersection over union (in %) of predicted and true class ids per
    pixel; void pixels (`IGNORE_INDEX`) do not count."""
    from torchmetrics.functional.classification import multiclass_jaccard_index

    preds, targets = _check_ids(preds, targets, num_classes, void=True)
    return round(100.0 * float(multiclass_jaccard_index(preds, targets, num_classes, average="macro",
                                                        ignore_index=IGNORE_INDEX, validate_args=False)), 4)


def per_class_iou(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> list[float]:
    """IoU of each class in %, NaN where a class appears in neither predictions nor truth."""
    from torchmetrics.functional.classification import multiclass_jaccard_index

    preds, targets = _check_ids(preds, targets, num_classes, void=True)
    ious = multiclass_jaccard_index(preds, targets, num_classes, average="none", ignore_index=IGNORE_INDEX,
                                    zero_division=float("nan"), validate_args=False)
    return [round(100.0 * float(v), 4) for v in ious]


def mean_average_precision(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """mAP (0–1): torchmetrics' multilabel average precision, macro over the classes, of per-class
    probabilities `probs` (N, K) against 0/1 `targets` (N, K; float, bool or integer).

    A class no test sample has is left out of the mean: its AP is undefined, and torchmetrics would
    count it as 0 (with a warning), so the figure would fall with every class a test split lacks."""
    from torchmetrics.functional.classification import multilabel_average_precision

    if probs.shape != targets.shape or probs.dim() != 2:
        raise MkeError(f"multilabel scores {tuple(probs.shape)} and targets {tuple(targets.shape)} must both be "
                       f"(samples, classes)")
    targets = targets.long()
    if bool(((targets != 0) & (targets != 1)).any()):
        raise MkeError("multilabel targets must be 0 or 1 per class")
    present = targets.any(dim=0)
    if not bool(present.any()):
        raise MkeError("no sample has any class: mAP is undefined")
    return round(float(multilabel_average_precision(probs[:, present].float(), targets[:, present],
                                                    int(present.sum()), average="macro")), 6)
