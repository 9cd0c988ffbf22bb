"""The paper's audio-visual network: one feature branch per input (mke.train.models.branches: the
paper's 3-layer CNNs for RAVDESS, MobileNetV3 or ResNet-18 for sound, a per-frame CNN with temporal
pooling or a 3D ResNet-18 for video), the features concatenated into a 3-layer MLP. The teacher, UM and
NOISY students have the teacher's input's branch + MLP; the MM students add the other input's."""
from __future__ import annotations

import torch
from torch import nn

from mke.train.models.branches import build_branch
from mke.train.models.mlp import ModalityMLP


class AVNet(nn.Module):
    """One branch per input (`branches`: input name → its channels), from `settings[name]` (an `arch` and
    its parameters), their features concatenated into the 3-layer MLP, whose hidden layers carry the
    regularization T (dropout, hidden noise)."""

    def __init__(self, branches: dict[str, int], num_classes: int, settings: dict[str, dict], hidden: int,
                 dropout: float = 0.0, hidden_noise: float = 0.0):
        super().__init__()
        self.input_names = tuple(branches)
        self.branches = nn.ModuleDict({name: build_branch(c, settings[name], f"model.branches.{name}")
                                       for name, c in branches.items()})
        self.head = ModalityMLP({name: b.out_features for name, b in self.branches.items()}, hidden, num_classes,
                                dropout=dropout, hidden_noise=hidden_noise)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.head(**{name: self.branches[name](inputs[name]) for name in self.input_names})
