"""The modality registry: what each kind of model input is, declared once, beside its own code.

A modality kind is the `kind` of an input's preprocessing parameters in the model spec ("rgb",
"depth", "mfcc" …). Its registration says which raw field of a frame it reads (a `LiveFrame` field
such as "rgb", "depth", "audio", or one a source puts in `LiveFrame.extras`; None when no sensor
gives it), the one deterministic preprocessing that training, INT8 calibration and the robot all run
on that raw array, its default parameters, the model input shape its parameters give, and what to
tell an mke-live user whose source lacks the field. Training's augmentation reads its flags
(`nearest`, `photometric`).

The modules of this package register themselves (`register_modality`) and are found by walking the
package at the first lookup, so a new kind is one new module here, or any module of a plugin that
registers before the kind is looked up. Nothing else lists the kinds.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.spec import InputSpec

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Modality:
    """One kind of model input.

    `preprocess(raw, params, **context)` → float32 array, channels first, no batch dimension; it takes
    partial `params` and completes them from `defaults` itself, so a spec may store only what differs.
    `context` names the per-frame metadata it takes as keywords (e.g. "intrinsics", "up"): LiveFrame
    fields live, FrameSet attributes in training. `shape(params)` is the input's shape without the batch
    for complete parameters, -1 where they leave a dimension open. `convert` brings a live field's array
    to the convention `preprocess` takes (depth: float metres from some sources → uint16 millimetres).
    `requires(params)` → {context name: the setting that cannot do without it}. `image`: an (…, H, W)
    input whose `size` parameter is [H, W], taken from the model's input shape when a spec leaves it out.
    `history(params)` → (count, period_s) for an input that is a sequence of past frames (the last
    `count`, `period_s` apart, the newest last): `preprocess` then takes (count, …) raw frames, and live
    each frame is preprocessed once as it arrives and the sequence assembled (`FrameHistory`).
    `nearest`: augmentation resizes it with nearest neighbours (no blend across invalid pixels);
    `photometric`: colour jitter applies to it.
    """

    name: str
    field: str | None
    preprocess: Callable[..., np.ndarray]
    shape: Callable[[dict], Sequence[int]]
    layout: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    hint: str = ""
    context: tuple[str, ...] = ()
    convert: Callable[[np.ndarray], np.ndarray] | None = None
    requires: Callable[[dict], dict[str, str]] | None = None
    image: bool = False
    nearest: bool = False
    photometric: bool = False
    history: Callable[[dict], tuple[int, float]] | None = None

    def params(self, params: Mapping[str, Any]) -> dict:
        """`params` completed from the defaults."""
        return {**self.defaults, **params}

    def input_shape(self, params: Mapping[str, Any]) -> Shape:
        """The model input's shape without the batch dimension (-1 = left open by the parameters)."""
        return tuple(int(d) for d in self.shape(self.params(params)))

    def needs(self, params: Mapping[str, Any]) -> dict[str, str]:
        """{context name: the setting that needs it}, e.g. {"intrinsics": "encoding=hha"}."""
        return self.requires(self.params(params)) if self.requires else {}

    def __call__(self, raw: np.ndarray, params: Mapping[str, Any], **context) -> np.ndarray:
        return self.preprocess(raw, params, **context)

    def live_params(self, spec_input: InputSpec) -> dict:
        """The spec's parameters for this input, with an image's `size` taken from the input shape when
        the spec leaves it implicit (resize to what the model takes)."""
        params = dict(spec_input.preprocess)
        shape = spec_input.shape
        if self.image and "size" not in params and len(shape) >= 4 and min(shape[-2:]) > 0:
            params["size"] = list(shape[-2:])
        return params

    def from_frame(self, frame, params: Mapping[str, Any]) -> np.ndarray:
        """The model input (no batch dimension) from a LiveFrame; for a `history` kind, this frame's
        step of the sequence (the sequence's shape without its first dimension)."""
        raw = frame.field(self.field)
        if raw is None:
            raise MkeError(f"a {self.name} input needs the frame's {self.field}, and this frame has none")
        if self.convert is not None:
            raw = self.convert(raw)
        context = {name: frame.field(name) for name in self.context}
        if self.history is not None:
            return self.preprocess(raw[None], params, **context)[0]
        return self.preprocess(raw, params, **context)


