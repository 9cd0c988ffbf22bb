"""The paper's audio-visual networks (RAVDESS): a 3-layer CNN per modality, features concatenated into
a 3-layer MLP. The teacher, UM and NOISY students are the image branch + MLP; the MM students add
the audio branch (MFCC or log-mel "images", one channel)."""
from __future__ import annotations

import torch
from torch import nn

from mke.runtime.errors import MkeError
from mke.train.models.mlp import ModalityMLP


class ConvBranch(nn.Module):
    """Three Conv3×3-BatchNorm-ReLU-Pool2×2 blocks (`downsample`: "max" or "avg" pooling), then global
    pooling (`pool`: "mean", or "max" for audio, where the word is a short part of the clip):
    (N, C, H, W) → (N, widths[-1]). A sequence of images (N, T, C, H, W) is run image by image and its
    features averaged over T. (Strided convolutions instead of pooling run 3–4× faster on a CPU but
    lost 10–20 points of accuracy on the built-in clips, docs/av.md.)"""

    def __init__(self, in_channels: int, widths: tuple[int, int, int], pool: str = "mean", downsample: str = "max"):
        super().__init__()
        if pool not in ("mean", "max"):
            raise MkeError(f"model.pool must be mean or max, got {pool!r}")
        if downsample not in ("max", "avg"):
            raise MkeError(f"model.downsample must be max or avg, got {downsample!r}")
        pooling = nn.MaxPool2d if downsample == "max" else nn.AvgPool2d
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True), pooling(2)]
            c = w
        self.body = nn.Sequential(*layers)
        self.pool = pool
        self.out_features = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1] if x.dim() == 5 else 0
        h = self.body(x.flatten(0, 1) if steps else x)
        h = h.amax(dim=(2, 3)) if self.pool == "max" else h.mean(dim=(2, 3))
        return h.view(-1, steps, h.shape[1]).mean(dim=1) if steps else h


class AVNet(nn.Module):
    """One ConvBranch per input (`branches`: input name → channels), their features concatenated into the
    3-layer MLP, whose hidden layers carry the regularization T (dropout, hidden noise)."""

    def __init__(self, branches: dict[str, int], num_classes: int, widths: dict[str, tuple[int, int, int]],
                 pools: dict[str, str], downsample: dict[str, str], hidden: int, dropout: float = 0.0,
                 hidden_noise: float = 0.0):
        super().__init__()
        self.input_names = tuple(branches)
        self.branches = nn.ModuleDict({name: ConvBranch(c, tuple(widths[name]), pools[name], downsample[name])
                                       for name, c in branches.items()})
        self.head = ModalityMLP({name: b.out_features for name, b in self.branches.items()}, hidden, num_classes,
                                dropout=dropout, hidden_noise=hidden_noise)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.head(**{name: self.branches[name](inputs[name]) for name in self.input_names})
