"""Joint random augmentation for dense prediction: flip, scale and crop applied identically to every
input, the targets (class ids or probabilities) and the loss weights of a batch — MKE's
regularizing transformation T for segmentation (the paper: flip + scale in [0.5, 1.75]).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mke.train.data import Split
from mke.train.losses import IGNORE_INDEX


def _resize(t: torch.Tensor, size: tuple[int, int], nearest: bool) -> torch.Tensor:
    if nearest:
        return F.interpolate(t, size=size, mode="nearest")
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


def _crop_or_pad(t: torch.Tensor, h: int, w: int, top: int, left: int, fill: float) -> torch.Tensor:
    """Cut an (h, w) window at (top, left) of t's last two dims; negative offsets pad with `fill`."""
    th, tw = t.shape[-2:]
    pad = (max(0, -left), max(0, left + w - tw), max(0, -top), max(0, top + h - th))
    if any(pad):
        t = F.pad(t, pad, value=fill)
        top, left = top + pad[2], left + pad[0]
    return t[..., top:top + h, left:left + w]


def flip_scale_crop(batch: Split, params: dict, generator: torch.Generator,
                    nearest_inputs: tuple[str, ...] = ("depth",)) -> Split:
    """Per sample: horizontal flip with probability ½ (`flip`), resize by a factor drawn uniformly from
    `scale` = [lo, hi], then crop (or pad) back to the original size at a random position.

    Depth is resized with nearest neighbours so invalid pixels (0) do not bleed into valid ones;
    padding gets 0 in the inputs, `IGNORE_INDEX` in class-id targets, 0 probability and 0 weight.
    """
    lo, hi = params.get("scale", (1.0, 1.0))
    flip = bool(params.get("flip", False))
    n = len(batch)
    size = next(iter(batch.inputs.values())).shape[-2:]
    h, w = int(size[0]), int(size[1])
    hard = batch.targets is not None and not batch.targets.is_floating_point()
    out_in = {m: [] for m in batch.inputs}
    out_t, out_w = [], []
    for i in range(n):
        r = torch.rand(4, generator=generator)
        s = lo + (hi - lo) * float(r[0])
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        top = int(r[1] * (sh - h)) if sh >= h else -int(r[1] * (h - sh))
        left = int(r[2] * (sw - w)) if sw >= w else -int(r[2] * (w - sw))
        do_flip = flip and float(r[3]) < 0.5

        def tf(t: torch.Tensor, nearest: bool, fill: float) -> torch.Tensor:
            t = t[i:i + 1]
            if do_flip:
                t = t.flip(-1)
            return _crop_or_pad(_resize(t, (sh, sw), nearest), h, w, top, left, fill)

        for m, x in batch.inputs.items():
            out_in[m].append(tf(x, m in nearest_inputs, 0.0))
        if batch.targets is not None:
            if hard:
                out_t.append(tf(batch.targets.unsqueeze(1).float(), True, IGNORE_INDEX)[:, 0].to(batch.targets.dtype))
            else:
                out_t.append(tf(batch.targets, False, 0.0))
        if batch.weights is not None:
            out_w.append(tf(batch.weights.unsqueeze(1), False, 0.0)[:, 0])
    return Split({m: torch.cat(v) for m, v in out_in.items()},
                 torch.cat(out_t) if out_t else None, torch.cat(out_w) if out_w else None)
