"""Several trainings of one small model as one: the seeds of a job trained together, stacked.

TwoMoon's study is some 200 trainings of three-layer perceptrons on a few hundred points, full
batch: each step is a handful of tiny matrix products, so its time is PyTorch's per-call overhead,
not arithmetic. `StackedModels` holds S models of one architecture with their parameters stacked
along a new first axis and runs their forward pass as one `torch.func.vmap` over them; `stack_split`
lays the S seeds' data end to end. `mke.train.fit.fit` then trains all S in the steps one would take
(the optimizer, its schedule and weight decay act element-wise, so each model's update is its own):

- the batch is S equal chunks, chunk s for model s (full batch only: shuffled mini-batches would mix them);
- each chunk's loss weight is S, so the mean over the whole batch is the sum of the S models' own
  mean losses, and each model gets the gradient it would get alone;
- noise and dropout draw independently per model (`randomness="different"`).

What differs from S separate runs is only which random numbers the noise and dropout draw; the
initial weights are each seed's own. Models with buffers (batch norm's running statistics) are not
stacked: their in-place updates have no vmapped form here.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from mke.runtime.errors import MkeError
from mke.train.data import Split


class StackedModels(nn.Module):
    """forward(**inputs) with inputs of S·n samples (S chunks of n) → S·n outputs, chunk s by model s."""

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        if not models:
            raise MkeError("nothing to stack: no models")
        if any(True for m in models for _ in m.buffers()):
            raise MkeError(f"{type(models[0]).__name__} has buffers (e.g. batch norm statistics); it cannot be stacked")
        params, _ = stack_module_state(list(models))
        self.names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(params[n].detach().clone()) for n in self.names)
        # the architecture, without weights of its own: functional_call gives it each model's in turn
        object.__setattr__(self, "_base", copy.deepcopy(models[0]).to("meta"))
        object.__setattr__(self, "_models", list(models))

    @property
    def count(self) -> int:
        return len(self._models)

    def train(self, mode: bool = True) -> "StackedModels":
        super().train(mode)
        self._base.train(mode)
        return self

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        s = self.count
        chunks = {}
        for name, x in inputs.items():
            if len(x) % s:
                raise MkeError(f"input '{name}' has {len(x)} samples, not {s} equal chunks (one per stacked model)")
            chunks[name] = x.reshape(s, len(x) // s, *x.shape[1:])

        def one(params: dict, chunk: dict) -> torch.Tensor:
            return functional_call(self._base, params, (), chunk)

        out = vmap(one, randomness="different")(dict(zip(self.names, self.stacked)), chunks)
        return out.reshape(-1, *out.shape[2:])

    def unstack(self) -> list[nn.Module]:
        """The S models, each with its slice of the stacked weights, in eval mode."""
        with torch.no_grad():
            for i, model in enumerate(self._models):
                own = dict(model.named_parameters())
                for name, stacked in zip(self.names, self.stacked):
                    own[name].copy_(stacked[i])
        return [m.eval() for m in self._models]


def stack_split(splits: Sequence[Split]) -> Split:
    """The splits end to end, each sample's loss weight ×S (see the module's text): equal sizes only."""
    sizes = {len(s) for s in splits}
    if len(sizes) != 1:
        raise MkeError(f"stacked trainings need splits of one size, got {sorted(sizes)}")
    s = len(splits)
    weighted = []
    for split in splits:
        base = split.weights if split.weights is not None else torch.ones(len(split))
        weighted.append(split.with_targets(split.targets, base.float() * s))
    return Split.concat(weighted)
