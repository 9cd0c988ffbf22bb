"""The contract between the MKE core and a task (TwoMoon, RGB-D segmentation, audio-visual …)."""
from __future__ import annotations

import colorsys
from abc import ABC, abstractmethod
from pathlib import Path

import torch

from mke.runtime.errors import MkeError
from mke.train.data import MKEData
from mke.train.methods import Regularization

def label_colors(n: int) -> tuple[tuple[int, int, int], ...]:
    """`n` distinct RGB colours for drawing class ids, the same for every run.

    Hues step by the golden ratio round the colour wheel; saturation and value cycle through three
    levels so that neighbouring ids differ in brightness too.
    """
    colors = []
    for i in range(n):
        h = (0.07 + i * 0.6180339887498949) % 1.0
        s = (0.85, 0.55, 0.95)[i % 3]
        v = (0.95, 0.75, 0.55)[(i // 3) % 3]
        colors.append(tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v)))
    return tuple(colors)


KINDS = {"classification": "accuracy", "segmentation": "miou", "multilabel": "map"}


class Task(ABC):
    """A task builds its data and models; the core does the rest (stages, losses, metrics, report).

    Subclasses set the class attributes and implement `build_data` and `build_model`.
    """

    name: str = ""
    kind: str = "classification"            # a key of KINDS
    title: str = ""
    # The paper's figures for the headline setting, keyed by method name, in the metric's units.
    paper: dict[str, float] = {}
    paper_note: str = ""

    @property
    def metric(self) -> str:
        return KINDS[self.kind]

    def prepare(self, cfg: dict, progress: bool) -> None:
        """Make the data ready once, in the main process, before workers build their splits
        (render or download and cache); nothing to do for data that is made in memory."""

    @abstractmethod
    def build_data(self, cfg: dict) -> MKEData:
        """The three splits, built deterministically from the config."""

    @abstractmethod
    def build_model(self, cfg: dict, role: str, modalities: tuple[str, ...], reg: Regularization) -> torch.nn.Module:
        """A fresh model; `role` is "teacher" or "student"; it must honour reg.hidden_noise and reg.dropout.

        The model's forward takes one keyword argument per modality and returns class scores with
        the classes in dimension 1.
        """

    def input_spec(self, cfg: dict, modality: str):
        """The model-spec entry of one input (mke.runtime.spec.InputSpec): name, modality, shape with a
        batch of 1, layout and the preprocessing parameters the robot must apply."""
        raise MkeError(f"task '{self.name}' cannot describe its inputs for export yet")

    def colors(self, num_classes: int) -> list[list[int]]:
        """One RGB colour per class for overlays: the task's own, else a fixed palette."""
        own = getattr(self, "class_colors", ())
        if len(own) == num_classes:
            return [list(map(int, c)) for c in own]
        return [list(c) for c in label_colors(num_classes)]

    def class_weight(self, cfg: dict, targets, num_classes: int) -> torch.Tensor | None:
        """Per-class loss weights from the targets a model trains on (for rare classes in segmentation);
        None weighs classes equally."""
        return None

    def augment(self, batch, params: dict, generator: torch.Generator):
        """Random augmentation applied jointly to every input and the targets of a batch."""
        raise MkeError(f"task '{self.name}' has no data augmentation; choose another regularization")

    def figures(self, run, data: MKEData) -> list[Path]:
        """Task-specific figures for the report (written under run.figures_dir)."""
        return []

    def replay(self, cfg: dict) -> Path | None:
        """A sensor recording of the task's world that `mke-live --replay` can play, if the data has one."""
        return None
