"""The data MKE works on: D_l (modality α with labels), D_u (α + β, labels optional), a test split.

A `Split` holds one split in memory as `{modality: tensor}` with samples first; it yields batches
as smaller `Split`s, so the trainer never needs to know the task. File-backed datasets (large
segmentation sets) plug in at the same place: anything with `__len__`, `select` and `batches`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

import torch

from mke.runtime.errors import MkeError


@dataclass(frozen=True)
class Split:
    inputs: dict[str, torch.Tensor]
    targets: Any = None  # class ids, probabilities (classes in dim 1), or indexable compact probabilities
    weights: torch.Tensor | None = None  # loss weight per sample (or per pixel)

    def __post_init__(self):
        sizes = {name: len(t) for name, t in self.inputs.items()}
        if self.targets is not None:
            sizes["targets"] = len(self.targets)
        if self.weights is not None:
            sizes["weights"] = len(self.weights)
        if len(set(sizes.values())) > 1:
            raise MkeError(f"split tensors disagree on the number of samples: {sizes}")

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def select(self, modalities: Sequence[str]) -> "Split":
        missing = [m for m in modalities if m not in self.inputs]
        if missing:
            raise MkeError(f"split has modalities {list(self.inputs)}, not {missing}")
        return replace(self, inputs={m: self.inputs[m] for m in modalities})

    def with_targets(self, targets: torch.Tensor, weights: torch.Tensor | None = None) -> "Split":
        return replace(self, targets=targets, weights=weights)

    def take(self, index: torch.Tensor) -> "Split":
        return Split(
            {m: t[index] for m, t in self.inputs.items()},
            None if self.targets is None else self.targets[index],
            None if self.weights is None else self.weights[index],
        )

    def batches(self, batch_size: int = 0, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator["Split"]:
        """Batches of `batch_size` samples, optionally shuffled; 0 = the whole split as one batch."""
        n = len(self)
        if batch_size <= 0 or batch_size >= n:  # one full batch: order does not change the gradient
            yield self if isinstance(self.targets, (torch.Tensor, type(None))) else self.take(torch.arange(n))
            return
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            yield self.take(order[start:start + batch_size])

    @staticmethod
    def concat(parts: Sequence["Split"]) -> "Split":
        mods = parts[0].modalities
        if any(p.modalities != mods for p in parts):
            raise MkeError(f"cannot concatenate splits with modalities {[p.modalities for p in parts]}")

        def cat(key):
            items = [getattr(p, key) for p in parts]
            if all(t is None for t in items):
                return None
            if any(t is None for t in items):
                raise MkeError(f"cannot concatenate splits where only some have {key}")
            return torch.cat(items) if isinstance(items[0], torch.Tensor) else type(items[0]).cat(items)

        return Split({m: torch.cat([p.inputs[m] for p in parts]) for m in mods}, cat("targets"), cat("weights"))


@dataclass(frozen=True)
class MKEData:
    """Everything one MKE run reads: the modality names, the three splits, the classes."""

    alpha: str
    beta: str
    labeled: Split
    unlabeled: Split
    test: Split
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        both = (self.alpha, self.beta)
        checks = [("labeled (D_l)", self.labeled, (self.alpha,), True),
                  ("unlabeled (D_u)", self.unlabeled, both, False),
                  ("test", self.test, both, True)]
        for name, split, mods, needs_targets in checks:
            missing = [m for m in mods if m not in split.inputs]
            if missing:
                raise MkeError(f"the {name} split lacks modality {missing}; it has {list(split.inputs)}")
            if needs_targets and split.targets is None:
                raise MkeError(f"the {name} split has no labels")
            if len(split) == 0:
                raise MkeError(f"the {name} split is empty")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
