"""Joint random augmentation for dense prediction: flip, scale and crop applied identically to every
input, the targets (class ids or probabilities) and the loss weights of a batch — MKE's
regularizing transformation T for segmentation (the paper: flip + scale in [0.5, 1.75]) — and an
optional photometric jitter of the colour input alone (`color`), which changes appearance but never
geometry or labels. Each input's treatment comes from its modality (`mke.runtime.modalities`):
`nearest` ones (depth) are resized with nearest neighbours, `photometric` ones (rgb) take the jitter.
"""
from __future__ import annotations

from typing import Collection, Mapping

import torch
import torch.nn.functional as F

from mke.runtime.errors import MkeError
from mke.runtime.modalities import get_modality
from mke.train.data import Split
from mke.train.losses import IGNORE_INDEX


def resize_batch(t: torch.Tensor, size: tuple[int, int], nearest: bool) -> torch.Tensor:
    """(N, C, H, W) → (N, C, *size): nearest neighbour (depth, class ids) or bilinear."""
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
                    nearest_inputs: Collection[str] = ()) -> Split:
    """Per sample: horizontal flip with probability ½ (`flip`), resize by a factor drawn uniformly from
    `scale` = [lo, hi], then crop (or pad) back to the original size at a random position.

    `nearest_inputs` (depth) are resized with nearest neighbours so invalid pixels (0) do not bleed into valid ones;
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
            if (sh, sw) == (h, w):  # scale 1 (flip-only T): nothing to resize or crop
                return t
            return _crop_or_pad(resize_batch(t, (sh, sw), nearest), h, w, top, left, fill)

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


def color_jitter(x: torch.Tensor, strength: float, generator: torch.Generator, grey_p: float = 0.2) -> torch.Tensor:
    """Random lighting and colour cast on a normalised colour batch (N, 3, H, W), one draw per sample:
    x · gain · channel_gain + offset + channel_offset, gains in 1 ± strength (per channel 1 ± strength/2),
    offsets in ± strength standard deviations (per channel ± strength/2), and with probability
    `grey_p` the channels replaced by their mean (a colourless image)."""
    if strength <= 0:
        return x
    n, c = x.shape[:2]
    u = lambda *shape: torch.rand(*shape, generator=generator) * 2 - 1  # noqa: E731  uniform in [-1, 1]
    gain = (1 + strength * u(n, 1, 1, 1)) * (1 + 0.5 * strength * u(n, c, 1, 1))
    offset = strength * u(n, 1, 1, 1) + 0.5 * strength * u(n, c, 1, 1)
    out = x * gain.to(x.dtype) + offset.to(x.dtype)
    grey = (torch.rand(n, generator=generator) < grey_p).view(n, 1, 1, 1)
    return torch.where(grey, out.mean(dim=1, keepdim=True).expand_as(out), out)


def nearest_inputs(kinds: Mapping[str, str]) -> tuple[str, ...]:
    """The inputs (of {input name: modality kind}) that are resized with nearest neighbours (depth)."""
    return tuple(name for name, kind in kinds.items() if get_modality(kind).nearest)


def augment_batch(batch: Split, params: dict, generator: torch.Generator, kinds: Mapping[str, str]) -> Split:
    """The task's augmentation: `color` jitter on the photometric inputs, then flip / scale / crop on all;
    `kinds` = {input name: modality kind} says which input is which."""
    known = {"flip", "scale", "color"}
    unknown = set(params) - known
    if unknown:
        raise MkeError(f"unknown augmentation parameter(s) {sorted(unknown)}; known: {sorted(known)}")
    missing = [name for name in batch.inputs if name not in kinds]
    if missing:
        raise MkeError(f"augmentation has no modality kind for the inputs {missing}; known: {dict(kinds)}")
    photometric = {name for name in batch.inputs if get_modality(kinds[name]).photometric}
    strength = float(params.get("color", 0.0))
    if strength:
        batch = Split({m: color_jitter(x, strength, generator) if m in photometric else x
                       for m, x in batch.inputs.items()}, batch.targets, batch.weights)
    if params.get("flip") or tuple(params.get("scale", (1.0, 1.0))) != (1.0, 1.0):
        batch = flip_scale_crop(batch, params, generator, nearest_inputs({m: kinds[m] for m in batch.inputs}))
    return batch
