"""RGB → RGB-D semantic segmentation: the shared part of the `rgbd` and `nyuv2` tasks.

A subclass only loads raw frames (`FrameSet`: uint8 RGB, uint16 millimetre depth, uint8 labels);
this class turns them into tensors with the runtime's preprocessing (each input's registered
modality, `mke.runtime.modalities`: the functions the robot runs), builds the ESANet-style
networks, weighs rare classes, augments jointly and draws the report's figures.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterable

import numpy as np
import torch

from mke.runtime.camera import Intrinsics
from mke.runtime.errors import MkeError
from mke.runtime.modalities import Modality
from mke.train.augment import augment_batch
from mke.train.data import MKEData, Split, split_inputs
from mke.train.losses import IGNORE_INDEX
from mke.train.methods import Regularization
from mke.train.models.segmentation import SegmentationNet
from mke.train.soft_labels import target_class_ids
from mke.train.tasks.base import Task


@dataclass
class FrameSet:
    """Raw frames of one split, as sensors and datasets give them. A field is an array in memory, a
    memory-mapped one (`np.memmap`: a cache on disk) or a `FrameArray` (frames read from their files
    when indexed: data larger than memory); each gives numpy when indexed, and the checks here read
    only shapes and dtypes, never a frame."""

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

    def field(self, name: str) -> np.ndarray | None:
        """The raw frames of a modality's field ("rgb", "depth", as LiveFrame names them)."""
        return getattr(self, _FIELD_ATTRIBUTES.get(name, name), None)

    def context(self, index: int, names: Iterable[str]) -> dict[str, Any]:
        """Frame `index`'s metadata a modality's preprocessing takes ("intrinsics", "up"), None where unknown."""
        values = {name: getattr(self, name, None) for name in names}
        return {name: None if v is None else v[index] for name, v in values.items()}


_FIELD_ATTRIBUTES = {"depth": "depth_mm"}  # fields whose FrameSet attribute names the unit


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


def _chunks(frames: np.ndarray, count: int = 256) -> Iterable[np.ndarray]:
    """`frames` in pieces of `count` frames: a check over a memory-mapped split reads it piece by piece."""
    return (frames[i:i + count] for i in range(0, max(len(frames), 1), count))


class PreprocessedFrames:
    """The frames of one split through one input's preprocessing (its modality, `mke.runtime.modalities`),
    made for the rows asked: the `SampleSource` of a lazy split, and, all rows at once, an in-memory one."""

    def __init__(self, frames: FrameSet, modality: Modality, params: dict):
        if frames.field(modality.field) is None:
            raise MkeError(f"the {frames.name} split has no {modality.field}")
        self.frames, self.modality, self.params = frames, modality, params

    def __len__(self) -> int:
        return len(self.frames)

    def load(self, rows: np.ndarray) -> torch.Tensor:
        raw, m = self.frames.field(self.modality.field), self.modality
        return torch.from_numpy(np.stack([m(raw[i], self.params, **self.frames.context(i, m.context)) for i in rows]))


class RGBDSegmentationTask(Task):
    kind = "segmentation"
    class_names: tuple[str, ...] = ()
    class_colors: tuple[tuple[int, int, int], ...] = ()
    input_kinds = {"rgb": "rgb", "depth": "depth"}  # α and β

    @abstractmethod
    def load_frames(self, cfg: dict) -> dict[str, FrameSet]:
        """{"labeled": RGB + labels, "unlabeled": RGB + depth (+ labels if known), "test": all three}."""

    def check_frame_metadata(self, cfg: dict, carried: Collection[str], source: str) -> None:
        """An MkeError when an input's preprocessing needs per-frame metadata (the camera intrinsics for
        HHA) that the frames of `source` do not carry: before any frame is read."""
        for name in self.input_kinds:
            for needed, setting in self.input_modality(name).needs(self.input_params(cfg, name)).items():
                if needed not in carried:
                    raise MkeError(f"preprocess.{name}.{setting} needs the camera {needed}, which {source} do not "
                                   f"carry; choose another preprocess.{name}.{setting.split('=')[0]}")

    def input_channels(self, cfg: dict, name: str) -> int:
        return self.input_modality(name).input_shape(self.input_params(cfg, name))[0]

    def input_fallback_shape(self, cfg: dict, name: str) -> tuple[int, ...]:
        return -1, cfg["data"]["height"], cfg["data"]["width"]  # an image without `size`: the frames' own

    def _tensors(self, frames: FrameSet, cfg: dict, names: tuple[str, ...]) -> Split:
        """The split's inputs through their preprocessing and its labels at the α input's size. Inputs
        whose preprocessed tensors would take more than `loader.in_memory_mb` stay lazy (`split_inputs`:
        frames read from disk and preprocessed per batch, by DataLoader workers); below it, in memory.
        The values are the same either way."""
        sources = {name: PreprocessedFrames(frames, self.input_modality(name), self.input_params(cfg, name))
                   for name in names}
        inputs = split_inputs(sources, cfg)
        labels = None
        if frames.labels is not None:
            alpha = next(iter(self.input_kinds))  # labels are per pixel of the α image, at its size
            size = self.input_modality(alpha).params(self.input_params(cfg, alpha))["size"]
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
                bad = np.unique(np.concatenate([np.unique(part[(part != IGNORE_INDEX) & (part >= k)])
                                                for part in _chunks(fs.labels)]))
                if bad.size:
                    raise MkeError(f"the {name} split has class ids {bad[:5].tolist()} but the task has {k} classes")
        alpha, beta = self.input_kinds
        return MKEData(alpha=alpha, beta=beta, labeled=self._tensors(frames["labeled"], cfg, (alpha,)),
                       unlabeled=self._tensors(frames["unlabeled"], cfg, (alpha, beta)),
                       test=self._tensors(frames["test"], cfg, (alpha, beta)), class_names=list(self.class_names))

    def build_model(self, cfg: dict, role: str, modalities: tuple[str, ...], reg: Regularization) -> torch.nn.Module:
        unknown = [m for m in modalities if m not in self.input_kinds]
        if unknown:
            raise MkeError(f"task {self.name} has modalities {' and '.join(self.input_kinds)}, not {unknown}")
        m = cfg["model"]
        return SegmentationNet({name: self.input_channels(cfg, name) for name in modalities}, len(self.class_names),
                               m["encoder"], m["decoder_width"], m["pretrained"], dropout=reg.dropout,
                               hidden_noise=reg.hidden_noise)

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
        return augment_batch(batch, params, generator, self.input_kinds)

    def figures(self, run, data: MKEData) -> list[Path]:
        from mke.train.plots import segmentation_examples

        return [segmentation_examples(run, self, data)]
