"""The model spec decides what the model needs from a sensor and how each frame becomes its inputs.

Each input's modality (`mke.runtime.modalities`, by the spec's preprocessing `kind`) says which raw
field of the frame it reads and runs the preprocessing training and calibration ran, with the spec's
parameters, so the robot sees what the model learned on.
"""
from __future__ import annotations

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame
from mke.runtime.modalities import FrameHistory, get_modality, modality_names, modality_of
from mke.runtime.spec import ModelSpec

AUDIO_FIELD = "audio"  # the LiveFrame field an audio stream (microphone, WAV) fills
DEFAULT_AUDIO = {"sample_rate": 16000, "seconds": 1.0, "channels": 1}  # for the level meter of models without audio


def audio_params(spec: ModelSpec) -> dict:
    """Rate (Hz), window length (s) and channels the model wants from the audio stream: those of its
    first input that reads the audio field, whose first dimension after the batch is the channel
    count (the defaults for a model without audio)."""
    for i in spec.inputs:
        modality = modality_of(i)
        if modality.field == AUDIO_FIELD:
            params = modality.params(i.preprocess)
            return {**DEFAULT_AUDIO, "channels": int(i.shape[1]) if len(i.shape) > 1 and i.shape[1] > 0 else 1,
                    **{k: params[k] for k in ("sample_rate", "seconds") if k in params}}
    return dict(DEFAULT_AUDIO)


class InputBuilder:
    """frame → {input name: float32 array with a batch dimension of 1}, checked against the spec's shapes."""

    def __init__(self, spec: ModelSpec, source_name: str = "the model"):
        self.spec = spec
        self._steps = [(i, modality_of(i)) for i in spec.inputs]
        unsupported = [f"'{i.name}' ({i.modality})" for i, m in self._steps if m.field is None]
        if unsupported:
            live = [name for name in modality_names() if get_modality(name).field is not None]
            raise MkeError(f"{source_name} takes {', '.join(unsupported)}: no live sensor gives that; mke-live feeds "
                           f"inputs of the kinds {', '.join(live)}")
        self._steps = [(i, m, m.live_params(i)) for i, m in self._steps]
        # sequences of past frames (rgb_clip …): each frame's step kept as it arrives
        self._histories = {i.name: FrameHistory(*m.history(m.params(p))) for i, m, p in self._steps
                           if m.history is not None}

    @property
    def modalities(self) -> set[str]:
        """The frame fields the model reads (what `Source.modalities` must hold)."""
        return {m.field for _, m, _ in self._steps}

    def check_source(self, source, model_name: str) -> None:
        """An MkeError before anything starts when the source cannot give what the model needs."""
        missing = self.modalities - set(source.modalities)
        if missing:
            needs = ", ".join(f"'{i.name}' ({i.modality})" for i in self.spec.inputs)
            hint = next(m.hint for _, m, _ in self._steps if m.field in missing)
            raise MkeError(f"{model_name} needs {needs}, but {source.name} gives only "
                           f"{', '.join(sorted(source.modalities))}: {hint}")

    def __call__(self, frame: LiveFrame) -> dict[str, np.ndarray]:
        feeds = {}
        for spec_in, modality, params in self._steps:
            x = modality.from_frame(frame, params)
            history = self._histories.get(spec_in.name)
            if history is not None:
                x = history(frame.timestamp_s, x)
            want = spec_in.shape[1:]
            if len(want) != x.ndim or any(w > 0 and w != g for w, g in zip(want, x.shape)):
                raise MkeError(f"input '{spec_in.name}' preprocessed to shape {list(x.shape)} but the model takes "
                               f"{want} (its spec's preprocess parameters {params})")
            feeds[spec_in.name] = x[None]
        return feeds
