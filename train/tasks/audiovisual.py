"""Image → image + audio classification: the shared part of the `av` (built-in) and `ravdess` tasks.

A subclass only loads clips (`AVClips`: F image frames and one audio track per clip, labels, actors);
this class turns them into samples with the runtime's preprocessing (the modality registry: the rgb
image and the `preprocess.audio` kind, MFCC by default), builds the paper's networks (a 3-layer CNN
per modality, a 3-layer MLP over their features) and draws the confusion matrices.

A sample is a clip: its F images (the `rgb_clip` kind: an image every 0.5 s, the last at the clip's
end) and its audio — what `mke-live` sees at the moment a clip ends, when the last F images and the
audio window (the last `seconds` of sound) are exactly that clip's.
"""
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import numpy as np
import torch

from mke.runtime.errors import MkeError
from mke.runtime.modalities import Modality
from mke.train.augment import augment_batch
from mke.train.data import MKEData, Split, split_inputs
from mke.train.methods import Regularization
from mke.train.tasks.base import Task

FIELDS = {"rgb": "frames", "audio": "audio"}  # input name → the AVClips array its raw samples come from


class PreprocessedClips:
    """One field of a split's clips ("frames": F images a clip, "audio": one track) through one input's
    preprocessing (its modality), made for the rows asked: the `SampleSource` of `_samples`, lazy or all
    rows at once. The audio is heard at the clips' own rate."""

    def __init__(self, clips, field: str, modality: Modality, params: dict):
        self.raw = getattr(clips, field, None)
        if self.raw is None:
            raise MkeError(f"the {clips.name} split has no {field}")
        self.field, self.rate, self.modality, self.params = field, clips.sample_rate, modality, params

    def __len__(self) -> int:
        return len(self.raw)

    def load(self, rows: np.ndarray) -> torch.Tensor:
        m, p = self.modality, self.params
        if self.field == "audio":
            return torch.from_numpy(np.stack([m(self.raw[i][None], p, rate=self.rate) for i in rows]))
        return torch.from_numpy(np.stack([m(self.raw[i], p) for i in rows]))


class AudioVisualTask(Task):
    kind = "classification"
    networks = ("fusion", "dmd")
    input_kinds = {"rgb": "rgb_clip", "audio": "mfcc"}   # α, β (the paper's MFCCs; a subclass may hear log-mel)
    live_inputs = ("v4l2://0",)                      # a webcam …
    live_audio = "mic://"                           # … and the default microphone

    @abstractmethod
    def load_clips(self, cfg: dict, progress: bool = False) -> dict:
        """{"labeled", "unlabeled", "test"} (and "val") → AVClips (`mke.train.datasets.builtin_av`)."""

    def class_names(self, cfg: dict) -> list[str]:
        return list(self.load_clips(cfg)["test"].class_names)

    def check_clip_settings(self, cfg: dict, frames: int, period_s: float, clip_seconds: float) -> None:
        """The data's clips (`frames` images `period_s` apart, `clip_seconds` of sound: data.clip_seconds /
        data.frame_period_s) and the preprocessing must describe the same clip: MkeError names both keys."""
        rgb, audio = self.input_params(cfg, "rgb"), self.input_params(cfg, "audio")
        if int(rgb.get("frames", frames)) != frames or float(rgb.get("period_s", period_s)) != period_s:
            raise MkeError(f"preprocess.rgb takes {rgb.get('frames')} images {rgb.get('period_s')} s apart, but the "
                           f"clips have {frames} (data.clip_seconds={clip_seconds:g} / data.frame_period_s="
                           f"{period_s:g}): set preprocess.rgb.frames={frames} and preprocess.rgb.period_s={period_s:g}")
        if "seconds" in audio and float(audio["seconds"]) > clip_seconds + 1e-9:
            raise MkeError(f"preprocess.audio.seconds={audio['seconds']:g} is longer than the clips "
                           f"(data.clip_seconds={clip_seconds:g}): set it to {clip_seconds:g} or less")

    def prepare(self, cfg: dict, progress: bool) -> None:
        self.load_clips(cfg, progress)

    def _samples(self, clips, cfg: dict, names: tuple[str, ...]) -> Split:
        """Every clip's inputs, preprocessed by their modalities (the audio from the clips' own rate): in
        memory, or lazy above `loader.in_memory_mb` (`split_inputs`: clips read from the memory-mapped
        cache and preprocessed per batch, by DataLoader workers). The values are the same either way."""
        sources = {name: PreprocessedClips(clips, FIELDS[name], self.input_modality(name), self.input_params(cfg, name))
                   for name in names}
        return Split(split_inputs(sources, cfg), self.label_kind.true_targets(clips.labels))

    def build_data(self, cfg: dict) -> MKEData:
        clips = self.load_clips(cfg)
        for name in ("labeled", "unlabeled", "test"):
            if name not in clips or len(clips[name]) == 0:
                raise MkeError(f"the {name} split is missing or empty")
        alpha, beta = self.input_kinds
        return MKEData(alpha=alpha, beta=beta, labeled=self._samples(clips["labeled"], cfg, (alpha,)),
                       unlabeled=self._samples(clips["unlabeled"], cfg, (alpha, beta)),
                       test=self._samples(clips["test"], cfg, (alpha, beta)),
                       class_names=list(clips["test"].class_names))

    def build_model(self, cfg: dict, role: str, modalities: tuple[str, ...], reg: Regularization) -> torch.nn.Module:
        from mke.train.models.av import AVNet

        if role == "dmd":
            from mke.train.models.dmd import build_dmd

            return build_dmd(self, cfg, modalities, len(self.class_names(cfg)), dropout=reg.dropout)

        unknown = [m for m in modalities if m not in self.input_kinds]
        if unknown:
            raise MkeError(f"task {self.name} has the inputs {' and '.join(self.input_kinds)}, not {unknown}")
        m = cfg["model"]
        channels = {name: self.input_modality(name).input_shape(self.input_params(cfg, name))[-3]
                    for name in modalities}  # (…, C, H, W)
        missing = [name for name in modalities if name not in m.get("branches", {})]
        if missing:
            raise MkeError(f"model.branches has no entry for the input {missing[0]!r} (an arch and its settings, "
                           f"mke.train.models.branches)")
        return AVNet(channels, len(self.class_names(cfg)), m["branches"], m["hidden"], dropout=reg.dropout,
                     hidden_noise=reg.hidden_noise)

    def augment(self, batch: Split, params: dict, generator: torch.Generator) -> Split:
        return augment_batch(batch, params, generator, self.input_kinds)

    def figures(self, run, data: MKEData) -> list[Path]:
        from mke.train.plots import confusion_matrices

        return [confusion_matrices(run, self, data)]
