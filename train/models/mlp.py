"""The small multilayer perceptron of the paper's TwoMoon study (three linear layers)."""
from __future__ import annotations

import torch
from torch import nn

from mke.train.transforms import add_relative_noise


class ModalityMLP(nn.Module):
    """Concatenates its modality inputs, then Linear-ReLU-Dropout, hidden noise, Linear-ReLU-Dropout, Linear.

    Hidden noise (after the first layer) and dropout act only in training mode.
    """

    def __init__(self, input_dims: dict[str, int], hidden: int, num_classes: int,
                 dropout: float = 0.0, hidden_noise: float = 0.0):
        super().__init__()
        self.input_names = tuple(input_dims)
        self.fc1 = nn.Linear(sum(input_dims.values()), hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, num_classes)
        self.dropout = nn.Dropout(dropout)
        self.hidden_noise = hidden_noise

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        x = torch.cat([inputs[name] for name in self.input_names], dim=1)
        h = self.dropout(torch.relu(self.fc1(x)))
        if self.training:
            h = add_relative_noise(h, self.hidden_noise)
        h = self.dropout(torch.relu(self.fc2(h)))
        return self.fc3(h)
