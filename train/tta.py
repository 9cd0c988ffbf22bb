"""Test-time augmentation (TTA) of an image model: its class probabilities (its label kind's activation:
softmax, or a sigmoid per class) averaged over horizontal flips and input scales of its inputs; a
dense-prediction model's each mapped back to the input's pixel grid first.

MKE uses it where the teacher labels D_u (`pseudo_labels.tta`): one forward pass of the same teacher
gives worse labels than the average over a few views of each frame (measured on the built-in rooms:
35.5 → 38.2 mIoU on D_u with flip × scales 0.75 / 1 / 1.25; docs/rgbd.md). The teacher's score in the
table stays its single-pass score — the network the robot would run — and the run reports the TTA
teacher's test score beside it.
"""
from __future__ import annotations

from typing import Iterator

import torch

from mke.runtime.errors import MkeError
from mke.train.data import Split
from mke.train.augment import resize_batch
from mke.train.fit import autocast, channels_last, image_inputs
from mke.train.label_kinds import LabelKind, label_kind

KNOWN = {"flip", "scales"}


def views(tta: dict) -> list[tuple[float, bool]]:
    """(scale, flipped) for every view `tta` asks for; the plain view (1.0, False) always comes first."""
    unknown = set(tta) - KNOWN
    if unknown:
        raise MkeError(f"unknown pseudo_labels.tta parameter(s) {sorted(unknown)}; known: {sorted(KNOWN)}")
    scales = [1.0] + [float(s) for s in tta.get("scales") or [] if float(s) != 1.0]
    if any(not 0.25 <= s <= 4.0 for s in scales):
        raise MkeError(f"pseudo_labels.tta.scales must lie in [0.25, 4], got {tta.get('scales')}")
    flips = [False, True] if tta.get("flip") else [False]
    return [(s, f) for s in scales for f in flips]


def _view(x: torch.Tensor, scale: float, flip: bool, nearest: bool) -> torch.Tensor:
    if flip:
        x = x.flip(-1)
    if scale != 1.0:
        h, w = x.shape[-2:]
        x = resize_batch(x, (max(1, round(h * scale)), max(1, round(w * scale))), nearest)
    return x


def tta_batches(model: torch.nn.Module, split: Split, tta: dict, *, kind: "str | LabelKind", batch_size: int = 0,
                device: str = "cpu", precision: str = "fp32",
                nearest_inputs: tuple[str, ...] = ()) -> Iterator[torch.Tensor]:
    """Probabilities (n, K, …) of `model` on `split` — the activation of task kind `kind` — batch by
    batch in order, averaged over the views of `tta` (`{}` = one plain pass), the forward passes under
    `precision` (fit's autocast: auto, fp32, bf16, fp16). Spatial views need image inputs (N, C, H, W);
    a dense kind's outputs are mapped back to the input's grid, others (one prediction per sample) are
    averaged as they are. Batch by batch, so that a caller who keeps less than the dense probabilities
    (top-k pseudo labels) never holds them all."""
    kind = label_kind(kind)
    plan, images = views(tta), image_inputs(split)
    if len(plan) > 1 and not images:
        raise MkeError("pseudo_labels.tta (flip, scales) needs image inputs (N, C, H, W); set it to {} for this task")
    model.to(device).eval()
    if images:  # channels-last with bf16: about 2× the fp32 NCHW speed on the CPUs fit trains with bf16
        model.to(memory_format=torch.channels_last)
    try:
        for batch in split.batches(batch_size):
            with torch.no_grad():
                total = None
                for scale, flip in plan:
                    inputs = {m: _view(x.to(device), scale, flip, m in nearest_inputs) for m, x in batch.inputs.items()}
                    if images:
                        inputs = channels_last(inputs)
                    with autocast(device, precision):
                        scores = model(**inputs).float()
                    if scale != 1.0 and kind.dense:
                        scores = resize_batch(scores, next(iter(batch.inputs.values())).shape[-2:], nearest=False)
                    probs = kind.activate(scores)
                    if flip and kind.dense:
                        probs = probs.flip(-1)
                    total = probs if total is None else total + probs
            yield (total / len(plan)).contiguous().cpu()
    finally:
        model.to(memory_format=torch.contiguous_format)


def tta_probs(model: torch.nn.Module, split: Split, tta: dict, **kwargs) -> torch.Tensor:
    """All of `tta_batches` (same arguments) as one tensor (N, K, …)."""
    return torch.cat(list(tta_batches(model, split, tta, **kwargs)))