class FrameHistory:
    """The past steps of a `history` input on the robot: each frame's preprocessed step as it arrives,
    assembled into the sequence a model of that kind takes — for every k, the step whose timestamp is
    nearest to t − (count − 1 − k) · period_s, t being the newest; before enough time has passed, the
    oldest step stands in for the missing ones (a clip's first frames repeat its first image)."""

    def __init__(self, count: int, period_s: float):
        self.count, self.period_s = int(count), float(period_s)
        self._times: list[float] = []
        self._steps: list[np.ndarray] = []

    def __call__(self, timestamp_s: float, step: np.ndarray) -> np.ndarray:
        self._times.append(float(timestamp_s))
        self._steps.append(step)
        span = (self.count - 1) * self.period_s
        while len(self._times) > 2 and self._times[1] <= timestamp_s - span:  # keep one step before the span
            del self._times[0], self._steps[0]
        times = np.asarray(self._times)
        picks = [int(np.abs(times - (timestamp_s - (self.count - 1 - k) * self.period_s)).argmin())
                 for k in range(self.count)]
        return np.stack([self._steps[p] for p in picks])


_REGISTRY: dict[str, Modality] = {}
_discovered = False


def register_modality(name: str, *, field: str | None, shape: Callable[[dict], Sequence[int]], layout: str,
                      **options) -> Callable[[Callable], Callable]:
    """Decorator: register the decorated preprocessing function as modality kind `name` (the other
    keywords are `Modality` fields); returns the function unchanged. Registering a name twice with
    different functions is an error."""
    def register(fn: Callable) -> Callable:
        known = _REGISTRY.get(name)
        if known is not None and _qualname(known.preprocess) != _qualname(fn):
            raise MkeError(f"modality kind {name!r} is registered twice: by {_qualname(known.preprocess)} and "
                           f"{_qualname(fn)}; give the new one another name")
        _REGISTRY[name] = Modality(name, field, fn, shape, layout, **options)
        return fn

    return register


def _qualname(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _discover() -> None:
    """Import every module of this package once, so that each registers its kinds."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__, f"{__package__}."):
        if info.name != __name__ and not info.name.rsplit(".", 1)[1].startswith("_"):
            importlib.import_module(info.name)


def modality_names() -> list[str]:
    """Every registered kind, sorted."""
    _discover()
    return sorted(_REGISTRY)


def get_modality(kind: str) -> Modality:
    """The registered modality of preprocessing kind `kind`, or an MkeError listing the registered kinds."""
    _discover()
    try:
        return _REGISTRY[kind]
    except (KeyError, TypeError):
        raise MkeError(f"preprocessing kind {kind!r} is not one of the registered modalities "
                       f"{', '.join(modality_names())}") from None


def modality_of(spec_input: InputSpec) -> Modality:
    """The modality of a model-spec input: by its preprocessing `kind`, else (a spec written without
    one) by its `modality`."""
    return get_modality(spec_input.preprocess.get("kind") or spec_input.modality)


def input_spec(name: str, params: Mapping[str, Any],
               fallback_shape: Sequence[int] | Callable[[], Sequence[int]] | None = None) -> InputSpec:
    """The model-spec entry of an input named `name` with preprocessing `params` (which carry their
    `kind`): modality = the raw field it reads (the kind's name for inputs no sensor gives), shape =
    a batch of 1 and what the parameters give. Dimensions the parameters leave open (an image without
    `size`: the frames' own) are taken from `fallback_shape` (without the batch; a function is called
    only when needed)."""
    modality = get_modality(params.get("kind"))
    shape = modality.input_shape(params)
    if -1 in shape and fallback_shape is not None:
        fallback = tuple(fallback_shape() if callable(fallback_shape) else fallback_shape)
        if len(fallback) != len(shape):
            raise MkeError(f"input '{name}' ({modality.name}) has {len(shape)} dimensions, but the fallback "
                           f"shape {list(fallback)} has {len(fallback)}")
        shape = tuple(int(f) if s == -1 else s for s, f in zip(shape, fallback))
    return InputSpec(name, modality.field or modality.name, [1, *shape], layout=modality.layout,
                     preprocess={"kind": modality.name, **params})
