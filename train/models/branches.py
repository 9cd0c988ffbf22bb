"""Per-input feature extractors ("branches") of the audio-visual networks, by name.

A branch turns one input into a feature vector: an image or spectrogram (N, C, H, W) → (N, F), a
clip of images (N, T, C, H, W) → (N, F'). `model.branches.<input>` of a task's config chooses one by
`arch` and gives its parameters:

| arch | body | for |
|---|---|---|
| `cnn` | `widths` Conv3×3-BatchNorm-ReLU-Pool2×2 blocks (`downsample`: max or avg) | the paper's RAVDESS CNNs; small video frames |
| `mobilenet` | torchvision's MobileNetV3 (`size` large or small) at `width` × its channels (0.4 ≈ EfficientAT's mn04) | a Jetson-sized audio CNN on log-mel |
| `resnet18` | torchvision's ResNet-18 (stem to the input's channels) | GPU servers (the paper's audio teacher) |
| `r3d_18` | torchvision's 3D ResNet-18 over (C, T, H, W) | a video clip as one volume, on GPU servers |

The 2D bodies end in a global pooling over the image (`pool`: mean, max, or meanmax — both,
concatenated); a clip is run image by image and its features pooled over time (`frames`: mean, max,
or meanstd — the mean and the standard deviation over the images, which keeps how much each feature
changes: what moves). `r3d_18` pools over time and space itself (mean). A new arch is one function
registered with `@register_branch`. None of them holds a device-specific tensor: the modules run
wherever they are moved, and export to ONNX with fixed shapes.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from mke.runtime.errors import MkeError

SPATIAL_POOLS = ("mean", "max", "meanmax")
TEMPORAL_POOLS = ("mean", "max", "meanstd")

# arch → (builder(in_channels, params) → (body, body's output channels), its parameters' defaults)
_ARCHS: dict[str, tuple[Callable[[int, dict], tuple[nn.Module, int]], dict]] = {}


def register_branch(name: str, **defaults):
    """Decorator: `fn(in_channels, params) -> (body, channels)` becomes the branch arch `name`; `defaults`
    are its parameters (a config may set only these, plus `pool` and `frames`)."""
    def register(fn):
        _ARCHS[name] = (fn, defaults)
        return fn
    return register


def _choice(params: dict, key: str, options: tuple[str, ...], where: str) -> str:
    value = params[key]
    if value not in options:
        raise MkeError(f"{where}.{key} must be one of {', '.join(options)}, got {value!r}")
    return value


class FrameBranch(nn.Module):
    """A 2D body, then global pooling over the image (`pool`); a clip (N, T, C, H, W) is run image by image
    and pooled over T (`frames`): (N, C, H, W) → (N, F), (N, T, C, H, W) → (N, F × (2 if meanstd))."""

    def __init__(self, body: nn.Module, channels: int, pool: str = "mean", frames: str = "mean"):
        super().__init__()
        self.body = body
        self.pool = pool
        self.frames = frames
        spatial = channels * (2 if pool == "meanmax" else 1)
        self.image_features = spatial
        self.out_features = spatial * (2 if frames == "meanstd" else 1)

    def _spatial(self, h: torch.Tensor) -> torch.Tensor:
        if self.pool == "max":
            return h.amax(dim=(2, 3))
        if self.pool == "mean":
            return h.mean(dim=(2, 3))
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)

    def per_image(self, x: torch.Tensor) -> torch.Tensor:
        """A clip (N, T, C, H, W) → its images' features as a sequence (N, T, image_features)."""
        return self._spatial(self.body(x.flatten(0, 1))).view(x.shape[0], x.shape[1], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1] if x.dim() == 5 else 0
        h = self._spatial(self.body(x.flatten(0, 1) if steps else x))
        if not steps:
            return h
        h = h.view(-1, steps, h.shape[1])
        if self.frames == "mean":
            return h.mean(dim=1)
        if self.frames == "max":
            return h.amax(dim=1)
        return torch.cat([h.mean(dim=1), h.std(dim=1, unbiased=False)], dim=1)


