"""Live decoding (mke.runtime.live.predictions): one decoder per task kind, each against a hand computation."""
import math

import numpy as np
import pytest

from mke.runtime.errors import MkeError
from mke.runtime.live.predictions import DECODERS, decode
from mke.runtime.spec import TASK_KINDS, InputSpec, ModelSpec, OutputSpec


def _spec(kind: str, classes=("dog", "siren", "rain"), **over) -> ModelSpec:
    return ModelSpec(task="t", kind=kind, classes=list(classes), colors=[[0, 0, 0]] * len(classes),
                     inputs=[InputSpec("audio", "audio", [1, 1, 64, 100])],
                     outputs=[OutputSpec("logits", [1, len(classes)])], **over)


def test_every_task_kind_has_a_decoder():
    assert sorted(DECODERS) == sorted(TASK_KINDS)


def test_classification_is_the_softmax_most_probable_first():
    logits = np.array([[0.0, math.log(3.0), 0.0]], np.float32)  # softmax 0.2, 0.6, 0.2
    top = decode({"logits": logits}, _spec("classification"), top_k=2).top
    assert [name for name, _ in top] == ["siren", "dog"]
    assert [p for _, p in top] == pytest.approx([0.6, 0.2], abs=1e-6)


def test_multilabel_shows_the_classes_over_their_thresholds_most_probable_first():
    logits = np.array([[math.log(3.0), 0.0, -2.0]], np.float32)  # sigmoid 0.75, 0.5, 0.1192
    top = decode({"logits": logits}, _spec("multilabel"), top_k=3).top
    assert [name for name, _ in top] == ["dog", "siren"]  # 0.5 reaches the default threshold 0.5; rain does not
    assert [p for _, p in top] == pytest.approx([0.75, 0.5], abs=1e-6)
    assert decode({"logits": logits}, _spec("multilabel"), top_k=1).top == [("dog", pytest.approx(0.75))]
    own = _spec("multilabel", thresholds=[0.8, 0.4, 0.1])  # per-class thresholds from the spec
    assert [name for name, _ in decode({"logits": logits}, own).top] == ["siren", "rain"]
    quiet = np.full((1, 3), -5.0, np.float32)
    assert decode({"logits": quiet}, _spec("multilabel")).top == []  # nothing sounds
    loud = np.array([[1000.0, -1000.0, 0.0]], np.float32)  # no overflow in the sigmoid
    assert [p for _, p in decode({"logits": loud}, _spec("multilabel")).top] == [1.0, 0.5]


def test_segmentation_is_the_argmax_map_and_class_shares():
    logits = np.zeros((1, 3, 2, 2), np.float32)
    logits[0, 1, 0, :] = 1.0   # top row: siren
    logits[0, 2, 1, 0] = 1.0   # one pixel: rain; the last: dog (ties go to the first class)
    p = decode({"logits": logits}, _spec("segmentation"))
    assert p.labels.tolist() == [[1, 1], [2, 0]]
    assert p.shares == {"siren": 0.5, "rain": 0.25, "dog": 0.25}


def test_thresholds_belong_to_multilabel_specs_one_per_class_and_travel_only_when_set():
    with pytest.raises(MkeError, match="for multilabel models"):
        _spec("classification", thresholds=[0.5, 0.5, 0.5])
    with pytest.raises(MkeError, match="one probability in"):
        _spec("multilabel", thresholds=[0.5, 0.5])
    with pytest.raises(MkeError, match="one probability in"):
        _spec("multilabel", thresholds=[0.5, 0.5, 1.0])
    assert "thresholds" not in _spec("multilabel").to_json()  # specs without them read as before
    own = _spec("multilabel", thresholds=[0.8, 0.4, 0.1])
    assert ModelSpec.from_json(own.to_json()) == own and own.class_thresholds == [0.8, 0.4, 0.1]
    assert _spec("multilabel").class_thresholds == [0.5, 0.5, 0.5]
