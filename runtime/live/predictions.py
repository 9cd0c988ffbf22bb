"""Model outputs → what the overlay and the predictions file show: class maps, top-k, class shares."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.spec import ModelSpec


@dataclass
class Prediction:
    kind: str
    top: list[tuple[str, float]] = field(default_factory=list)        # classification / multilabel: (class, p)
    labels: np.ndarray | None = field(default=None, repr=False)       # segmentation: (h, w) class ids
    shares: dict[str, float] = field(default_factory=dict)            # segmentation: class → pixel fraction

    def to_json(self) -> dict:
        if self.kind == "segmentation":
            return {"classes": {k: round(v, 4) for k, v in self.shares.items()}}
        return {"top": [[name, round(p, 4)] for name, p in self.top]}


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def decode(outputs: dict[str, np.ndarray], spec: ModelSpec, top_k: int = 3) -> Prediction:
    name = spec.outputs[0].name
    if name not in outputs:
        raise MkeError(f"the model returned {sorted(outputs)} but its spec names the output '{name}'")
    logits = np.asarray(outputs[name])[0]
    classes = spec.classes
    if logits.shape[0] != len(classes):
        raise MkeError(f"output '{name}' has {logits.shape[0]} class scores but the spec lists {len(classes)} classes")
    if spec.kind == "segmentation":
        labels = logits.argmax(axis=0).astype(np.uint8 if len(classes) <= 256 else np.uint16)
        counts = np.bincount(labels.ravel(), minlength=len(classes)) / labels.size
        order = np.argsort(-counts)
        shares = {classes[i]: float(counts[i]) for i in order if counts[i] > 0}
        return Prediction("segmentation", labels=labels, shares=shares)
    logits = logits.reshape(len(classes), -1).mean(axis=1)
    probs = 1.0 / (1.0 + np.exp(-logits)) if spec.kind == "multilabel" else _softmax(logits, 0)
    order = np.argsort(-probs)[:top_k]
    return Prediction(spec.kind, top=[(classes[i], float(probs[i])) for i in order])
