"""Joint random augmentation: flip, scale and crop applied identically to every input, the targets
(class ids or probabilities per pixel) and the loss weights of a batch — MKE's regularizing
transformation T for segmentation (the paper: flip + scale in [0.5, 1.75]) — an optional
photometric jitter of the colour input alone (`color`), which changes appearance but never geometry
or labels, and, for recognition (one label per sample, which no geometry changes), a random shift of
the images (`shift`, camera jitter) and the silencing of a share of the samples' sound where they also
have pictures (`mute`, a microphone dropping out). Each input's treatment comes from its modality
(`mke.runtime.modalities`): `nearest` ones (depth) are resized with nearest neighbours,
`photometric` ones (rgb, rgb_clip) take the jitter, `image` ones are shifted, the frame's `audio`
field's (audio, mfcc, log_mel) are muted. Image sequences
(N, T, C, H, W) are treated image by image, alike across their T images.

Every draw is made per sample of the global batch: a data-parallel rank's batch (one with a
`Share`, mke.train.data) draws for all the global batch's samples and keeps its own rows, so under
torchrun each sample is augmented as in one process and every rank's generator stays in step with
one process's (the next epoch's shuffle is the same).
"""
from __future__ import annotations

from typing import Collection, Mapping

import torch
import torch.nn.functional as F

from mke.runtime.errors import MkeError
from mke.runtime.modalities import get_modality
from mke.train.data import Share, Split
from mke.train.losses import IGNORE_INDEX


