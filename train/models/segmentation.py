"""RGB and RGB-D semantic segmentation networks in the manner of ESANet (Seichter et al., ICRA 2021).

One encoder per modality; at each encoder stage the depth features are fused into the RGB stream
by squeeze-and-excitation weighting and addition (SE-add), the fused features go on through the
RGB encoder and serve as skip connections for a light decoder. With one modality it is a plain
encoder–decoder: the teacher, and the UM student (the student's RGB branch alone).

Only operations TensorRT runs well: convolutions, batch norm, ReLU, global average pooling,
sigmoid, element-wise add/multiply, bilinear resize to a fixed size. No data-dependent control flow.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet

from mke.runtime.errors import MkeError
from mke.train.transforms import add_relative_noise

# name → (block, blocks per stage, stage widths); "tiny" and "small" are CPU sizes made of the same
# torchvision residual blocks with fewer channels; the others are torchvision's ResNets.
ENCODERS = {
    "tiny": (resnet.BasicBlock, [1, 1, 1, 1], [16, 32, 64, 128]),
    "small": (resnet.BasicBlock, [1, 1, 1, 1], [32, 64, 128, 256]),
    "resnet18": (resnet.BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512]),
    "resnet34": (resnet.BasicBlock, [3, 4, 6, 3], [64, 128, 256, 512]),
    "resnet50": (resnet.Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512]),
    "resnet101": (resnet.Bottleneck, [3, 4, 23, 3], [64, 128, 256, 512]),
}
TORCHVISION_WEIGHTS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights",
                       "resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights"}


def _stage(block, inplanes: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                                   nn.BatchNorm2d(planes * block.expansion))
    layers = [block(inplanes, planes, stride, downsample)]
    inplanes = planes * block.expansion
    layers += [block(inplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), inplanes


class Encoder(nn.Module):
    """A ResNet-style encoder: a stem (stride 4) and four stages (strides 4, 8, 16, 32)."""

    def __init__(self, name: str, in_channels: int, pretrained: bool = False):
        super().__init__()
        if name not in ENCODERS:
            raise MkeError(f"encoder '{name}' is not one of {', '.join(ENCODERS)}")
        block, blocks, widths = ENCODERS[name]
        stem_width = widths[0]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, 7, 2, 3, bias=False), nn.BatchNorm2d(stem_width),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        inplanes = stem_width
        stages, self.channels = [], []
        for i, (planes, n) in enumerate(zip(widths, blocks)):
            stage, inplanes = _stage(block, inplanes, planes, n, 1 if i == 0 else 2)
            stages.append(stage)
            self.channels.append(inplanes)
        self.stages = nn.ModuleList(stages)
        if pretrained:
            self._load_imagenet(name, in_channels)

    def _load_imagenet(self, name: str, in_channels: int) -> None:
        if name not in TORCHVISION_WEIGHTS:
            raise MkeError(f"encoder '{name}' has no ImageNet weights; use one of {', '.join(TORCHVISION_WEIGHTS)} "
                           f"or set the encoder's pretrained: false")
        import torchvision.models as tvm

        weights = getattr(tvm, TORCHVISION_WEIGHTS[name]).DEFAULT
        try:
            state = weights.get_state_dict(progress=False)
        except Exception as exc:  # no network, proxy, missing cache …
            raise MkeError(f"cannot fetch ImageNet weights for {name} ({exc.__class__.__name__}: {exc}); place "
                           f"{weights.url.rsplit('/', 1)[-1]} in $TORCH_HOME/hub/checkpoints/ or set pretrained: false") from None
        conv1 = state["conv1.weight"]
        if in_channels != 3:  # depth or HHA branch: average the RGB filters over the input channels
            conv1 = conv1.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) * (3 / in_channels)
        mapped = {"stem.0.weight": conv1, **{f"stem.1.{k}": state[f"bn1.{k}"] for k in
                                             ("weight", "bias", "running_mean", "running_var")}}
        for key, value in state.items():
            if key.startswith("layer"):
                stage, rest = key[len("layer"):].split(".", 1)
                mapped[f"stages.{int(stage) - 1}.{rest}"] = value
        missing, unexpected = self.load_state_dict(mapped, strict=False)
        if unexpected or [m for m in missing if "num_batches_tracked" not in m]:
            raise MkeError(f"ImageNet weights for {name} do not fit the encoder (missing {missing[:3]}, unexpected {unexpected[:3]})")


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class SEAddFusion(nn.Module):
    """ESANet's fusion: SE-weighted RGB features plus SE-weighted depth features."""

    def __init__(self, channels: int):
        super().__init__()
        self.se_rgb = SqueezeExcite(channels)
        self.se_depth = SqueezeExcite(channels)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return self.se_rgb(rgb) + self.se_depth(depth)


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Decoder(nn.Module):
    """Top-down: 1×1 lateral convolutions on each stage's features, upsampled and added, then a 3×3 head."""

    def __init__(self, channels: list[int], width: int, num_classes: int, dropout: float):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.smooth = _conv_bn_relu(width, width)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](feats[-1])
        for lateral, skip in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + lateral(skip)
        return self.classifier(self.dropout(self.smooth(x)))


class SegmentationNet(nn.Module):
    """forward(rgb=…, [depth=…]) → class scores (N, K, H, W) at the input's resolution.

    The first modality is the main stream (RGB); a second one gets its own encoder, fused in at
    every stage. Hidden-layer noise (MKE's regularization) is added to the main stream after the stem.
    """

    def __init__(self, input_channels: dict[str, int], num_classes: int, encoder: str = "tiny",
                 decoder_width: int = 64, pretrained: bool = False, dropout: float = 0.0, hidden_noise: float = 0.0):
        super().__init__()
        if not 1 <= len(input_channels) <= 2:
            raise MkeError(f"SegmentationNet takes one or two modalities, got {list(input_channels)}")
        self.input_names = tuple(input_channels)
        self.encoders = nn.ModuleDict({name: Encoder(encoder, c, pretrained) for name, c in input_channels.items()})
        channels = self.encoders[self.input_names[0]].channels
        self.fusions = nn.ModuleList(SEAddFusion(c) for c in channels) if len(input_channels) == 2 else None
        self.decoder = Decoder(channels, decoder_width, num_classes, dropout)
        self.hidden_noise = hidden_noise

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        main = self.input_names[0]
        size = inputs[main].shape[-2:]
        x = self.encoders[main].stem(inputs[main])
        if self.training:
            x = add_relative_noise(x, self.hidden_noise)
        if self.fusions is not None:
            other = self.input_names[1]
            y = self.encoders[other].stem(inputs[other])
        feats = []
        for i, stage in enumerate(self.encoders[main].stages):
            x = stage(x)
            if self.fusions is not None:
                y = self.encoders[other].stages[i](y)
                x = self.fusions[i](x, y)
            feats.append(x)
        logits = self.decoder(feats)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
