"""One training loop for every model MKE trains: teacher, students, baselines.

The task's label kind decides the loss (mke.train.label_kinds: single-label class ids → cross entropy,
probabilities → KL divergence; multilabel 0/1 labels → binary cross entropy, probabilities → binary
KL divergence), the targets which of its two; the regularization decides the transformation T applied to each batch (input noise here, hidden noise
and dropout inside the model, augmentation by the task).
"""
from __future__ import annotations

import dataclasses
import difflib
import math

import torch

from mke.runtime.errors import MkeError
from mke.train.data import Split
from mke.train.label_kinds import label_kind
from mke.train.methods import Regularization
from mke.train.transforms import add_relative_noise

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclasses.dataclass(frozen=True)
class OptimSettings:
    """A `teacher.optim` / `student.optim` section, typed: the one place its defaults live (a task's
    YAML names only what it sets; `fit` is also called with such partial sections)."""

    lr: float                    # per step, before the schedule
    epochs: float                # passes over the split; a fraction stops part-way through the last
    name: str = "sgd"            # a key of OPTIMIZERS
    batch_size: int = 0          # samples per step; 0 = the whole split (full batch)
    weight_decay: float = 0.0
    momentum: float = 0.0        # SGD only
    schedule: str = "constant"   # constant, cosine or poly (over all steps)

    @classmethod
    def of(cls, optim: "dict | OptimSettings", where: str = "optim") -> "OptimSettings":
        """The settings of a config section; an unknown or missing key is an MkeError naming it."""
        if isinstance(optim, OptimSettings):
            return optim
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in optim:
            if key not in fields:
                hint = difflib.get_close_matches(key, fields, n=1)
                raise MkeError(f"unknown optimizer setting '{where}.{key}'"
                               + (f" (did you mean '{hint[0]}'?)" if hint else "") + f"; known: {', '.join(fields)}")
        missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING and n not in optim]
        if missing:
            raise MkeError(f"{where} needs {' and '.join(missing)}")
        return cls(**optim)


def make_optimizer(params, optim: "dict | OptimSettings") -> torch.optim.Optimizer:
    optim = OptimSettings.of(optim)
    if optim.name not in OPTIMIZERS:
        raise MkeError(f"optimizer '{optim.name}' is not one of {', '.join(OPTIMIZERS)}")
    # fused kernels: one update for all parameters (measured ~10 % faster per step on TwoMoon's tiny nets)
    kwargs = {"lr": optim.lr, "weight_decay": optim.weight_decay, "fused": True}
    if optim.name == "sgd":
        kwargs["momentum"] = optim.momentum
    return OPTIMIZERS[optim.name](params, **kwargs)


def make_schedule(opt: torch.optim.Optimizer, optim: "dict | OptimSettings", total_steps: int):
    kind = OptimSettings.of(optim).schedule
    if kind == "constant":
        return None
    if kind == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
    if kind == "poly":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (1 - min(s, total_steps) / total_steps) ** 0.9)
    raise MkeError(f"learning-rate schedule '{kind}' is not one of constant, cosine, poly")


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str) -> str:
    """The config's `device` as PyTorch names it: `auto` becomes cuda where PyTorch sees a GPU, else cpu;
    `cuda` without one, or an unknown name, is an MkeError saying what there is."""
    if device not in DEVICES:
        raise MkeError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MkeError(f"device cuda: this PyTorch ({torch.__version__}) sees no CUDA GPU; "
                       "set device: cpu (or auto, which picks the GPU where there is one)")
    return device


def _bf16_fast(kind: str) -> bool:
    if kind == "cuda":  # Ampere (8.0) and later; older GPUs only emulate bf16, slower than their fp16
        return torch.cuda.is_bf16_supported(including_emulation=False)
    try:  # oneDNN runs bf16 natively only with AVX-512 BF16 or AMX; elsewhere it emulates it slowly
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: str) -> str:
    """`auto` becomes bf16 where the hardware runs it natively; else fp16 on a GPU (`fit` scales its
    loss with a GradScaler) and fp32 on a CPU."""
    if precision == "auto":
        kind = torch.device(device).type
        if _bf16_fast(kind):
            return "bf16"
        return "fp16" if kind == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise MkeError(f"precision '{precision}' is not one of auto, {', '.join(PRECISIONS)}")
    return precision


