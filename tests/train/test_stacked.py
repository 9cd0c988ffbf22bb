"""Stacked trainings (mke.train.stacked): S models trained as one take the steps each would take alone."""
from __future__ import annotations

import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.config import task_config
from mke.train.data import Split
from mke.train.fit import fit
from mke.train.methods import NO_REG, Regularization
from mke.train.models.mlp import ModalityMLP
from mke.train.pipeline import seed_groups
from mke.train.stacked import StackedModels, stack_split
from mke.train.tasks import get_task


def _models(n: int, hidden: int = 8, dropout: float = 0.0) -> list[ModalityMLP]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(ModalityMLP({"x": 1, "y": 1}, hidden, 3, dropout=dropout))
    return out


def _split(seed: int, soft: bool) -> Split:
    g = torch.Generator().manual_seed(100 + seed)
    inputs = {"x": torch.randn(40, 1, generator=torch.Generator().manual_seed(7)),
              "y": torch.randn(40, 1, generator=torch.Generator().manual_seed(8))}
    if soft:  # each seed its own soft targets, as each teacher labels D_u its own way
        targets = torch.softmax(3 * torch.randn(40, 3, generator=g), dim=1)
    else:
        targets = torch.randint(0, 3, (40,), generator=g)
    return Split(inputs, targets)


@pytest.mark.parametrize("optim", [{"name": "sgd", "lr": 0.05, "epochs": 60, "momentum": 0.9},
                                   {"name": "adamw", "lr": 0.01, "epochs": 60, "weight_decay": 0.01,
                                    "schedule": "cosine"}])
@pytest.mark.parametrize("soft", [True, False])
def test_stacked_models_take_the_steps_each_takes_alone(optim, soft):
    splits = [_split(s, soft) for s in range(3)]
    alone = _models(3)
    for seed, (model, split) in enumerate(zip(alone, splits)):
        fit(model, split, optim, NO_REG, seed=seed)
    stacked = StackedModels(_models(3))
    fit(stacked, stack_split(splits), optim, NO_REG, seed=0)
    together = stacked.unstack()
    for a, b in zip(alone, together):
        for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(pb, pa, atol=2e-5, rtol=1e-4, msg=f"{name} differs")
    # and the models did move from where they started
    start = _models(1)[0]
    assert not torch.allclose(together[0].fc1.weight, start.fc1.weight)


def test_noise_and_dropout_draw_independently_per_model():
    stacked = StackedModels(_models(1, dropout=0.5) + _models(1, dropout=0.5)).train()  # one weight set, twice
    x = torch.ones(2 * 50, 1)
    out = stacked(x=x, y=x)
    first, second = out[:50], out[50:]
    assert not torch.allclose(first, second), "both models drew the same dropout masks"
    stacked.eval()
    out = stacked(x=x, y=x)
    torch.testing.assert_close(out[:50], out[50:])


def test_unstack_gives_each_model_its_own_slice():
    models = _models(2)
    stacked = StackedModels(models)
    with torch.no_grad():
        for p in stacked.stacked:
            p[1].add_(1.0)
    a, b = stacked.unstack()
    fresh = _models(2)
    torch.testing.assert_close(a.fc1.weight, fresh[0].fc1.weight)
    torch.testing.assert_close(b.fc1.weight, fresh[1].fc1.weight + 1.0)
    assert not a.training and not b.training


def test_what_cannot_be_stacked_is_refused():
    with pytest.raises(MkeError, match="buffers"):
        StackedModels([torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)])
    with pytest.raises(MkeError, match="one size"):
        stack_split([_split(0, True), _split(1, True).take(torch.arange(30))])
    stacked = StackedModels(_models(3))
    with pytest.raises(MkeError, match="3 equal chunks"):
        stacked(x=torch.ones(10, 1), y=torch.ones(10, 1))


def test_twomoon_stacks_its_seeds_and_minibatch_trainings_do_not():
    cfg = task_config("twomoon")
    task = get_task("twomoon")
    assert seed_groups(task, cfg, "student", [0, 1, 2]) == [(0, 1, 2)]
    assert seed_groups(task, cfg, "teacher", []) == []
    cfg["student"]["optim"]["batch_size"] = 32  # shuffled mini-batches would mix the seeds' chunks
    assert seed_groups(task, cfg, "student", [0, 1, 2]) == [(0,), (1,), (2,)]
    rgbd = task_config("rgbd")
    assert seed_groups(get_task("rgbd"), rgbd, "student", [0, 1]) == [(0,), (1,)]


def test_noise_regularization_trains_stacked():
    reg = Regularization(kind="input_noise", strength="strong", input_noise=1.0)
    stacked = StackedModels(_models(2))
    fit(stacked, stack_split([_split(0, True), _split(1, True)]), {"name": "sgd", "lr": 0.05, "epochs": 5}, reg,
        seed=0)
    a, b = stacked.unstack()
    assert torch.isfinite(a.fc1.weight).all() and torch.isfinite(b.fc1.weight).all()