def _draw(n: int, share: Share | None, make) -> torch.Tensor:
    """`make(k)`, a draw for k samples (samples first), for a batch of `n`: in one process k = n; a
    data-parallel rank's batch draws for its whole global batch and keeps its rows."""
    return make(n) if share is None else share.draw(make)


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
    padding gets 0 in the inputs, `IGNORE_INDEX` in class-id targets, 0 probability and 0 weight. Targets
    of each sample as a whole (recognition: (N,) ids, (N, K) probabilities or multilabel 0/1 labels) are
    left as they are: only per-pixel targets, (N, H, W) ids or (N, K, H, W) probabilities, have a grid.
    """
    lo, hi = params.get("scale", (1.0, 1.0))
    flip = bool(params.get("flip", False))
    n = len(batch)
    size = next(iter(batch.inputs.values())).shape[-2:]
    h, w = int(size[0]), int(size[1])
    targets = batch.targets
    dense = targets is None or targets.dim() >= 3  # per pixel
    hard = targets is not None and dense and not targets.is_floating_point()
    out_in = {m: [] for m in batch.inputs}
    out_t, out_w = [], []
    draws = _draw(n, batch.share, lambda k: torch.stack([torch.rand(4, generator=generator) for _ in range(k)]))
    for i in range(n):
        r = draws[i]
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
            shape = t.shape
            t = t.flatten(1, -3)  # an image sequence (1, T, C, H, W) as one (1, T·C, H, W) image
            t = _crop_or_pad(resize_batch(t, (sh, sw), nearest), h, w, top, left, fill)
            return t.reshape(*shape[:-2], h, w)

        for m, x in batch.inputs.items():
            out_in[m].append(tf(x, m in nearest_inputs, 0.0))
        if dense and targets is not None:
            if hard:
                out_t.append(tf(batch.targets.unsqueeze(1).float(), True, IGNORE_INDEX)[:, 0].to(batch.targets.dtype))
            else:
                out_t.append(tf(batch.targets, False, 0.0))
        if dense and batch.weights is not None:
            out_w.append(tf(batch.weights.unsqueeze(1), False, 0.0)[:, 0])
    if not dense:
        return Split({m: torch.cat(v) for m, v in out_in.items()}, batch.targets, batch.weights, batch.share)
    return Split({m: torch.cat(v) for m, v in out_in.items()},
                 torch.cat(out_t) if out_t else None, torch.cat(out_w) if out_w else None, batch.share)


def shift_images(x: torch.Tensor, px: int, generator: torch.Generator, share: Share | None = None) -> torch.Tensor:
    """Each sample's image(s) (N, …, H, W) moved by a random whole number of pixels in [-px, px] along
    each axis, alike for all images of a sample; the uncovered border is 0 (the mean colour once
    normalised)."""
    if px <= 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x, (px, px, px, px))
    offsets = _draw(x.shape[0], share, lambda k: torch.randint(0, 2 * px + 1, (k, 2), generator=generator)).tolist()
    return torch.stack([padded[i, ..., dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


def color_jitter(x: torch.Tensor, strength: float, generator: torch.Generator, grey_p: float = 0.2,
                 share: Share | None = None) -> torch.Tensor:
    """Random lighting and colour cast on a normalised colour batch (N, 3, H, W) or (N, T, 3, H, W), one
    draw per sample:
    x · gain · channel_gain + offset + channel_offset, gains in 1 ± strength (per channel 1 ± strength/2),
    offsets in ± strength standard deviations (per channel ± strength/2), and with probability
    `grey_p` the channels replaced by their mean (a colourless image)."""
    if strength <= 0:
        return x
    n, c = x.shape[0], x.shape[-3]
    ones = (1,) * (x.dim() - 4)  # the T of a sequence: one draw for all its images
    def u(k: int) -> torch.Tensor:  # uniform in [-1, 1]
        return _draw(n, share, lambda m: torch.rand(m, *ones, k, 1, 1, generator=generator)) * 2 - 1

    gain = (1 + strength * u(1)) * (1 + 0.5 * strength * u(c))
    offset = strength * u(1) + 0.5 * strength * u(c)
    out = x * gain.to(x.dtype) + offset.to(x.dtype)
    grey = (_draw(n, share, lambda m: torch.rand(m, generator=generator)) < grey_p).view(n, *ones, 1, 1, 1)
    return torch.where(grey, out.mean(dim=-3, keepdim=True).expand_as(out), out)


def nearest_inputs(kinds: Mapping[str, str]) -> tuple[str, ...]:
    """The inputs (of {input name: modality kind}) that are resized with nearest neighbours (depth)."""
    return tuple(name for name, kind in kinds.items() if get_modality(kind).nearest)


def mute_sound(batch: Split, p: float, generator: torch.Generator, kinds: Mapping[str, str]) -> Split:
    """Each sample's sound inputs (modalities of the frame's `audio` field) set to 0 — their standardised
    mean — with probability `p`, when the sample has other inputs: the microphone drops out, the camera
    still sees, and the model must recognise from the picture alone. A model that only hears is left
    alone (it would have nothing to go on)."""
    if not 0.0 <= p < 1.0:
        raise MkeError(f"augmentation 'mute' is a probability in [0, 1), got {p}")
    sound = {m for m in batch.inputs if get_modality(kinds[m]).field == "audio"}
    if not sound or len(sound) == len(batch.inputs) or p == 0.0:
        return batch
    keep = _draw(len(batch), batch.share, lambda k: torch.rand(k, generator=generator)) >= p
    return Split({m: x * keep.view(-1, *[1] * (x.dim() - 1)).to(x.dtype) if m in sound else x
                  for m, x in batch.inputs.items()}, batch.targets, batch.weights, batch.share)


def augment_batch(batch: Split, params: dict, generator: torch.Generator, kinds: Mapping[str, str]) -> Split:
    """The task's augmentation: `color` jitter on the photometric inputs, then flip / scale / crop on all,
    then `shift` (pixels) of the images of recognition samples, then `mute` (a share of the samples'
    sound silenced where they also have pictures); `kinds` = {input name: modality kind} says which
    input is which."""
    known = {"flip", "scale", "color", "shift", "mute"}
    unknown = set(params) - known
    if unknown:
        raise MkeError(f"unknown augmentation parameter(s) {sorted(unknown)}; known: {sorted(known)}")
    missing = [name for name in batch.inputs if name not in kinds]
    if missing:
        raise MkeError(f"augmentation has no modality kind for the inputs {missing}; known: {dict(kinds)}")
    photometric = {name for name in batch.inputs if get_modality(kinds[name]).photometric}
    strength = float(params.get("color", 0.0))
    if strength:
        batch = Split({m: color_jitter(x, strength, generator, share=batch.share) if m in photometric else x
                       for m, x in batch.inputs.items()}, batch.targets, batch.weights, batch.share)
    if params.get("flip") or tuple(params.get("scale", (1.0, 1.0))) != (1.0, 1.0):
        batch = flip_scale_crop(batch, params, generator, nearest_inputs({m: kinds[m] for m in batch.inputs}))
    shift = int(params.get("shift", 0))
    if shift:
        if batch.targets is not None and batch.targets.dim() > 2:
            raise MkeError("augmentation 'shift' moves the images, not per-pixel labels: dense prediction "
                           "uses 'scale' (resize and crop) instead")
        batch = Split({m: shift_images(x, shift, generator, batch.share) if get_modality(kinds[m]).image else x
                       for m, x in batch.inputs.items()}, batch.targets, batch.weights, batch.share)
    if params.get("mute"):
        batch = mute_sound(batch, float(params["mute"]), generator, kinds)
    return batch
