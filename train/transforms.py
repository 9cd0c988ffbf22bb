"""The noise transformations of T that act on tensors (input noise, hidden-layer noise)."""
from __future__ import annotations

import torch


def add_relative_noise(x: torch.Tensor, strength: float) -> torch.Tensor:
    """x + strength · mean|x| · N(0, 1): the paper's input and hidden-layer noise."""
    if strength <= 0:
        return x
    return x + strength * x.abs().mean() * torch.randn_like(x)
