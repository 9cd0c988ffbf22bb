"""fit's step budget: fractional epochs stop part-way through the last one (NOISY's equal-steps budget)."""
import pytest
import torch

from mke.train.data import Split
from mke.train.fit import fit
from mke.train.methods import NO_REG


class Counting(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.fc(x)


@pytest.mark.parametrize("epochs, steps", [(1, 4), (2, 8), (1.5, 6), (2.667, 11), (0.1, 1)])
def test_fit_takes_epochs_times_batches_steps(epochs, steps):
    split = Split({"x": torch.randn(8, 2)}, torch.randint(0, 3, (8,)))
    model = Counting()
    fit(model, split, {"name": "sgd", "lr": 0.1, "epochs": epochs, "batch_size": 2, "schedule": "cosine"}, NO_REG, seed=0)
    assert model.calls == steps
