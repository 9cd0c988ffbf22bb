"""Single-label soft labels (softmax probabilities, classes in dim 1) in the compact form the pseudo-label
cache keeps them in (`TopKProbs`), and the class ids of any single-label targets.

Only for one label per element: keeping the k most likely classes and renormalising over them is
right for a softmax, whose probabilities compete, and wrong for independent per-class (multilabel)
probabilities, which `mke.train.label_kinds.Multilabel` stores whole.
"""
from __future__ import annotations

import torch

from mke.train.losses import IGNORE_INDEX


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

    @classmethod
    def from_payload(cls, payload: dict) -> "TopKProbs":
        return cls(payload["values"], payload["indices"], payload["num_classes"])


def target_class_ids(targets) -> torch.Tensor:
    """Class ids of any training targets: ids as they are, probabilities (dense or `TopKProbs`) by their
    most likely class; elements with no probability mass (padding, void) become `IGNORE_INDEX`."""
    if isinstance(targets, TopKProbs):
        return targets.hard
    if not targets.is_floating_point():
        return targets
    top = targets.max(dim=1)
    return torch.where(top.values > 0, top.indices, IGNORE_INDEX)
