"""The model spec decides what the model needs from a sensor and how each frame becomes its inputs.

The preprocessing is the spec's own (`mke.runtime.preprocess.preprocessor`): the same functions
training and calibration ran, with the same parameters, so the robot sees what the model learned on.
"""
from __future__ import annotations

import numpy as np

from mke.runtime.depth_units import as_millimetres
from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame
from mke.runtime.preprocess import preprocessor
from mke.runtime.spec import InputSpec, ModelSpec

LIVE_MODALITIES = ("rgb", "depth", "audio")
DEFAULT_AUDIO = {"sample_rate": 16000, "seconds": 1.0, "channels": 1}  # for the level meter of models without audio


def audio_params(spec: ModelSpec) -> dict:
    """Rate, window length and channels the model wants (the defaults for a model without audio)."""
    for i in spec.inputs:
        if i.modality == "audio":
            return {**DEFAULT_AUDIO, "channels": int(i.shape[1]) if len(i.shape) > 1 and i.shape[1] > 0 else 1,
                    **{k: i.preprocess[k] for k in ("sample_rate", "seconds") if k in i.preprocess}}
    return dict(DEFAULT_AUDIO)


class InputBuilder:
    """frame → {input name: float32 array with a batch dimension of 1}, checked against the spec's shapes."""

    def __init__(self, spec: ModelSpec, source_name: str = "the model"):
        self.spec = spec
        unsupported = [f"'{i.name}' ({i.modality})" for i in spec.inputs if i.modality not in LIVE_MODALITIES]
        if unsupported:
            raise MkeError(f"{source_name} takes {', '.join(unsupported)}: no live sensor gives that; mke-live feeds "
                           f"{', '.join(LIVE_MODALITIES)} inputs")
        self._steps = [(i, self._params(i), preprocessor(self._params(i))) for i in spec.inputs]

    @staticmethod
    def _params(i: InputSpec) -> dict:
        params = dict(i.preprocess)
        if i.modality in ("rgb", "depth") and "size" not in params and len(i.shape) == 4 and min(i.shape[2:]) > 0:
            params["size"] = list(i.shape[2:])  # resize to what the model takes when the spec leaves it implicit
        return params

    @property
    def modalities(self) -> set[str]:
        return {i.modality for i in self.spec.inputs}

    def check_source(self, source, model_name: str) -> None:
        """An MkeError before anything starts when the source cannot give what the model needs."""
        missing = sorted(self.modalities - set(source.modalities))
        if missing:
            needs = ", ".join(f"'{i.name}' ({i.modality})" for i in self.spec.inputs)
            hint = {"depth": "use --sensor realsense (or --replay FILE.db3) or --sensor sim",
                    "audio": "add --mic [DEVICE] or --wav FILE",
                    "rgb": "use a source with a colour camera"}[missing[0]]
            raise MkeError(f"{model_name} needs {needs}, but {source.name} gives only "
                           f"{', '.join(sorted(source.modalities))}: {hint}")

    def __call__(self, frame: LiveFrame) -> dict[str, np.ndarray]:
        feeds = {}
        for spec_in, params, fn in self._steps:
            if spec_in.modality == "rgb":
                x = fn(frame.rgb, params)
            elif spec_in.modality == "depth":
                x = fn(as_millimetres(frame.depth), params, frame.intrinsics, frame.up)
            else:
                x = fn(frame.audio, params)
            want = spec_in.shape[1:]
            if len(want) != x.ndim or any(w > 0 and w != g for w, g in zip(want, x.shape)):
                raise MkeError(f"input '{spec_in.name}' preprocessed to shape {list(x.shape)} but the model takes "
                               f"{want} (its spec's preprocess parameters {params})")
            feeds[spec_in.name] = x[None]
        return feeds
