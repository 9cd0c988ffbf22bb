"""RGB → RGB-D semantic segmentation: the shared part of the `rgbd` and `nyuv2` tasks.

A subclass only loads raw frames (`FrameSet`: uint8 RGB, uint16 millimetre depth, uint8 labels);
this class turns them into tensors with the runtime's preprocessing, builds the ESANet-style
networks, weighs rare classes, augments jointly and draws the report's figures.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mke.runtime.camera import Intrinsics
from mke.runtime.errors import MkeError
from mke.runtime.preprocess import check_depth, preprocess_depth, preprocess_rgb
from mke.train.augment import augment_batch
from mke.train.data import MKEData, Split
from mke.train.losses import IGNORE_INDEX
from mke.train.methods import Regularization
from mke.train.models.segmentation import SegmentationNet
from mke.train.pseudo import target_class_ids
from mke.train.tasks.base import Task


@dataclass
class FrameSet:
    """Raw frames of one split, as sensors and datasets give them."""

    rgb: np.ndarray                        # (N, H, W, 3) uint8, RGB order
    depth_mm: np.ndarray | None = None     # (N, H, W) uint16 millimetres, 0 = invalid
    labels: np.ndarray | None = None       # (N, H, W) uint8 class ids, 255 = void
    intrinsics: list[Intrinsics] | None = None  # per frame, of its colour camera (depth is aligned to it)
    up: np.ndarray | None = None           # (N, 3) "up" in camera coordinates (for HHA), if known
    name: str = "frames"

    def __post_init__(self):
        n, h, w = self.rgb.shape[:3]
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 4 or self.rgb.shape[3] != 3:
            raise MkeError(f"{self.name}: RGB must be uint8 (N, H, W, 3), got {self.rgb.dtype} {self.rgb.shape}")
        if self.depth_mm is not None:
            if self.depth_mm.dtype != np.uint16:
                raise MkeError(f"{self.name}: depth must be uint16 millimetres, got {self.depth_mm.dtype}")
            if self.depth_mm.shape != (n, h, w):
                raise MkeError(f"{self.name}: depth is {self.depth_mm.shape[1:]} but RGB is {(h, w)}; align depth to colour first")
        if self.labels is not None and self.labels.shape != (n, h, w):
            raise MkeError(f"{self.name}: labels are {self.labels.shape} but RGB is {(n, h, w)}")

    def __len__(self) -> int:
        return len(self.rgb)


def median_frequency_weights(labels: torch.Tensor, num_classes: int, cap: float = 10.0) -> torch.Tensor:
    """Median-frequency class balancing (Eigen & Fergus): weight_c = median(freq) / freq_c, capped."""
    ids = labels.reshape(-1)
    ids = ids if ids.dtype == torch.uint8 else ids.long()  # counting uint8 directly: 20× faster than a copy to int64
    counts = torch.bincount(ids, minlength=max(num_classes, IGNORE_INDEX + 1))
    counts = counts[:num_classes].float()  # IGNORE_INDEX (void) and any other id ≥ num_classes not counted
    freq = counts / counts.sum().clamp_min(1)
    present = freq > 0
    weights = torch.ones(num_classes)
    weights[present] = freq[present].median() / freq[present]
    return weights.clamp(max=cap)


class RGBDSegmentationTask(Task):
    kind = "segmentation"
    class_names: tuple[str, ...] = ()
    class_colors: tuple[tuple[int, int, int], ...] = ()

    @abstractmethod
    def load_frames(self, cfg: dict) -> dict[str, FrameSet]:
        """{"labeled": RGB + labels, "unlabeled": RGB + depth (+ labels if known), "test": all three}."""

    def depth_channels(self, cfg: dict) -> int:
        return 3 if cfg["preprocess"]["depth"].get("encoding", "metric") == "hha" else 1

    def _tensors(self, frames: FrameSet, cfg: dict, with_depth: bool) -> Split:
        pre = cfg["preprocess"]
        rgb = torch.from_numpy(np.stack([preprocess_rgb(x, pre["rgb"]) for x in frames.rgb]))
        inputs = {"rgb": rgb}
        if with_depth:
            if frames.depth_mm is None:
                raise MkeError(f"the {frames.name} split has no depth")
            depth = []
            for i, d in enumerate(frames.depth_mm):
                check_depth(d, f"{frames.name} depth frame {i}")
                k = None if frames.intrinsics is None else frames.intrinsics[i]
                up = None if frames.up is None else frames.up[i]
                depth.append(preprocess_depth(d, pre["depth"], k, up))
            inputs["depth"] = torch.from_numpy(np.stack(depth))
        labels = None
        if frames.labels is not None:
            size = pre["rgb"].get("size")
            lab = frames.labels
            if size is not None and tuple(lab.shape[1:]) != tuple(size):
                import cv2
                lab = np.stack([cv2.resize(x, (size[1], size[0]), interpolation=cv2.INTER_NEAREST) for x in lab])
            labels = torch.from_numpy(np.ascontiguousarray(lab))
        return Split(inputs, labels)

    def build_data(self, cfg: dict) -> MKEData:
        frames = self.load_frames(cfg)
        for name in ("labeled", "unlabeled", "test"):
            if name not in frames or len(frames[name]) == 0:
                raise MkeError(f"the {name} split is missing or empty")
        k = len(self.class_names)
        for name, fs in frames.items():
            if fs.labels is not None:
                bad = np.unique(fs.labels[(fs.labels != IGNORE_INDEX) & (fs.labels >= k)])
                if bad.size:
                    raise MkeError(f"the {name} split has class ids {bad[:5].tolist()} but the task has {k} classes")
        labeled = self._tensors(frames["labeled"], cfg, with_depth=False)
        return MKEData(alpha="rgb", beta="depth", labeled=labeled,
                       unlabeled=self._tensors(frames["unlabeled"], cfg, with_depth=True),
                       test=self._tensors(frames["test"], cfg, with_depth=True), class_names=list(self.class_names))

    def build_model(self, cfg: dict, role: str, modalities: tuple[str, ...], reg: Regularization) -> torch.nn.Module:
        channels = {"rgb": 3, "depth": self.depth_channels(cfg)}
        unknown = [m for m in modalities if m not in channels]
        if unknown:
            raise MkeError(f"task {self.name} has modalities rgb and depth, not {unknown}")
        m = cfg["model"]
        return SegmentationNet({name: channels[name] for name in modalities}, len(self.class_names), m["encoder"],
                               m["decoder_width"], m["pretrained"], dropout=reg.dropout, hidden_noise=reg.hidden_noise)

    def input_spec(self, cfg: dict, modality: str):
        from mke.runtime.spec import InputSpec

        pre = cfg["preprocess"][modality]
        h, w = pre.get("size") or (cfg["data"]["height"], cfg["data"]["width"])
        channels = 3 if modality == "rgb" else self.depth_channels(cfg)
        return InputSpec(modality, modality, [1, channels, int(h), int(w)], layout="NCHW",
                         preprocess={"kind": modality, **pre})

    def class_weight(self, cfg: dict, targets, num_classes: int) -> torch.Tensor | None:
        """Median-frequency weights of the classes in the model's own training targets: the teacher's
        labels of D_l, a student's pseudo labels of D_u (whose rare classes are rarer still: the
        teacher under-predicts them; MM student +0.8 mIoU against D_l's weights, docs/rgbd.md)."""
        kind = cfg["loss"]["class_weighting"]
        if kind == "none":
            return None
        if kind == "median_frequency":
            return median_frequency_weights(target_class_ids(targets), num_classes)
        raise MkeError(f"loss.class_weighting must be 'none' or 'median_frequency', got {kind!r}")

    def augment(self, batch: Split, params: dict, generator: torch.Generator) -> Split:
        return augment_batch(batch, params, generator, nearest_inputs=("depth",), color_inputs=("rgb",))

    def figures(self, run, data: MKEData) -> list[Path]:
        from mke.train.plots import segmentation_examples

        return [segmentation_examples(run, self, data)]
