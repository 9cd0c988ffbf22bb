"""The contract between the MKE core and a task (TwoMoon, RGB-D segmentation, audio-visual …)."""
from __future__ import annotations

import colorsys
import shlex
from abc import ABC, abstractmethod
from pathlib import Path

import torch

from mke.runtime.errors import MkeError
from mke.runtime.modalities import Modality, get_modality, input_spec
from mke.runtime.spec import InputSpec
from mke.train.data import MKEData
from mke.train.label_kinds import LabelKind, label_kind
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


def file_uri(path: str | Path) -> str:
    """`file://PATH`, the mke-live source URI of a recording or media file (relative paths stay so;
    the characters a URI reads otherwise — %, ?, # — escaped)."""
    escaped = Path(path).as_posix().replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    return f"file://{escaped}"


class Task(ABC):
    """A task builds its data and models; the core does the rest (stages, losses, metrics, report).

    Subclasses set the class attributes and implement `build_data` and `build_model`; a concrete task
    is registered with `@mke.train.tasks.register_task` and configured by `configs/<name>.yaml`. What
    export and live need is declared here too (`input_spec`, `live_inputs`, `replay`), so neither
    side names tasks.
    """

    name: str = ""
    # The task kind, which says what its labels are: one label per sample ("classification") or per
    # pixel ("segmentation"), or any number of classes per sample ("multilabel"). Every stage takes
    # its operations from it (mke.train.label_kinds); the model spec carries it to the robot.
    kind: str = "classification"
    title: str = ""
    # The paper's figures for the headline setting, keyed by method name, in the metric's units.
    paper: dict[str, float] = {}
    paper_note: str = ""
    # mke-live sources that give what this task's models take: `--input` URIs (e.g. "realsense://",
    # "sim://"), with `live_audio` as the `--audio` URI beside each for models that hear (e.g. "mic://").
    # Empty for a task whose inputs no sensor gives (TwoMoon's coordinates).
    live_inputs: tuple[str, ...] = ()
    live_audio: str | None = None
    # The inputs (α, β): name → modality kind (mke.runtime.modalities); an input's preprocessing
    # parameters are `preprocess.<name>` of the config, when it has that section.
    input_kinds: dict[str, str] = {}
    # Train the seeds of each job together as one stacked model (mke.train.stacked): for tiny models
    # trained full batch, whose steps are all per-call overhead (TwoMoon). Needs batch_size 0 and no
    # class weighting; other tasks train one seed per unit of work.
    stack_seeds: bool = False
    # The student networks `build_model` makes besides the teacher's: "fusion" (role "student": the task's
    # own) and e.g. "dmd" (role "dmd": mke.train.models.dmd), as methods ask for them (Method.network).
    networks: tuple[str, ...] = ("fusion",)

    @property
    def label_kind(self) -> LabelKind:
        """The operations of this task's kind: activation, pseudo labels, loss, ω, metric."""
        return label_kind(self.kind)

    @property
    def metric(self) -> str:
        return self.label_kind.metric

    def output_shape(self, inputs: list, num_classes: int) -> list[int]:
        """The model's class scores for a batch of 1: (1, K), or (1, K, H, W) for a dense kind, H × W
        being its first input's (mke.runtime.spec.InputSpec) spatial size."""
        return [1, num_classes] + (list(inputs[0].shape[2:]) if self.label_kind.dense else [])

    def prepare(self, cfg: dict, progress: bool) -> None:
        """Make the data ready once, in the main process, before workers build their splits
        (render or download and cache); nothing to do for data that is made in memory."""

    def data_summary(self, cfg: dict) -> dict:
        """What the report and metrics.json (`data`) should say about the data a run used — split protocol,
        clips per split, files skipped and why; {} says nothing (data made in memory)."""
        return {}

    @abstractmethod
    def build_data(self, cfg: dict) -> MKEData:
        """The three splits, built deterministically from the config."""

    @abstractmethod
    def build_model(self, cfg: dict, role: str, modalities: tuple[str, ...], reg: Regularization) -> torch.nn.Module:
        """A fresh model; `role` is "teacher", "student" or another network of `networks` ("dmd"); it must
        honour reg.hidden_noise and reg.dropout.

        The model's forward takes one keyword argument per modality and returns class scores with
        the classes in dimension 1.
        """

    def input_modality(self, name: str) -> Modality:
        if name not in self.input_kinds:
            raise MkeError(f"task {self.name} has the inputs {' and '.join(self.input_kinds)}, not {name!r}")
        return get_modality(self.input_kinds[name])

    def input_params(self, cfg: dict, name: str) -> dict:
        """The preprocessing parameters of input `name`: `preprocess.<name>`, of the input's kind."""
        kind = self.input_modality(name).name
        params = cfg.get("preprocess", {}).get(name, {})  # a task without a preprocess section: the kind's defaults
        if params.get("kind", kind) != kind:
            raise MkeError(f"preprocess.{name}.kind must be {kind!r} (task {self.name}'s {name} input), "
                           f"got {params['kind']!r}")
        return {"kind": kind, **params}

    def input_fallback_shape(self, cfg: dict, name: str) -> tuple[int, ...] | None:
        """The input's shape (no batch) where its parameters leave dimensions open (-1), else None."""
        return None

    def input_spec(self, cfg: dict, name: str) -> InputSpec:
        """The model-spec entry of one input: name, modality, shape with a batch of 1, layout and the
        preprocessing parameters the robot must apply."""
        return input_spec(name, self.input_params(cfg, name),
                          fallback_shape=lambda: self.input_fallback_shape(cfg, name))
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
        """A sensor recording (or video) of the task's world that `mke-live --input file://…` plays, if
        the data has one."""
        return None

    def replay_audio(self, cfg: dict) -> Path | None:
        """The sound beside `replay` (a WAV for `mke-live --audio file://…`), if it has one apart."""
        return None

    def live_commands(self, cfg: dict, model_path: str | Path) -> list[str]:
        """`mke-live` command lines that run an exported model of this task: on the task's own recording
        first (when its data has one), then on each of `live_inputs`; [] when no source fits."""
        sources = []
        replay = self.replay(cfg)
        if replay is not None:
            audio = self.replay_audio(cfg)
            sources.append((file_uri(replay), None if audio is None else file_uri(audio)))
        sources += [(uri, self.live_audio) for uri in self.live_inputs]
        model = shlex.quote(str(model_path))
        return [f"mke-live {model} --input {shlex.quote(uri)}"
                + ("" if audio is None else f" --audio {shlex.quote(audio)}") for uri, audio in sources]