def autocast(device: str, precision: str):
    """Mixed precision for the forward pass: `fp32` (off), `bf16` (CPUs with AVX-512 BF16 or AMX, and
    GPUs), `fp16` (GPUs) or `auto`. Weights, optimizer state and the loss stay in fp32."""
    precision = resolve_precision(precision, device)
    kind = torch.device(device).type
    if precision == "fp16" and kind == "cpu":
        raise MkeError("precision fp16 needs a GPU (device: cuda); on a CPU use bf16 or fp32")
    return torch.autocast(kind, dtype=PRECISIONS[precision], enabled=PRECISIONS[precision] is not None)


def image_inputs(split: Split) -> bool:
    """Whether the split holds images (N, C, H, W): they train and infer in channels-last layout."""
    return any(x.dim() == 4 for x in split.inputs.values())


def channels_last(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The images (N, C, H, W) among `inputs` in channels-last layout, the other inputs as they are
    (vectors, waveforms, image sequences (N, T, C, H, W))."""
    return {m: x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for m, x in inputs.items()}


def fit(model: torch.nn.Module, split: Split, optim: "dict | OptimSettings", reg: Regularization, *, seed: int,
        task=None, device: str = "cpu", class_weight: torch.Tensor | None = None, on_epoch=None,
        precision: str = "fp32") -> torch.nn.Module:
    """Train `model` in place on `split` (inputs + targets [+ weights]) for `optim.epochs` epochs
    (`optim`: an optimizer config section or its OptimSettings), with the loss of `task`'s label kind
    (without a task: single-label targets, class ids or softmax probabilities).

    A model with a `training_loss(inputs, targets, weights, kind)` method (the DMD student) computes its
    whole loss itself, the task's loss (`kind.loss`) among its terms.

    Image models train in channels-last memory layout (measured 1.7× faster per step on this
    project's CPU segmentation nets, same results up to float rounding)."""
    if split.targets is None:
        raise MkeError("cannot train on a split without targets")
    optim = OptimSettings.of(optim)
    kind = label_kind(task.kind if task is not None else "classification")
    loss_of = kind.loss
    own_loss = hasattr(model, "training_loss")   # a network with losses of its own (DMD): it computes the whole loss
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images = image_inputs(split)
    model.to(device).train()
    if images:
        model.to(memory_format=torch.channels_last)
    precision = resolve_precision(precision, device)
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")
    opt = make_optimizer(model.parameters(), optim)
    batch_size = optim.batch_size
    steps_per_epoch = 1 if batch_size <= 0 else math.ceil(len(split) / batch_size)
    total_steps = max(1, round(optim.epochs * steps_per_epoch))  # epochs may be fractional: the last one stops early
    schedule = make_schedule(opt, optim, total_steps)
    step = 0
    augment = reg.augment_params
    if class_weight is not None:
        class_weight = class_weight.to(device)
    for epoch in range(math.ceil(optim.epochs)):
        for batch in split.batches(batch_size, shuffle=True, generator=generator):
            if step == total_steps:
                break
            step += 1
            if augment:
                batch = task.augment(batch, augment, generator)
            inputs = {m: add_relative_noise(x.to(device), reg.input_noise) for m, x in batch.inputs.items()}
            if images:
                inputs = channels_last(inputs)
            weights = None if batch.weights is None else batch.weights.to(device)
            targets = batch.targets.to(device)
            with autocast(device, precision):
                if own_loss:
                    loss = model.training_loss(inputs, targets, weights, kind)
                else:
                    scores = model(**inputs)
            if not own_loss:
                loss = loss_of(scores.float(), targets, weights, class_weight)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if schedule is not None:
                schedule.step()
        if on_epoch is not None:
            on_epoch(epoch, loss.item())
    return model.to(memory_format=torch.contiguous_format).eval()


@torch.no_grad()
def predict(model: torch.nn.Module, split: Split, batch_size: int = 0, device: str = "cpu") -> torch.Tensor:
    """Class scores for every sample of `split`, in order, on the CPU."""
    model.to(device).eval()
    outs = [model(**{m: x.to(device) for m, x in b.inputs.items()}).float().cpu()
            for b in split.batches(batch_size)]
    return torch.cat(outs)
