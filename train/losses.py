"""The MKE student losses and the confidence weight ω, for both kinds of labels.

One label per element (softmax): KL divergence to soft pseudo labels, cross entropy to hard ones,
ω = 1 − H(ỹ) / log K. Several labels per element (multilabel, a sigmoid per class): per-class binary
KL divergence to soft labels, binary cross entropy to hard (0/1) ones, ω = 1 − mean over classes of
the binary entropy / log 2. `mke.train.label_kinds` says which a task uses; nothing here branches on it.

Class scores live in dimension 1 (`(N, K)` for classification, `(N, K, H, W)` for segmentation), so
one set of functions serves every task kind. A per-element weight (the segmentation confidence
weight ω) multiplies the per-sample or per-pixel loss before averaging.

Data-parallel training (torchrun): inside `over_global_batch` every loss here averages over the
global batch, not over the rank's share of it: the rank's sum over its elements times the number of
ranks, over the count of all ranks' elements (pixels not ignored; for class-weighted cross entropy,
the sum of their class weights). DDP's mean of the ranks' gradients is then the gradient of the
one-process mean even where the ranks' shares count differently (ignored pixels, class weights).
Outside it (one process), the plain means.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Callable

import torch
import torch.nn.functional as F

from mke.runtime.spec import VOID

IGNORE_INDEX = VOID


def confidence_weight(probs: torch.Tensor) -> torch.Tensor:
    """ω = 1 − H(ỹ) / log K over the class dimension (dim 1): 1 for a one-hot label, 0 for uniform.

    The paper's supplement prints "1 − Σ ỹ log ỹ / log K", a sign slip: Σ ỹ log ỹ = −H, and its text
    says low-confidence pixels get small weight, which only 1 − H / log K does.
    """
    k = probs.shape[1]
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1)
    return (1.0 - entropy / math.log(k)).clamp(0.0, 1.0)


_GLOBAL_SUM: contextvars.ContextVar = contextvars.ContextVar("global_sum", default=None)


@contextlib.contextmanager
def over_global_batch(total: Callable[[torch.Tensor], torch.Tensor], ranks: int):
    """Inside, the losses average over the global batch of `ranks` data-parallel processes; `total`
    sums a tensor over them (mke.train.distributed.reduce_sum; every rank must compute the same losses
    in the same order, as DDP's lockstep steps do)."""
    token = _GLOBAL_SUM.set((total, ranks))
    try:
        yield
    finally:
        _GLOBAL_SUM.reset(token)


def _global_mean(total: torch.Tensor, count: torch.Tensor):
    """`total` / `count` over the global batch inside `over_global_batch` (scaled by the ranks, whose
    gradients DDP averages); None outside it."""
    reduce = _GLOBAL_SUM.get()
    if reduce is None:
        return None
    sum_over_ranks, ranks = reduce
    return total * ranks / sum_over_ranks(count.detach().to(total.dtype).reshape(1)).clamp_min(1e-12)[0]


def _weighted_mean(per_item: torch.Tensor, weight: torch.Tensor | None, valid: torch.Tensor | None) -> torch.Tensor:
    if weight is not None:
        per_item = per_item * weight
    if valid is not None:
        per_item = per_item * valid
        total, count = per_item.sum(), valid.sum()
        mean = _global_mean(total, count)
        return total / count.clamp_min(1) if mean is None else mean
    mean = _global_mean(per_item.sum(), torch.tensor(per_item.numel(), device=per_item.device))
    return per_item.mean() if mean is None else mean


def soft_target_loss(logits: torch.Tensor, probs: torch.Tensor, weight: torch.Tensor | None = None,
                     class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over samples (and pixels) of KL(ỹ ‖ softmax(logits)); `class_weight` applies by ỹ's argmax."""
    log_p = F.log_softmax(logits, dim=1)
    kl = (probs * (torch.log(probs.clamp_min(1e-12)) - log_p)).sum(dim=1)
    if class_weight is not None:
        cw = class_weight[probs.max(dim=1).indices]  # = argmax (first on ties), ~6× faster over dim 1 on a CPU
        weight = cw if weight is None else weight * cw
    return _weighted_mean(kl, weight, None)


def hard_target_loss(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None,
                     class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over samples (and pixels) of cross entropy; pixels labelled `IGNORE_INDEX` do not count."""
    if weight is None and _GLOBAL_SUM.get() is None:
        return F.cross_entropy(logits, labels, weight=class_weight, ignore_index=IGNORE_INDEX)
    if weight is None:  # over the global batch: F.cross_entropy's mean, whose count is Σ class weights of the valid
        ce = F.cross_entropy(logits, labels, weight=class_weight, ignore_index=IGNORE_INDEX, reduction="none")
        valid = labels != IGNORE_INDEX
        count = valid.sum() if class_weight is None else class_weight[labels[valid]].sum()
        return _global_mean(ce.sum(), count)
    ce = F.cross_entropy(logits, labels, weight=class_weight, ignore_index=IGNORE_INDEX, reduction="none")
    valid = (labels != IGNORE_INDEX).to(ce.dtype)
    return _weighted_mean(ce, weight, valid)


def target_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Dispatch on the target: integer class ids → cross entropy, probabilities → KL divergence."""
    if target.dtype in (torch.int64, torch.int32, torch.uint8):
        return hard_target_loss(logits, target.long(), weight, class_weight)
    return soft_target_loss(logits, target.to(logits.dtype), weight, class_weight)


def binary_confidence_weight(probs: torch.Tensor) -> torch.Tensor:
    """ω = 1 − mean_k H_b(ỹ_k) / log 2 for independent per-class probabilities (dim 1), H_b the binary
    entropy: 1 when every class is surely on or off, 0 when every class is a coin toss."""
    q = 1.0 - probs
    entropy = -(probs * torch.log(probs.clamp_min(1e-12)) + q * torch.log(q.clamp_min(1e-12)))
    return (1.0 - entropy.mean(dim=1) / math.log(2.0)).clamp(0.0, 1.0)


def _per_class_mean(per_class: torch.Tensor, class_weight: torch.Tensor | None) -> torch.Tensor:
    """Each element's loss: the mean over classes (dim 1) of its per-class terms, class-weighted."""
    if class_weight is not None:
        per_class = per_class * class_weight.view(1, -1, *([1] * (per_class.dim() - 2)))
    return per_class.mean(dim=1)


def binary_soft_target_loss(logits: torch.Tensor, probs: torch.Tensor, weight: torch.Tensor | None = None,
                            class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over samples (and pixels) of the per-class binary KL(ỹ_k ‖ sigmoid(logit_k)), averaged over
    the classes (each class weighted by `class_weight`, if given). With 0/1 labels it equals binary
    cross entropy."""
    q = 1.0 - probs
    kl = (probs * (torch.log(probs.clamp_min(1e-12)) - F.logsigmoid(logits))
          + q * (torch.log(q.clamp_min(1e-12)) - F.logsigmoid(-logits)))
    return _weighted_mean(_per_class_mean(kl, class_weight), weight, None)


def binary_hard_target_loss(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None,
                            class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over samples (and pixels) of the binary cross entropy of each class's 0/1 label, averaged over
    the classes (each class weighted by `class_weight`, if given)."""
    bce = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
    return _weighted_mean(_per_class_mean(bce, class_weight), weight, None)
