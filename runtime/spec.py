"""The model spec: everything the runtime needs to use a model, carried inside the model file.

Training writes it, export embeds it (ONNX `metadata_props`, a header or sidecar for TensorRT
engines), the runtime reads it — so the robot needs nothing but the model file. It names the task,
the classes and their colours, and for each input its name, modality, shape, dtype, layout and the
parameters of the one preprocessing (`mke.runtime.preprocess`) that training used.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mke.runtime.errors import MkeError

FORMAT = "mke-model-spec/1"
VOID = 255  # the label id of pixels no class covers (segmentation), ignored by losses and metrics
TASK_KINDS = ("classification", "segmentation", "multilabel")  # what a model's labels are: one class per
                                                               # sample or pixel, or any number per sample
MULTILABEL_THRESHOLD = 0.5  # a multilabel class is on where its sigmoid probability reaches this (its default)
LAYOUTS = ("NCHW", "NC", "NCT", "NTCHW")  # NTCHW: a sequence of T images (rgb_clip)


@dataclass(frozen=True)
class InputSpec:
    name: str                 # the model's input name: "rgb", "depth", "x", "image", "audio" …
    modality: str             # what the sensor gives: "rgb", "depth", "vector", "audio" …
    shape: list[int]          # batch first; -1 marks a dynamic dimension
    dtype: str = "float32"
    layout: str = "NCHW"
    preprocess: dict = field(default_factory=dict)  # kind (a modality, mke.runtime.modalities) + parameters


@dataclass(frozen=True)
class OutputSpec:
    name: str
    shape: list[int]
    meaning: str = "logits"   # class scores, classes in dimension 1


@dataclass(frozen=True)
class ModelSpec:
    task: str                 # the mke-train task name, e.g. "rgbd"
    kind: str                 # one of TASK_KINDS
    classes: list[str]
    colors: list[list[int]]   # one RGB triple per class, for overlays
    inputs: list[InputSpec]
    outputs: list[OutputSpec]
    provenance: dict[str, Any] = field(default_factory=dict)  # run, method, config, metrics, versions
    format: str = FORMAT
    # multilabel: each class's decision threshold on its sigmoid probability; None = MULTILABEL_THRESHOLD
    # for every class. Written only when set, so other specs read as before.
    thresholds: list[float] | None = None

    def __post_init__(self):
        if self.kind not in TASK_KINDS:
            raise MkeError(f"model spec field 'kind' must be one of {', '.join(TASK_KINDS)}, got {self.kind!r}")
        if len(self.colors) != len(self.classes):
            raise MkeError(f"model spec has {len(self.classes)} classes but {len(self.colors)} colours")
        if not self.inputs or not self.outputs:
            raise MkeError("model spec needs at least one input and one output")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise MkeError(f"model spec input names repeat: {names}")
        for i in self.inputs:
            if i.layout not in LAYOUTS:
                raise MkeError(f"model spec input '{i.name}' has layout {i.layout!r}; expected one of {', '.join(LAYOUTS)}")
        if self.thresholds is not None:
            if self.kind != "multilabel":
                raise MkeError(f"model spec field 'thresholds' is for multilabel models, not {self.kind}")
            if len(self.thresholds) != len(self.classes) or not all(0.0 < t < 1.0 for t in self.thresholds):
                raise MkeError(f"model spec field 'thresholds' needs one probability in (0, 1) per class "
                               f"({len(self.classes)}), got {self.thresholds}")

    @property
    def class_thresholds(self) -> list[float]:
        """Each class's decision threshold (multilabel): the spec's own, else MULTILABEL_THRESHOLD."""
        return list(self.thresholds) if self.thresholds is not None else [MULTILABEL_THRESHOLD] * len(self.classes)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def input(self, name: str) -> InputSpec:
        for i in self.inputs:
            if i.name == name:
                return i
        raise MkeError(f"model has no input '{name}'; its inputs are {self.input_names}")

    def to_json(self) -> str:
        fields = asdict(self)
        if fields["thresholds"] is None:
            del fields["thresholds"]
        return json.dumps(fields, sort_keys=False)

    @classmethod
    def from_json(cls, text: str, source: str = "model spec") -> "ModelSpec":
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise MkeError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise MkeError(f"{source} is not an MKE model spec (expected format {FORMAT!r}, "
                           f"found {raw.get('format') if isinstance(raw, dict) else type(raw).__name__!r})")
        try:
            inputs = [InputSpec(**i) for i in raw.pop("inputs")]
            outputs = [OutputSpec(**o) for o in raw.pop("outputs")]
            return cls(inputs=inputs, outputs=outputs, **raw)
        except (KeyError, TypeError) as exc:
            raise MkeError(f"{source} has missing or unknown fields: {exc}") from None
