"""Batch norm over the global batch while training data-parallel, on GPUs and on CPUs.

With DistributedDataParallel each rank sees only its share of a batch; plain batch norm would then
normalise over that share (8 frames of a global 16) and training would differ from one process.
PyTorch's `SyncBatchNorm` fixes this on GPUs only (2.14 refuses CPU tensors), so CPU ranks (gloo)
use `GlooSyncBatchNorm` here: the same statistics, all-reduced in two small collectives a layer
(sum and count, then the squared deviations from the global mean), and the same all-reduced terms in
the backward pass — the gradient of one process up to float rounding.

`synchronise(model, device)` swaps every batch-norm layer for its synchronised twin (sharing the
parameters and buffers) for a training; the function it returns swaps the originals back, so the
trained model is the plain network its checkpoint describes.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    torch.distributed.all_reduce(t)
    return t


class _GlobalBatchNorm(torch.autograd.Function):
    """y = (x − μ) / sqrt(σ² + eps) · w + b with μ, σ² over every rank's samples (and pixels)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        channels = x.shape[1]
        xf = x.float()
        first = _all_reduce(torch.cat([xf.sum(dims), xf.new_tensor([x.numel() / channels])]))
        count = first[-1]
        mean = first[:channels] / count
        centred = xf - mean.view(shape)
        var = _all_reduce(centred.square().sum(dims)) / count
        invstd = torch.rsqrt(var + eps)
        xhat = centred * invstd.view(shape)
        ctx.save_for_backward(xhat, weight, invstd)
        ctx.count = count
        out = xhat * weight.view(shape) + bias.view(shape) if weight is not None else xhat
        return out.to(x.dtype), mean, var * count / torch.clamp(count - 1, min=1)

    @staticmethod
    def backward(ctx, grad_out, _mean, _var):
        xhat, weight, invstd = ctx.saved_tensors
        dims = [0] + list(range(2, xhat.dim()))
        shape = [1, -1] + [1] * (xhat.dim() - 2)
        dy = grad_out.float()
        local = torch.cat([dy.sum(dims), (dy * xhat).sum(dims)])  # this rank's: the parameters' own gradients
        channels = xhat.shape[1]
        grad_bias, grad_weight = local[:channels].clone(), local[channels:].clone()
        total = _all_reduce(local) / ctx.count
        scale = invstd if weight is None else invstd * weight.float()
        grad_x = scale.view(shape) * (dy - total[:channels].view(shape) - xhat * total[channels:].view(shape))
        if weight is None:
            return grad_x.to(grad_out.dtype), None, None, None
        return grad_x.to(grad_out.dtype), grad_weight.to(weight.dtype), grad_bias.to(weight.dtype), None


class GlooSyncBatchNorm(_BatchNorm):
    """Batch norm whose training statistics span all ranks (any backend, CPU tensors included)."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                self.training or not self.track_running_stats, self.momentum or 0.0, self.eps)
        out, mean, unbiased_var = _GlobalBatchNorm.apply(x, self.weight, self.bias, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased_var.to(self.running_var.dtype), alpha=m)
        return out


def _twin(bn: _BatchNorm, cuda: bool) -> _BatchNorm:
    cls = torch.nn.SyncBatchNorm if cuda else GlooSyncBatchNorm
    twin = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    twin.weight, twin.bias = bn.weight, bn.bias  # the same Parameter objects: the optimizer's
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        setattr(twin, name, getattr(bn, name))
    twin.train(bn.training)
    return twin


def synchronise(model: torch.nn.Module, device: str) -> Callable[[], None]:
    """Swap every batch-norm layer of `model` for one synchronised across ranks (torch.nn.SyncBatchNorm
    on CUDA, GlooSyncBatchNorm elsewhere); returns the function that swaps the originals back."""
    cuda = torch.device(device).type == "cuda"
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _BatchNorm) and not isinstance(child, (torch.nn.SyncBatchNorm, GlooSyncBatchNorm)):
                setattr(parent, name, _twin(child, cuda))
                swapped.append((parent, name, child))

    def restore() -> None:
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)

    return restore