class VolumeBranch(nn.Module):
    """A 3D body over a clip (N, T, C, H, W) → (N, C, T, H, W), then the mean over time and space."""

    def __init__(self, body: nn.Module, channels: int):
        super().__init__()
        self.body = body
        self.out_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise MkeError(f"an r3d_18 branch takes clips (N, T, C, H, W), got a {x.dim()}-d input")
        return self.body(x.transpose(1, 2)).mean(dim=(2, 3, 4))


@register_branch("cnn", widths=(16, 32, 64), downsample="max")
def cnn(in_channels: int, p: dict) -> tuple[nn.Module, int]:
    """Conv3×3-BatchNorm-ReLU-Pool2×2 per width. (Strided convolutions instead of pooling ran 3–4× faster
    on a CPU but lost 10–20 points of accuracy on the built-in av clips, docs/av.md.)"""
    pooling = nn.MaxPool2d if p["downsample"] == "max" else nn.AvgPool2d
    layers, c = [], in_channels
    for w in p["widths"]:
        layers += [nn.Conv2d(c, int(w), 3, padding=1, bias=False), nn.BatchNorm2d(int(w)), nn.ReLU(inplace=True),
                   pooling(2)]
        c = int(w)
    return nn.Sequential(*layers), c


def _first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """`conv` taking `in_channels` (a spectrogram's 1) instead of RGB's 3; freshly initialised."""
    return nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)


@register_branch("mobilenet", size="large", width=0.4)
def mobilenet(in_channels: int, p: dict) -> tuple[nn.Module, int]:
    """torchvision's MobileNetV3 features (inverted residuals, squeeze-excitation, hard-swish), untrained."""
    from torchvision.models import mobilenet_v3_large, mobilenet_v3_small

    build = {"large": mobilenet_v3_large, "small": mobilenet_v3_small}
    if p["size"] not in build:
        raise MkeError(f"a mobilenet branch's size must be large or small, got {p['size']!r}")
    width = float(p["width"])
    if not 0 < width <= 2:
        raise MkeError(f"a mobilenet branch's width must be in (0, 2], got {p['width']!r}")
    body = build[p["size"]](weights=None, width_mult=width).features
    body[0][0] = _first_conv(body[0][0], in_channels)
    return body, body[-1].out_channels


@register_branch("resnet18")
def resnet18(in_channels: int, p: dict) -> tuple[nn.Module, int]:
    """torchvision's ResNet-18 up to its last stage (no pooling, no classifier), untrained."""
    from torchvision.models import resnet18 as build

    r = build(weights=None)
    body = nn.Sequential(_first_conv(r.conv1, in_channels), r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3,
                         r.layer4)
    return body, 512


@register_branch("r3d_18")
def r3d_18(in_channels: int, p: dict) -> tuple[nn.Module, int]:
    """torchvision's 3D ResNet-18 (Kinetics' architecture) up to its last stage, untrained."""
    from torchvision.models.video import r3d_18 as build

    r = build(weights=None)
    if in_channels != 3:
        stem = r.stem[0]
        r.stem[0] = nn.Conv3d(in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False)
    return nn.Sequential(r.stem, r.layer1, r.layer2, r.layer3, r.layer4), 512


def branch_archs() -> list[str]:
    return sorted(_ARCHS)


def build_branch(in_channels: int, params: dict, where: str = "model.branches") -> nn.Module:
    """The branch `params["arch"]` with `params` over its defaults; MkeError naming `where` for an unknown
    arch or key."""
    params = dict(params)
    arch = params.pop("arch", None)
    if arch not in _ARCHS:
        raise MkeError(f"{where}.arch must be one of {', '.join(branch_archs())}, got {arch!r}")
    build, defaults = _ARCHS[arch]
    own = {"pool": "mean", "frames": "mean"} if arch != "r3d_18" else {}
    unknown = sorted(set(params) - set(defaults) - set(own))
    if unknown:
        raise MkeError(f"{where} ({arch}) has no setting {', '.join(unknown)}; it takes "
                       f"{', '.join(sorted({**defaults, **own})) or 'none'}")
    p = {**defaults, **own, **params}
    body, channels = build(in_channels, p)
    if arch == "r3d_18":
        return VolumeBranch(body, channels)
    return FrameBranch(body, channels, _choice(p, "pool", SPATIAL_POOLS, where), _choice(p, "frames", TEMPORAL_POOLS, where))
