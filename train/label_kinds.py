"""What a task's labels are, as one table of operations that every stage of training uses.

A task kind (`Task.kind`, the model spec's `kind`: mke.runtime.spec.TASK_KINDS) names one entry of
`LABEL_KINDS`. Classification and segmentation have one label per element (sample or pixel): class
scores go through a softmax, and the classes compete. Multilabel tasks (audio-visual events: several
can sound at once) have a sigmoid per class: each class is on or off on its own.

| operation | single-label (classification, segmentation) | multilabel |
|---|---|---|
| activation | softmax over classes | sigmoid per class |
| soft pseudo label | the probabilities (top-k of them: `TopKProbs`) | the per-class probabilities, dense fp16 |
| hard pseudo label | argmax (class ids) | probability ≥ 0.5 (0/1 per class) |
| loss | KL divergence (soft), cross entropy (hard) | per-class binary KL (soft), binary cross entropy (hard) |
| confidence ω | 1 − H(ỹ) / log K | 1 − mean over classes of H_b(ỹ_k) / log 2 |
| test-time augmentation | the mean of the views' activations | the same |
| metric | accuracy, mIoU (%) | mAP (0–1), macro over classes |

The live decoding of each kind (argmax; the classes over their thresholds) is torch-free, in
`mke.runtime.live.predictions`, keyed by the same names. A new kind is one class here registered with
`@register_label_kind`, and one decoder there.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

from mke.runtime.errors import MkeError
from mke.runtime.spec import MULTILABEL_THRESHOLD, TASK_KINDS
from mke.train import losses, metrics
from mke.train.losses import IGNORE_INDEX
from mke.train.soft_labels import TopKProbs, target_class_ids


class LabelKind(ABC):
    """The operations of one kind of labels. Targets are class ids or 0/1 labels (hard, an integer or
    bool dtype) or probabilities (soft, floating point), classes in dim 1 wherever there are classes."""

    name: str = ""        # a task kind: mke.runtime.spec.TASK_KINDS
    metric: str = ""      # the metric's name in metrics.json
    dense: bool = False   # one prediction per pixel: the output keeps the spatial size of the image inputs
    points: float = 1.0   # budget points (1/100 of full scale) in one unit of the metric: % metrics 1, mAP (0–1) 100

    # ---- activation: class scores (logits) → probabilities
    @abstractmethod
    def activate(self, scores: torch.Tensor) -> torch.Tensor:
        """Probabilities of class scores (classes in dim 1)."""

    # ---- pseudo labels
    @abstractmethod
    def confidence(self, probs: torch.Tensor) -> torch.Tensor:
        """The confidence weight ω ∈ [0, 1] of each element (sample or pixel) of soft labels."""

    @abstractmethod
    def hard(self, probs) -> torch.Tensor:
        """Hard labels of soft ones (dense, or the kind's stored form); hard labels stay as they are."""

    def check(self, pl_cfg: dict) -> None:
        """An MkeError if the `pseudo_labels` settings ask for what this kind cannot do: before any training."""

    @abstractmethod
    def pack(self, probs: torch.Tensor, top_k: int):
        """One batch of the teacher's probabilities in the form the pseudo-label cache keeps."""

    @abstractmethod
    def cat(self, packed: list):
        """The packed batches, in order, as one value `torch.save` writes (weights only)."""

    @abstractmethod
    def unpack(self, payload):
        """`cat`'s value read back: soft targets, indexable by sample (each index gives dense probabilities)."""

    @abstractmethod
    def nbytes(self, stored) -> int:
        """Bytes the stored soft labels take."""

    @abstractmethod
    def scores_of(self, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Class scores whose activation gives `targets` (probabilities; hard labels as certain ones), e.g.
        the teacher's pseudo labels as a node of a network that distils between scores (DMD)."""

    @abstractmethod
    def classes_shown(self, hard: torch.Tensor, num_classes: int, min_share: float) -> torch.Tensor:
        """bool (N, K): which classes the hard labels give each sample (per-pixel labels: at least
        `min_share` of its pixels)."""

    @abstractmethod
    def true_targets(self, labels) -> torch.Tensor:
        """A dataset's true labels (numpy or torch) as this kind's hard targets: class ids (int64) for a
        single-label kind, 0/1 per class (uint8) for multilabel."""

    @abstractmethod
    def true_as(self, labels: torch.Tensor, like) -> torch.Tensor:
        """True labels (of D_l) in the form of the training targets `like` (NOISY student's pseudo labels)."""

    # ---- loss
    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None,
             class_weight: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss of class scores against hard or soft targets, weighted per element by
        `weight` (ω) and per class by `class_weight`."""

    # ---- metric
    @abstractmethod
    def score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """The task metric of class scores against the true targets."""

    @abstractmethod
    def score_probs(self, probs: torch.Tensor, targets: torch.Tensor) -> float:
        """The task metric of probabilities (`activate`'s, or their mean over test-time views)."""

    @abstractmethod
    def score_labels(self, probs, targets: torch.Tensor, num_classes: int) -> float:
        """The task metric of pseudo labels (the stored soft labels) against the true labels of D_u."""

    def score_ids(self, preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
        """The task metric of predicted class ids (single-label kinds)."""
        raise MkeError(f"a {self.name} task is scored on class probabilities ({self.metric}), not on class ids")

    def evaluate(self, logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict:
        """A model's result on the test split: {"value": the metric} (and what else the kind reports)."""
        return {"value": self.score(logits, targets)}


LABEL_KINDS: dict[str, LabelKind] = {}


def register_label_kind(cls: type[LabelKind]) -> type[LabelKind]:
    """Class decorator: make `cls` the operations of task kind `cls.name`."""
    if cls.name not in TASK_KINDS:
        raise MkeError(f"label kind {cls.__qualname__} is named {cls.name!r}, which is not a task kind of the "
                       f"model spec ({', '.join(TASK_KINDS)})")
    LABEL_KINDS[cls.name] = cls()
    return cls


def label_kind(kind: "str | LabelKind") -> LabelKind:
    """The operations of task kind `kind` (a name of mke.runtime.spec.TASK_KINDS, or the operations themselves)."""
    if isinstance(kind, LabelKind):
        return kind
    if kind not in LABEL_KINDS:
        raise MkeError(f"unknown task kind {kind!r}; known: {', '.join(LABEL_KINDS)}")
    return LABEL_KINDS[kind]


def one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Class ids (N, …) as probabilities (N, K, …); void elements (`IGNORE_INDEX`) get no mass."""
    valid = labels != IGNORE_INDEX
    hot = F.one_hot(labels.clamp(max=k - 1), k).movedim(-1, 1).float()
    return hot * valid.unsqueeze(1)


class SingleLabel(LabelKind):
    """One class per element: softmax, top-k soft labels, argmax, KL / cross entropy, ω by entropy."""

    def activate(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.softmax(scores, dim=1)

    def confidence(self, probs: torch.Tensor) -> torch.Tensor:
        return losses.confidence_weight(probs)

    def hard(self, probs) -> torch.Tensor:
        return target_class_ids(probs).to(torch.uint8)

    def pack(self, probs: torch.Tensor, top_k: int):
        return TopKProbs.from_probs(probs, top_k) if top_k > 0 else probs.contiguous()

    def cat(self, packed: list):
        return TopKProbs.cat(packed).to_payload() if isinstance(packed[0], TopKProbs) else torch.cat(packed)

    def unpack(self, payload):
        return TopKProbs.from_payload(payload) if isinstance(payload, dict) else payload

    def nbytes(self, stored) -> int:
        return stored.nbytes if isinstance(stored, TopKProbs) else stored.numel() * stored.element_size()

    def true_targets(self, labels) -> torch.Tensor:
        return torch.as_tensor(labels).long()

    def scores_of(self, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
        probs = targets.float() if targets.is_floating_point() else one_hot(targets, num_classes)
        return probs.clamp_min(1e-6).log()   # log-probabilities: softmax gives the probabilities back

    def classes_shown(self, hard: torch.Tensor, num_classes: int, min_share: float) -> torch.Tensor:
        k = num_classes
        ids = hard.reshape(len(hard), -1).long()
        counts = torch.zeros((len(ids), k + 1), dtype=torch.long)
        counts.scatter_add_(1, ids.clamp(max=k), torch.ones_like(ids))  # void (255) → the spare column k
        return counts[:, :k].float() / ids.shape[1] >= (min_share if ids.shape[1] > 1 else 1.0)

    def true_as(self, labels: torch.Tensor, like) -> torch.Tensor:
        if isinstance(like, TopKProbs):
            return TopKProbs.from_labels(labels, like.values.shape[1], like.num_classes)
        if like.is_floating_point():
            return one_hot(labels, like.shape[1])
        return labels

    def loss(self, logits, targets, weight=None, class_weight=None):
        return losses.target_loss(logits, targets, weight, class_weight)

    def score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        return self.score_ids(metrics.class_ids(logits), targets, logits.shape[1])

    def score_probs(self, probs: torch.Tensor, targets: torch.Tensor) -> float:
        return self.score(probs, targets)  # the most probable class: argmax alike

    def score_labels(self, probs, targets: torch.Tensor, num_classes: int) -> float:
        return self.score_ids(self.hard(probs), targets, num_classes)

    @abstractmethod
    def score_ids(self, preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
        ...


@register_label_kind
class Classification(SingleLabel):
    name = "classification"
    metric = "accuracy"

    def score_ids(self, preds, targets, num_classes):
        return metrics.accuracy(preds, targets, num_classes)


@register_label_kind
class Segmentation(SingleLabel):
    name = "segmentation"
    metric = "miou"
    dense = True

    def score_ids(self, preds, targets, num_classes):
        return metrics.mean_iou(preds, targets, num_classes)

    def evaluate(self, logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict:
        """mIoU and the IoU of each class."""
        preds = metrics.class_ids(logits)
        return {"value": metrics.mean_iou(preds, targets, num_classes),
                "per_class": metrics.per_class_iou(preds, targets, num_classes)}


@register_label_kind
class Multilabel(LabelKind):
    """Each class on or off on its own: sigmoid, dense per-class soft labels, probability ≥ 0.5,
    binary KL / binary cross entropy, ω by the mean binary entropy, mAP. Targets are (N, K): 0/1 labels
    (bool or integer: hard; float 0/1: soft ones that happen to be certain) or probabilities."""

    name = "multilabel"
    metric = "map"
    points = 100.0
    threshold = MULTILABEL_THRESHOLD   # a hard label's class is on where its probability reaches this

    def activate(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(scores)

    def confidence(self, probs: torch.Tensor) -> torch.Tensor:
        return losses.binary_confidence_weight(probs)

    def hard(self, probs) -> torch.Tensor:
        if not probs.is_floating_point():
            return probs.to(torch.uint8)
        return (probs >= self.threshold).to(torch.uint8)

    def check(self, pl_cfg: dict) -> None:
        self._check_top_k(pl_cfg["top_k"])

    @staticmethod
    def _check_top_k(top_k: int) -> None:
        if top_k:
            raise MkeError("pseudo_labels.top_k keeps the most likely classes of a softmax, renormalised; a "
                           "multilabel task's classes are independent and its labels are kept whole (fp16, "
                           "2 bytes a class): set pseudo_labels.top_k=0")

    def pack(self, probs: torch.Tensor, top_k: int):
        self._check_top_k(top_k)
        return probs.half().contiguous()   # 2 bytes a class; ω is computed from the fp32 probabilities

    def cat(self, packed: list):
        return torch.cat(packed)

    def unpack(self, payload):
        return payload

    def nbytes(self, stored) -> int:
        return stored.numel() * stored.element_size()

    def true_targets(self, labels) -> torch.Tensor:
        labels = torch.as_tensor(labels)
        if labels.dim() != 2 or not bool(((labels == 0) | (labels == 1)).all()):
            raise MkeError(f"multilabel targets must be 0/1 per class, (N, K); got {labels.dtype} {tuple(labels.shape)}")
        return labels.to(torch.uint8)

    def scores_of(self, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
        return torch.logit(targets.float().clamp(1e-6, 1.0 - 1e-6))

    def classes_shown(self, hard: torch.Tensor, num_classes: int, min_share: float) -> torch.Tensor:
        return hard.reshape(len(hard), num_classes).bool()

    def true_as(self, labels: torch.Tensor, like) -> torch.Tensor:
        return labels.to(like.dtype)

    def loss(self, logits, targets, weight=None, class_weight=None):
        if targets.is_floating_point():
            return losses.binary_soft_target_loss(logits, targets.to(logits.dtype), weight, class_weight)
        return losses.binary_hard_target_loss(logits, targets, weight, class_weight)

    def score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        return self.score_probs(self.activate(logits), targets)

    def score_probs(self, probs: torch.Tensor, targets: torch.Tensor) -> float:
        return metrics.mean_average_precision(probs, targets)

    def score_labels(self, probs, targets: torch.Tensor, num_classes: int) -> float:
        """mAP of the soft labels: the ranking AP needs (hard 0/1 labels would rank all ties)."""
        return self.score_probs(probs[:].float(), targets)
